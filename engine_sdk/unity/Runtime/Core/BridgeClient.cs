// The connection to the bridge: hello, one reader task, one writer task, requests that
// complete Tasks, events queued for the game's thread, reconnect with backoff.
//
// Threads: the reader task decodes frames and routes them (completing request Tasks, feeding
// speech buffers, queueing everything else); the writer task is the only one that sends, in
// queue order. User callbacks run only inside Dispatch(), on whichever thread calls it (Unity's
// main thread, once a frame). Awaiting a request from the main thread resumes there through
// Unity's SynchronizationContext; completions never run inline on the socket thread.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace EntityBridge
{
    public enum ClientState { Connecting, Open, Reconnecting, Closed }

    public sealed class BridgeClient : IDisposable
    {
        readonly BridgeOptions options;
        readonly object gate = new object();
        readonly Dictionary<string, PendingRequest> waiting = new Dictionary<string, PendingRequest>();
        readonly Dictionary<string, BridgeEntity> entities = new Dictionary<string, BridgeEntity>();
        readonly List<BridgeEntity> tickList = new List<BridgeEntity>();
        readonly Dictionary<string, Action<BridgeRequest>> requestHandlers = new Dictionary<string, Action<BridgeRequest>>();
        readonly Dispatcher dispatcher = new Dispatcher();
        readonly CancellationTokenSource lifetime = new CancellationTokenSource();
        readonly Action<DispatchItem> runItem;
        Link link;
        volatile ClientState state = ClientState.Connecting;
        volatile bool closing;
        int nextId;
        int reconnects;

        public static readonly string[] BridgeRequestTypes = { "movement.perform", "movement.scene.request", "movement.actions.request" };

        /// <summary>The hello's success payload (session, server, characters, limits, audio formats).</summary>
        public EepMap Hello { get; private set; }
        public BridgeOptions Options { get { return options; } }
        public ClientState State { get { return state; } }
        public int ReconnectCount { get { return Volatile.Read(ref reconnects); } }
        /// <summary>Our requests still waiting for their final reply.</summary>
        public int PendingCount { get { lock (gate) return waiting.Count; } }
        /// <summary>Events received and not yet dispatched.</summary>
        public int QueuedEvents { get { return dispatcher.Count; } }

        /// <summary>Every event from the bridge that is not a reply to one of our requests
        /// (raised in Dispatch, after the entity's own handlers).</summary>
        public event Action<BridgeEvent> EventReceived;
        /// <summary>The connection dropped (argument: why). Raised in Dispatch.</summary>
        public event Action<string> Disconnected;
        /// <summary>Reconnected, hello done and every entity re-created. Raised in Dispatch.</summary>
        public event Action Reconnected;
        /// <summary>Diagnostics: bad frames, failed reconnect attempts, re-init failures. Raised in Dispatch.</summary>
        public event Action<string> Log;
        /// <summary>Every whole frame from the bridge, raised on the socket thread before it is
        /// routed (bytes, is-text). The segment is only valid during the call: copy what you
        /// keep. For session recorders and debugging; keep handlers short.</summary>
        public event Action<ArraySegment<byte>, bool> FrameTap;
        /// <summary>A user handler threw inside Dispatch; without a subscriber it goes to stderr.</summary>
        public event Action<Exception> HandlerException;

        BridgeClient(BridgeOptions options)
        {
            this.options = options.Clone();
            runItem = Run;
        }

        /// <summary>Connects and says hello; fails with BridgeException (e.g. unauthorized,
        /// unsupported_version) or ConnectionLostException (nothing listening, timeout).</summary>
        public static async Task<BridgeClient> ConnectAsync(BridgeOptions options)
        {
            var client = new BridgeClient(options);
            try
            {
                await client.OpenLinkAsync().ConfigureAwait(false);
            }
            catch
            {
                client.state = ClientState.Closed;
                client.lifetime.Cancel();
                throw;
            }
            client.state = ClientState.Open;
            return client;
        }

        // ------------------------------------------------------------------ links

        sealed class Link
        {
            public readonly ClientWebSocket Ws = new ClientWebSocket();
            public readonly ConcurrentQueue<Outgoing> Out = new ConcurrentQueue<Outgoing>();
            public readonly SemaphoreSlim Signal = new SemaphoreSlim(0);
            public readonly CancellationTokenSource Cts = new CancellationTokenSource();
            public Task Reader;
            public Task Writer;
            public int Lost;
        }

        struct Outgoing
        {
            public byte[] Data;
            public bool Text;
            public bool Close;
        }

        async Task OpenLinkAsync()
        {
            var l = new Link();
            try
            {
                using (var cts = CancellationTokenSource.CreateLinkedTokenSource(lifetime.Token))
                {
                    cts.CancelAfter(options.ConnectTimeout);
                    await l.Ws.ConnectAsync(new Uri(options.Url), cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex)
            {
                l.Ws.Dispose();
                throw new ConnectionLostException("cannot connect to " + options.Url + ": " + Describe(ex), ex);
            }
            lock (gate) link = l;
            l.Reader = Task.Run(() => ReadLoop(l));
            l.Writer = Task.Run(() => WriteLoop(l));
            var hello = new BridgeEvent("session.hello", NewId(), null, options.HelloPayload());
            var req = Track(hello, false, true, options.ConnectTimeout);
            Enqueue(l, hello);
            try
            {
                var result = await req.Task.ConfigureAwait(false);
                Hello = result.Reply.Payload ?? new EepMap();
            }
            catch
            {
                Abort(l);
                throw;
            }
        }

        static string Describe(Exception ex)
        {
            var inner = ex;
            while (inner.InnerException != null) inner = inner.InnerException;
            return inner == ex ? ex.Message : ex.Message + " (" + inner.Message + ")";
        }

        async Task ReadLoop(Link l)
        {
            var codec = new EventCodec();
            var buffer = new byte[64 * 1024];
            int count = 0;
            string reason = "connection closed by the bridge";
            try
            {
                while (true)
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= options.MaxFrameBytes)
                            throw new InvalidOperationException("a frame is larger than MaxFrameBytes (" + options.MaxFrameBytes + ")");
                        Array.Resize(ref buffer, Math.Min(buffer.Length * 2, options.MaxFrameBytes));
                    }
                    var r = await l.Ws.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), l.Cts.Token).ConfigureAwait(false);
                    if (r.MessageType == WebSocketMessageType.Close)
                    {
                        reason = "closed by the bridge (" + r.CloseStatus + " " + r.CloseStatusDescription + ")";
                        break;
                    }
                    count += r.Count;
                    if (!r.EndOfMessage) continue;
                    ReceiveFrame(codec, buffer, count, r.MessageType == WebSocketMessageType.Text);
                    count = 0;
                }
            }
            catch (Exception ex)
            {
                reason = closing ? "closed by the client" : "connection lost: " + Describe(ex);
            }
            LinkLost(l, reason);
        }

        /// <summary>One whole frame from the socket: decode, then route. Bad frames are logged
        /// and dropped; the loop carries on. (The bench drives this directly, without a socket.)</summary>
        internal void ReceiveFrame(EventCodec codec, byte[] buffer, int count, bool text)
        {
            var tap = FrameTap;
            if (tap != null) tap(new ArraySegment<byte>(buffer, 0, count), text);
            if (!text && !options.DispatchAudioEvents && TryAudioFastPath(codec, buffer, count)) return;
            BridgeEvent e;
            try
            {
                e = text ? codec.DecodeText(buffer, 0, count) : codec.DecodeBinary(buffer, 0, count);
            }
            catch (EepCodecException ex)
            {
                Notice("dropped an undecodable frame from the bridge: " + ex.Message);
                return;
            }
            try { Route(e); }
            catch (Exception ex) { Notice("internal error routing " + e.Type + ": " + ex); }
        }

        AudioChunk chunk;

        bool TryAudioFastPath(EventCodec codec, byte[] buffer, int count)
        {
            if (!codec.TryScanAudio(buffer, 0, count, ref chunk)) return false;
            BridgeEntity ent;
            lock (gate) entities.TryGetValue(chunk.Entity, out ent);
            if (ent == null || ent.Speech == null) return false;    // decoded the ordinary way
            ent.OnAudioChunk(ref chunk, buffer, codec.Reader);
            return true;
        }

        /// <summary>A client with no connection, for the bench: frames go in through ReceiveFrame.</summary>
        internal static BridgeClient CreateDetached(BridgeOptions options)
        {
            return new BridgeClient(options) { state = ClientState.Closed };
        }

        internal BridgeEntity AddDetachedEntity(string name, string character)
        {
            var ent = new BridgeEntity(this, name, character, null);
            lock (gate) entities[name] = ent;
            return ent;
        }

        async Task WriteLoop(Link l)
        {
            try
            {
                while (true)
                {
                    await l.Signal.WaitAsync(l.Cts.Token).ConfigureAwait(false);
                    Outgoing o;
                    if (!l.Out.TryDequeue(out o)) continue;
                    if (o.Close)
                    {
                        await l.Ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "client closing", l.Cts.Token).ConfigureAwait(false);
                        return;
                    }
                    await l.Ws.SendAsync(new ArraySegment<byte>(o.Data), o.Text ? WebSocketMessageType.Text : WebSocketMessageType.Binary,
                        true, l.Cts.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // A send failed: the socket is gone. Abort so the reader ends and reports it.
                Abort(l);
            }
        }

        static void Abort(Link l)
        {
            try { l.Cts.Cancel(); } catch (ObjectDisposedException) { }
            try { l.Ws.Abort(); } catch (Exception) { }
        }

        void LinkLost(Link l, string reason)
        {
            if (Interlocked.Exchange(ref l.Lost, 1) != 0) return;
            Abort(l);
            List<PendingRequest> failed;
            bool current;
            lock (gate)
            {
                current = link == l;
                if (current) link = null;
                failed = new List<PendingRequest>(waiting.Values);
                waiting.Clear();
                tickList.Clear();
                tickList.AddRange(entities.Values);
            }
            var error = new ConnectionLostException(reason);
            foreach (var p in failed) p.Fail(error);
            if (!current) return;
            foreach (var ent in tickList) ent.ConnectionLost();
            bool wasOpen = state == ClientState.Open;
            if (closing || !options.AutoReconnect || !wasOpen)
            {
                if (wasOpen || closing) state = ClientState.Closed;
                if (wasOpen) EnqueueNotice(() => { var h = Disconnected; if (h != null) h(reason); });
                return;
            }
            state = ClientState.Reconnecting;
            EnqueueNotice(() => { var h = Disconnected; if (h != null) h(reason); });
            Task.Run(() => ReconnectLoop());
        }

        async Task ReconnectLoop()
        {
            var delay = options.ReconnectInitialDelay;
            for (int attempt = 1; !lifetime.IsCancellationRequested; attempt++)
            {
                try { await Task.Delay(delay, lifetime.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { return; }
                try
                {
                    await OpenLinkAsync().ConfigureAwait(false);
                    await ReinitEntitiesAsync().ConfigureAwait(false);
                    if (closing) return;
                    state = ClientState.Open;
                    Interlocked.Increment(ref reconnects);
                    EnqueueNotice(() => { var h = Reconnected; if (h != null) h(); });
                    return;
                }
                catch (Exception ex)
                {
                    Link l;
                    lock (gate) { l = link; link = null; }
                    if (l != null) Abort(l);
                    Notice("reconnect attempt " + attempt + " failed: " + Describe(ex));
                    if (options.MaxReconnectAttempts > 0 && attempt >= options.MaxReconnectAttempts)
                    {
                        state = ClientState.Closed;
                        Notice("gave up reconnecting after " + attempt + " attempts");
                        return;
                    }
                    long next = Math.Min(delay.Ticks * 2, options.ReconnectMaxDelay.Ticks);
                    delay = TimeSpan.FromTicks(next);
                }
            }
        }

        async Task ReinitEntitiesAsync()
        {
            List<BridgeEntity> alive;
            lock (gate) alive = new List<BridgeEntity>(entities.Values);
            foreach (var ent in alive)
            {
                var e = new BridgeEvent("entity.init", NewId(), ent.Name, ent.InitPayload());
                var req = Track(e, false, false, options.RequestTimeout);
                Link l;
                lock (gate) l = link;
                if (l == null) throw new ConnectionLostException("connection lost while re-creating entities");
                Enqueue(l, e);
                var result = await req.Task.ConfigureAwait(false);
                if (result.Reply.IsError)
                {
                    string msg = "could not re-create entity " + ent.Name + ": " + result.Reply.ErrorCode + ": " + result.Reply.ErrorMessage;
                    Notice(msg);
                    var entity = ent;
                    var reply = result.Reply;
                    EnqueueNotice(() => entity.RaiseError(reply.ErrorCode, reply.ErrorMessage));
                }
                else
                {
                    ent.Info = result.Reply.Payload ?? new EepMap();
                }
            }
        }

        // ------------------------------------------------------------------ sending

        public string NewId() { return "c" + Interlocked.Increment(ref nextId); }

        PendingRequest Track(BridgeEvent e, bool collect, bool check, TimeSpan timeout)
        {
            var p = new PendingRequest(e.Id, e.Type, e.Entity, collect, check);
            lock (gate) waiting[e.Id] = p;
            if (timeout > TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
            {
                var cts = new CancellationTokenSource(timeout);
                p.TimeoutSource = cts;
                string what = e.Type + " " + e.Id;
                p.TimeoutRegistration = cts.Token.Register(() =>
                {
                    lock (gate)
                    {
                        PendingRequest cur;
                        if (waiting.TryGetValue(p.Id, out cur) && cur == p) waiting.Remove(p.Id);
                    }
                    p.Fail(new TimeoutException(what + ": no final reply within " + timeout.TotalSeconds + " s"));
                });
            }
            return p;
        }

        void Enqueue(Link l, BridgeEvent e)
        {
            byte[] data;
            bool text = options.Framing == Framing.Json;
            var wire = e.ToWire();
            data = text ? Encoding.UTF8.GetBytes(Json.Encode(wire)) : MsgPackWriter.Encode(wire);
            l.Out.Enqueue(new Outgoing { Data = data, Text = text });
            l.Signal.Release();
        }

        Link OpenLinkOrNull()
        {
            lock (gate) return state == ClientState.Open ? link : null;
        }

        /// <summary>Sends a request; the returned handle's Task completes with its final reply
        /// (and, with collect, every output that carries its id as `ref`). With check, an error
        /// reply fails the Task with BridgeException; without, it completes normally.</summary>
        public PendingRequest Send(string type, EepMap payload, string entity = null, bool collect = true, bool check = true, TimeSpan? timeout = null)
        {
            var e = new BridgeEvent(type, NewId(), entity, payload);
            var p = Track(e, collect, check, timeout ?? options.RequestTimeout);
            var l = OpenLinkOrNull();
            if (l == null)
            {
                lock (gate) waiting.Remove(e.Id);
                p.Fail(new ConnectionLostException("not connected (" + state + "): " + type + " was not sent"));
                return p;
            }
            try { Enqueue(l, e); }
            catch (Exception ex)
            {
                lock (gate) waiting.Remove(e.Id);
                p.Fail(ex);
            }
            return p;
        }

        public async Task<BridgeEvent> RequestAsync(string type, EepMap payload, string entity = null, TimeSpan? timeout = null)
        {
            var result = await Send(type, payload, entity, false, true, timeout).Task.ConfigureAwait(false);
            return result.Reply;
        }

        public Task<TurnResult> TurnAsync(string type, EepMap payload, string entity = null, TimeSpan? timeout = null, bool check = true)
        {
            return Send(type, payload, entity, true, check, timeout).Task;
        }

        /// <summary>Sends an event whose reply nobody waits for (playback reports). A success
        /// reply is dropped; an error reply reaches the entity's Error event.</summary>
        public bool SendUntracked(string type, EepMap payload, string entity)
        {
            var l = OpenLinkOrNull();
            if (l == null) return false;
            Enqueue(l, new BridgeEvent(type, NewId(), entity, payload));
            return true;
        }

        /// <summary>Sends raw bytes as one frame (tests use it for malformed input).</summary>
        public void SendRaw(byte[] data, bool text)
        {
            var l = OpenLinkOrNull();
            if (l == null) throw new ConnectionLostException("not connected");
            l.Out.Enqueue(new Outgoing { Data = data, Text = text });
            l.Signal.Release();
        }

        internal void SendReply(BridgeEvent reply)
        {
            var l = OpenLinkOrNull();
            if (l == null)
            {
                Notice("could not answer " + reply.Type + " " + reply.Id + ": not connected");
                return;
            }
            Enqueue(l, reply);
        }

        // ------------------------------------------------------------------ entities

        /// <summary>Creates an entity played by a configured character (by name).</summary>
        public Task<BridgeEntity> InitEntityAsync(string entity, string character)
        {
            return InitAsync(new BridgeEntity(this, entity, character, null));
        }

        /// <summary>Creates an entity from an inline character map (name required; display_name,
        /// persona, greeting, voice, modules).</summary>
        public Task<BridgeEntity> InitEntityAsync(string entity, EepMap inlineCharacter)
        {
            return InitAsync(new BridgeEntity(this, entity, null, inlineCharacter));
        }

        async Task<BridgeEntity> InitAsync(BridgeEntity ent)
        {
            lock (gate)
            {
                if (entities.ContainsKey(ent.Name)) throw new InvalidOperationException("entity " + ent.Name + " already exists on this client");
                entities[ent.Name] = ent;
            }
            try
            {
                var reply = await RequestAsync("entity.init", ent.InitPayload(), ent.Name).ConfigureAwait(false);
                ent.Info = reply.Payload ?? new EepMap();
                return ent;
            }
            catch
            {
                lock (gate) { BridgeEntity cur; if (entities.TryGetValue(ent.Name, out cur) && cur == ent) entities.Remove(ent.Name); }
                throw;
            }
        }

        internal void Forget(BridgeEntity ent)
        {
            lock (gate) { BridgeEntity cur; if (entities.TryGetValue(ent.Name, out cur) && cur == ent) entities.Remove(ent.Name); }
        }

        public BridgeEntity GetEntity(string name)
        {
            lock (gate) { BridgeEntity e; return entities.TryGetValue(name, out e) ? e : null; }
        }

        public int EntityCount { get { lock (gate) return entities.Count; } }

        /// <summary>Registers the game's answer to a bridge request type for every entity (an
        /// entity's own handler wins). Without any, the SDK answers error backend_unavailable.</summary>
        public void SetRequestHandler(string type, Action<BridgeRequest> handler)
        {
            lock (gate)
            {
                if (handler == null) requestHandlers.Remove(type); else requestHandlers[type] = handler;
            }
        }

        // ------------------------------------------------------------------ receiving

        static bool IsBridgeRequest(string type)
        {
            for (int i = 0; i < BridgeRequestTypes.Length; i++) if (BridgeRequestTypes[i] == type) return true;
            return false;
        }

        void Route(BridgeEvent e)
        {
            BridgeEntity ent = null;
            if (e.Status != EventStatus.New)
            {
                PendingRequest p;
                lock (gate)
                {
                    if (waiting.TryGetValue(e.Id, out p) && e.IsFinal) waiting.Remove(e.Id);
                }
                if (p != null)
                {
                    if (e.IsFinal) p.Complete(e); else p.MarkPending();
                    return;
                }
                // A reply nobody waits for (a playback report, a timed-out request): only errors matter.
                if (!e.IsError) return;
            }
            else if (IsBridgeRequest(e.Type))
            {
                lock (gate) if (e.Entity != null) entities.TryGetValue(e.Entity, out ent);
                dispatcher.Enqueue(new DispatchItem { Kind = DispatchKind.Request, Request = new BridgeRequest(this, e), Entity = ent });
                return;
            }
            lock (gate)
            {
                if (e.Ref != null)
                {
                    PendingRequest owner;
                    if (waiting.TryGetValue(e.Ref, out owner)) owner.AddOutput(e);
                }
                if (e.Entity != null) entities.TryGetValue(e.Entity, out ent);
            }
            if (ent != null) ent.OnReceiveThread(e);
            dispatcher.Enqueue(new DispatchItem { Kind = DispatchKind.Event, Event = e, Entity = ent });
        }

        void Notice(string message)
        {
            EnqueueNotice(() => { var h = Log; if (h != null) h(message); });
        }

        void EnqueueNotice(Action a)
        {
            dispatcher.Enqueue(new DispatchItem { Kind = DispatchKind.Notice, Notice = a });
        }

        /// <summary>Runs queued events, bridge requests and notices on the calling thread (call it
        /// once a frame from the game's main thread), then lets each entity send its playback
        /// reports. Returns the number of items run.</summary>
        public int Dispatch(int maxItems = int.MaxValue)
        {
            int n = dispatcher.Drain(maxItems, runItem);
            lock (gate)
            {
                tickList.Clear();
                foreach (var kv in entities) tickList.Add(kv.Value);
            }
            long now = Environment.TickCount;
            for (int i = 0; i < tickList.Count; i++)
            {
                try { tickList[i].Tick(now); }
                catch (Exception ex) { ReportHandlerException(ex); }
            }
            return n;
        }

        void Run(DispatchItem item)
        {
            try
            {
                switch (item.Kind)
                {
                    case DispatchKind.Event:
                        if (item.Entity != null) { item.Entity.DrainKeyframes(); item.Entity.OnMainThread(item.Event); }
                        var h = EventReceived;
                        if (h != null) h(item.Event);
                        break;
                    case DispatchKind.Request:
                        RunRequest(item.Request, item.Entity);
                        break;
                    case DispatchKind.Notice:
                        item.Notice();
                        break;
                }
            }
            catch (Exception ex)
            {
                ReportHandlerException(ex);
            }
        }

        void RunRequest(BridgeRequest req, BridgeEntity ent)
        {
            Action<BridgeRequest> handler = ent != null ? ent.GetRequestHandler(req.Type) : null;
            if (handler == null) lock (gate) requestHandlers.TryGetValue(req.Type, out handler);
            if (handler == null)
            {
                req.Fail("backend_unavailable", "the game has no handler for " + req.Type);
                return;
            }
            try
            {
                handler(req);
            }
            catch (Exception ex)
            {
                req.Fail("internal", req.Type + " handler failed: " + ex.Message);
                ReportHandlerException(ex);
            }
        }

        void ReportHandlerException(Exception ex)
        {
            var h = HandlerException;
            if (h != null) h(ex); else Console.Error.WriteLine("EntityBridge: a handler threw: " + ex);
        }

        // ------------------------------------------------------------------ closing

        /// <summary>Closes cleanly (close frame, then waits for the bridge's), stops reconnecting,
        /// and fails requests still waiting with ConnectionLostException.</summary>
        public async Task CloseAsync(TimeSpan? wait = null)
        {
            if (closing) return;
            closing = true;
            lifetime.Cancel();
            Link l;
            lock (gate) l = link;
            if (l != null)
            {
                l.Out.Enqueue(new Outgoing { Close = true });
                l.Signal.Release();
                var done = await Task.WhenAny(l.Reader, Task.Delay(wait ?? TimeSpan.FromSeconds(3))).ConfigureAwait(false);
                if (done != l.Reader) Abort(l);
                LinkLost(l, "closed by the client");
            }
            state = ClientState.Closed;
        }

        public void Dispose()
        {
            if (!closing)
            {
                closing = true;
                lifetime.Cancel();
                Link l;
                lock (gate) l = link;
                if (l != null) { Abort(l); LinkLost(l, "disposed"); }
                state = ClientState.Closed;
            }
        }
    }
}
