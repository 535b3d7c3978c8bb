// Test helpers: run the client's Dispatch on the test thread (as Unity's Update would) until
// a condition holds or a bounded time passes.
using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    static class Pump
    {
        public static void Until(BridgeClient client, Func<bool> done, double seconds, string what)
        {
            var clock = Stopwatch.StartNew();
            while (!done())
            {
                if (clock.Elapsed.TotalSeconds > seconds) Assert.Fail("timed out after " + seconds + " s waiting for " + what);
                client.Dispatch();
                Thread.Sleep(5);
            }
            client.Dispatch();
        }

        public static void For(BridgeClient client, double seconds)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds) { client.Dispatch(); Thread.Sleep(5); }
        }

        /// <summary>Waits for a task while dispatching; returns its exception (or null).</summary>
        public static Exception Wait(BridgeClient client, Task task, double seconds)
        {
            Until(client, () => task.IsCompleted, seconds, "a task");
            if (task.IsFaulted) return task.Exception.InnerException;
            return null;
        }

        public static T Result<T>(BridgeClient client, Task<T> task, double seconds = 30)
        {
            var ex = Wait(client, task, seconds);
            if (ex != null) throw new AssertionException("task failed: " + ex);
            return task.Result;
        }
    }
}
