// A request in flight (our side) and a request from the bridge (its side).
using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace EntityBridge
{
    /// <summary>The final reply of a request and the outputs it caused (events whose `ref` is
    /// the request's id), in arrival order.</summary>
    public sealed class TurnResult
    {
        public readonly BridgeEvent Reply;
        public readonly List<BridgeEvent> Events;

        public TurnResult(BridgeEvent reply, List<BridgeEvent> events) { Reply = reply; Events = events; }

        public EepMap Payload { get { return Reply.Payload ?? new EepMap(); } }

        public List<BridgeEvent> OfType(string type)
        {
            var list = new List<BridgeEvent>();
            foreach (var e in Events) if (e.Type == type) list.Add(e);
            return list;
        }
    }

    /// <summary>One of our requests waiting for its final reply. `Task` completes with the
    /// reply and its outputs, or fails with BridgeException (status error, when checked),
    /// TimeoutException or ConnectionLostException.</summary>
    public sealed class PendingRequest
    {
        public readonly string Id;
        public readonly string Type;
        public readonly string Entity;
        readonly bool check;
        readonly List<BridgeEvent> outputs;
        readonly TaskCompletionSource<TurnResult> tcs =
            new TaskCompletionSource<TurnResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        int pending;
        internal CancellationTokenRegistration TimeoutRegistration;
        internal CancellationTokenSource TimeoutSource;

        internal PendingRequest(string id, string type, string entity, bool collect, bool check)
        {
            Id = id; Type = type; Entity = entity;
            this.check = check;
            outputs = collect ? new List<BridgeEvent>() : null;
        }

        public Task<TurnResult> Task { get { return tcs.Task; } }
        /// <summary>True once the bridge said `pending` (the work has started).</summary>
        public bool IsPending { get { return Volatile.Read(ref pending) != 0; } }
        public bool IsDone { get { return tcs.Task.IsCompleted; } }

        internal void MarkPending() { Volatile.Write(ref pending, 1); }

        internal void AddOutput(BridgeEvent e)
        {
            if (outputs == null) return;
            lock (outputs) outputs.Add(e);
        }

        internal bool Complete(BridgeEvent reply)
        {
            DisposeTimeout();
            if (check && reply.IsError) return tcs.TrySetException(new BridgeException(reply));
            List<BridgeEvent> copy;
            if (outputs == null) copy = new List<BridgeEvent>();
            else lock (outputs) copy = new List<BridgeEvent>(outputs);
            return tcs.TrySetResult(new TurnResult(reply, copy));
        }

        internal bool Fail(Exception error)
        {
            DisposeTimeout();
            return tcs.TrySetException(error);
        }

        void DisposeTimeout()
        {
            TimeoutRegistration.Dispose();
            if (TimeoutSource != null) TimeoutSource.Dispose();
        }
    }

    /// <summary>A request the bridge sends to the game (movement.perform, movement.scene.request,
    /// movement.actions.request). The handler answers exactly once with Succeed or Fail, now or
    /// later, from any thread; the SDK refuses a second answer.</summary>
    public sealed class BridgeRequest
    {
        public readonly BridgeEvent Event;
        readonly BridgeClient client;
        int answered;

        internal BridgeRequest(BridgeClient client, BridgeEvent e) { this.client = client; Event = e; }

        public string Type { get { return Event.Type; } }
        public string Entity { get { return Event.Entity; } }
        public EepMap Payload { get { return Event.Payload; } }
        public bool Answered { get { return Volatile.Read(ref answered) != 0; } }

        /// <summary>movement.perform's actions: [{name, args}], in order.</summary>
        public List<object> Actions { get { return Event.Payload != null ? Event.Payload.GetList("actions") : null; } }

        public bool Succeed(EepMap payload)
        {
            return Answer(EventStatus.Success, payload ?? new EepMap());
        }

        /// <summary>The message is read by the LLM, e.g. "the door is locked".</summary>
        public bool Fail(string code, string message)
        {
            return Answer(EventStatus.Error, new EepMap().Set("code", code).Set("message", message));
        }

        bool Answer(string status, EepMap payload)
        {
            if (Interlocked.Exchange(ref answered, 1) != 0) return false;
            var reply = new BridgeEvent(Event.Type, Event.Id, Event.Entity, payload) { Status = status };
            client.SendReply(reply);
            return true;
        }
    }
}
