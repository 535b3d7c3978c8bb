// The hand-off from the socket thread to the game's thread. The receive loop enqueues; the
// game calls Drain (BridgeClient.Dispatch) once a frame, so no user callback ever runs on a
// socket thread. Two queues swap under a lock, so steady state allocates nothing.
using System;
using System.Collections.Generic;

namespace EntityBridge
{
    enum DispatchKind { Event, Request, Notice }

    struct DispatchItem
    {
        public DispatchKind Kind;
        public BridgeEvent Event;
        public BridgeEntity Entity;
        public BridgeRequest Request;
        public Action Notice;
    }

    sealed class Dispatcher
    {
        readonly object gate = new object();
        Queue<DispatchItem> incoming = new Queue<DispatchItem>(256);
        Queue<DispatchItem> draining = new Queue<DispatchItem>(256);

        public int Count { get { lock (gate) return incoming.Count + draining.Count; } }

        public void Enqueue(DispatchItem item)
        {
            lock (gate) incoming.Enqueue(item);
        }

        /// <summary>Runs up to `max` items on the calling thread; returns how many ran. Items
        /// enqueued by the handlers themselves wait for the next call.</summary>
        public int Drain(int max, Action<DispatchItem> run)
        {
            if (draining.Count == 0)
            {
                lock (gate)
                {
                    var t = draining; draining = incoming; incoming = t;
                }
            }
            int n = 0;
            while (n < max && draining.Count > 0)
            {
                var item = draining.Dequeue();
                n++;
                run(item);
            }
            return n;
        }
    }
}
