// BridgeClient against a real `entity-bridge serve` (started by run-tests.sh with
// Tests/Config~/bridge.toml): hello in both framings, init by name and inline, turns, errors,
// many entities on one connection.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class LiveClientTests
    {
        [TestCase(Framing.MsgPack)]
        [TestCase(Framing.Json)]
        public async Task HelloInBothFramings(Framing framing)
        {
            var options = TestEnv.Options(framing);
            options.AudioOutSampleRate = 16000;
            options.AudioOutChunkMs = 20;
            options.Scope = "unity-tests";
            var client = await BridgeClient.ConnectAsync(options);
            try
            {
                Assert.That(client.State, Is.EqualTo(ClientState.Open));
                Assert.That(client.Hello.GetLong("protocol"), Is.EqualTo(1L));
                Assert.That(client.Hello.GetList("characters"), Has.Member("echoer").And.Member("speaker"));
                var audio = client.Hello.GetMap("audio_out");
                Assert.That(audio.GetLong("sample_rate"), Is.EqualTo(16000L), "our audio_out is in force");
                Assert.That(audio.GetLong("chunk_ms"), Is.EqualTo(20L));
                Assert.That(client.Hello.GetMap("limits").GetLong("max_frame_bytes"), Is.GreaterThan(0L));
                var npc = await client.InitEntityAsync("npc-" + framing, "echoer");
                var turn = await npc.SayAsync("hello in " + framing);
                Assert.That(turn.Payload.GetString("reply"), Is.EqualTo("You said: hello in " + framing));
            }
            finally
            {
                await client.CloseAsync();
            }
            Assert.That(client.State, Is.EqualTo(ClientState.Closed));
        }

        [Test]
        public async Task InitByNameAndInline()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var byName = await client.InitEntityAsync("npc-named", "greeter");
                Assert.That(byName.Info.GetString("character"), Is.EqualTo("greeter"));
                Assert.That(byName.Info.GetString("display_name"), Is.EqualTo("Greeter"));
                var inline = new EepMap().Set("name", "ghost-writer").Set("display_name", "Ghost Writer")
                    .Set("persona", "An inline test character.")
                    .Set("modules", new EepMap().Set("llm", "echo").Set("tts", "none").Set("stt", "none").Set("vad", "none").Set("countenance", "none"));
                var inl = await client.InitEntityAsync("npc-inline", inline);
                Assert.That(inl.Info.GetString("display_name"), Is.EqualTo("Ghost Writer"));
                Assert.That(inl.Info.GetMap("modules").GetString("llm"), Is.EqualTo("echo"));
                var turn = await inl.SayAsync("who are you");
                Assert.That(turn.Payload.GetString("reply"), Is.EqualTo("You said: who are you"));
                Assert.That(client.EntityCount, Is.EqualTo(2));
                await inl.RemoveAsync();
                Assert.That(client.EntityCount, Is.EqualTo(1));
                Assert.That(client.GetEntity("npc-inline"), Is.Null);
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task ATurnStreamsItsEventsInOrderThenOneFinalReply()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var npc = await client.InitEntityAsync("npc-turn", "greeter");
                var deltas = new StringBuilder();
                var actions = new List<string>();
                var emotions = new List<string>();
                var dispatched = new List<BridgeEvent>();
                int mainThread = Thread.CurrentThread.ManagedThreadId;
                var callbackThreads = new HashSet<int>();
                npc.TextDelta += d => { deltas.Append(d); callbackThreads.Add(Thread.CurrentThread.ManagedThreadId); };
                npc.ActionPerformed += a => actions.Add(a);
                npc.Countenance += (e, i, x) => emotions.Add(e);
                npc.EventReceived += e => dispatched.Add(e);

                var pending = npc.StartSay("Hi there!", UtteranceKind.Combined);
                Assert.That(client.PendingCount, Is.GreaterThanOrEqualTo(1));
                var turn = Pump.Result(client, pending.Task);
                Pump.Until(client, () => client.QueuedEvents == 0, 5, "the queue to drain");

                Assert.That(pending.IsPending, Is.True, "the bridge said pending first");
                Assert.That(turn.Reply.Status, Is.EqualTo("success"));
                Assert.That(turn.Reply.Id, Is.EqualTo(pending.Id));
                string reply = turn.Payload.GetString("reply");
                StringAssert.Contains("Hello there, traveller!", reply);
                Assert.That(turn.Events.Count, Is.GreaterThan(2));
                Assert.That(turn.Events.All(e => e.Ref == pending.Id && e.Status == "new"), Is.True);
                // docs/protocol.md says the deltas concatenate to `reply`; this bridge leaves the
                // leading "*waves* " action out of the deltas (sent as ai.action), so compare the tail.
                string streamed = string.Concat(turn.OfType("ai.text").Select(e => e.Payload.GetString("delta")).ToArray());
                Assert.That(streamed, Is.Not.Empty);
                Assert.That(reply.EndsWith(streamed, StringComparison.Ordinal), Is.True, "deltas '" + streamed + "' end the reply '" + reply + "'");
                Assert.That(deltas.ToString(), Is.EqualTo(streamed), "TextDelta saw the same, in order");
                Assert.That(actions, Is.EqualTo(new[] { "waves" }));
                Assert.That(turn.Payload.GetString("emotion"), Is.EqualTo("happy"), "the [happy] tag sets the mood");
                Assert.That(dispatched.Select(e => e.Id).ToArray(), Is.EqualTo(turn.Events.Select(e => e.Id).ToArray()),
                    "Dispatch delivered every output once, in arrival order, and not the reply");
                Assert.That(callbackThreads, Is.EqualTo(new HashSet<int> { mainThread }), "callbacks ran on the dispatching thread");
                Assert.That(client.PendingCount, Is.EqualTo(0));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task AllFourUtteranceKindsWorldEventAndHistory()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var npc = await client.InitEntityAsync("npc-kinds", "echoer");
                await npc.ChatClearAsync();
                var delayed = await npc.SayAsync("hands over a letter", UtteranceKind.NonverbalDelayed);
                Assert.That(delayed.Reply.Status, Is.EqualTo("success"));
                Assert.That(delayed.OfType("ai.text"), Is.Empty, "a delayed act is stored, not answered");
                foreach (var kind in new[] { UtteranceKind.Verbal, UtteranceKind.Nonverbal, UtteranceKind.Combined })
                {
                    var t = await npc.SayAsync("kind " + kind, kind);
                    StringAssert.Contains("kind " + kind, t.Payload.GetString("reply"));
                }
                var world = await npc.WorldEventAsync("A cart overturns.", "a merchant", false);
                Assert.That(world.Reply.Status, Is.EqualTo("success"));
                var reacted = await npc.WorldEventAsync("The bell rings.", null, true);
                Assert.That(reacted.Payload.GetString("reply"), Is.Not.Null.And.Not.Empty, "respond: true starts a turn");
                var scene = new EepMap()
                    .Set("characters", new List<object> { new EepMap().Set("name", "player").Set("position", new EepMap().Set("x", 1.5).Set("y", 0.0).Set("z", -2.0)) })
                    .Set("objects", new List<object> { new EepMap().Set("name", "gate").Set("position", new EepMap().Set("x", 10.0).Set("y", 0.0)) });
                Assert.That((await npc.SetSceneAsync(scene)).Status, Is.EqualTo("success"));
                var history = await npc.ChatHistoryAsync(50);
                Assert.That(history.Count, Is.GreaterThanOrEqualTo(6));
                var texts = history.Cast<EepMap>().Select(m => m.GetString("text")).ToList();
                Assert.That(texts.Any(t => t != null && t.Contains("kind verbal")), Is.True, string.Join(" | ", texts.ToArray()));
                long cleared = await npc.ChatClearAsync();
                Assert.That(cleared, Is.EqualTo((long)history.Count));
                Assert.That(await npc.ChatHistoryAsync(), Is.Empty);
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task ErrorsAreExceptionsWithTheProtocolsCodes()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var ex = Assert.Throws<BridgeException>(() => client.InitEntityAsync("npc-x", "nobody").GetAwaiter().GetResult());
                Assert.That(ex.Code, Is.EqualTo("unknown_character"));
                StringAssert.Contains("echoer", ex.BridgeMessage, "the message lists the configured characters");
                Assert.That(client.GetEntity("npc-x"), Is.Null, "a failed init leaves no entity behind");

                var npc = await client.InitEntityAsync("npc-err", "echoer");
                var bad = Assert.Throws<BridgeException>(() =>
                    client.RequestAsync("user.utterance", new EepMap().Set("kind", "verbal").Set("text", 42L), npc.Name).GetAwaiter().GetResult());
                Assert.That(bad.Code, Is.EqualTo("bad_event"));
                StringAssert.Contains("text", bad.BridgeMessage, "the message names the field");

                var unknown = Assert.Throws<BridgeException>(() =>
                    client.RequestAsync("user.utterance", new EepMap().Set("kind", "verbal").Set("text", "hi"), "ghost").GetAwaiter().GetResult());
                Assert.That(unknown.Code, Is.EqualTo("unknown_entity"));

                var dup = Assert.Throws<BridgeException>(() =>
                    client.RequestAsync("entity.init", new EepMap().Set("character", "echoer"), npc.Name).GetAwaiter().GetResult());
                Assert.That(dup.Code, Is.EqualTo("entity_exists"));

                // An unknown type cannot be answered in kind: an `error` event with ref.
                var errors = new List<BridgeEvent>();
                client.EventReceived += e => { if (e.Type == "error") errors.Add(e); };
                var p = client.Send("no.such.type", null, npc.Name, false, false, TimeSpan.FromSeconds(2));
                Pump.Until(client, () => errors.Count > 0, 10, "an error event");
                Assert.That(errors[0].Payload.GetString("code"), Is.EqualTo("unknown_type"));
                Assert.That(errors[0].Payload.GetString("ref"), Is.EqualTo(p.Id));

                var timeoutEx = Pump.Wait(client, p.Task, 10);
                Assert.That(timeoutEx, Is.InstanceOf<TimeoutException>(), "no final reply came: the request times out");
                Assert.That(client.PendingCount, Is.EqualTo(0));

                // The session carries on.
                var t = await npc.SayAsync("still here?");
                Assert.That(t.Payload.GetString("reply"), Is.EqualTo("You said: still here?"));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task TenEntitiesOnOneClientAtOnce()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var inits = Enumerable.Range(0, 10).Select(i => client.InitEntityAsync("crowd-" + i, i % 2 == 0 ? "echoer" : "greeter")).ToArray();
                var npcs = await Task.WhenAll(inits);
                var counts = new int[10];
                for (int i = 0; i < 10; i++)
                {
                    int k = i;
                    npcs[i].TextDelta += d => counts[k]++;
                }
                var turns = npcs.Select((n, i) => n.SayAsync("number " + i)).ToArray();
                var results = Pump.Result(client, Task.WhenAll(turns), 60);
                for (int i = 0; i < 10; i++)
                {
                    string reply = results[i].Payload.GetString("reply");
                    if (i % 2 == 0) Assert.That(reply, Is.EqualTo("You said: number " + i));
                    else StringAssert.Contains("Hello there", reply);
                    Assert.That(results[i].Events.All(e => e.Entity == "crowd-" + i), Is.True, "outputs stay with their entity");
                    Assert.That(results[i].OfType("ai.text").Count, Is.GreaterThan(0));
                }
                Pump.Until(client, () => client.QueuedEvents == 0, 5, "dispatch");
                for (int i = 0; i < 10; i++) Assert.That(counts[i], Is.EqualTo(results[i].OfType("ai.text").Count), "entity " + i);
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task ConnectingToNothingFailsClearly()
        {
            var options = TestEnv.Options();
            options.Url = "ws://127.0.0.1:9/";
            options.ConnectTimeout = TimeSpan.FromSeconds(3);
            var ex = Assert.Throws<ConnectionLostException>(() => BridgeClient.ConnectAsync(options).GetAwaiter().GetResult());
            StringAssert.Contains("127.0.0.1:9", ex.Message);
            await Task.Yield();
        }

        [Test]
        public async Task CloseFailsWaitingRequestsAndRefusesNewOnes()
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            var npc = await client.InitEntityAsync("npc-close", "echoer");
            await client.CloseAsync();
            var p = npc.StartSay("after close");
            Assert.That(Pump.Wait(client, p.Task, 5), Is.InstanceOf<ConnectionLostException>());
            Assert.That(client.State, Is.EqualTo(ClientState.Closed));
        }
    }
}
