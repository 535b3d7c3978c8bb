// Requests from the bridge to the game (movement.perform, movement.scene.request,
// movement.actions.request) answered by registered handlers on the dispatching thread.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class BridgeRequestTests
    {
        /// <summary>The real bridge: a registered action plus an LLM reply with the inline syntax
        /// [[open_gate {"gate": "north"}]] makes it send movement.perform (ref = the turn) and
        /// wait for the game's answer, which ends up in the turn's `performed`.</summary>
        [TestCase(true)]
        [TestCase(false)]
        public async Task MovementPerformFromTheRealBridgeIsAnsweredByTheHandler(bool succeed)
        {
            var client = await BridgeClient.ConnectAsync(TestEnv.Options());
            try
            {
                var npc = await client.InitEntityAsync("gate-" + succeed, "gatekeeper");
                var actions = new List<object> { new EepMap().Set("name", "open_gate").Set("description", "Open the gate")
                    .Set("params", new EepMap().Set("gate", new EepMap().Set("type", "string"))) };
                await npc.SetActionsAsync(actions);
                var performed = new List<BridgeRequest>();
                int mainThread = Thread.CurrentThread.ManagedThreadId;
                int handlerThread = -1;
                npc.SetRequestHandler("movement.perform", req =>
                {
                    handlerThread = Thread.CurrentThread.ManagedThreadId;
                    performed.Add(req);
                    if (succeed) req.Succeed(new EepMap().Set("feedback", "The north gate is open."));
                    else req.Fail("backend_error", "the gate is locked");
                });
                var turn = Pump.Result(client, npc.SayAsync("Open the gate, please."), 60);
                Assert.That(performed.Count, Is.EqualTo(1), "one movement.perform for the one action");
                Assert.That(handlerThread, Is.EqualTo(mainThread));
                var acts = performed[0].Actions;
                Assert.That(((EepMap)acts[0]).GetString("name"), Is.EqualTo("open_gate"));
                Assert.That(((EepMap)acts[0]).GetMap("args").GetString("gate"), Is.EqualTo("north"));
                Assert.That(performed[0].Event.Ref, Is.EqualTo(turn.Reply.Id));
                var result = (EepMap)turn.Payload.GetList("performed")[0];
                Assert.That(result.GetString("name"), Is.EqualTo("open_gate"));
                if (succeed)
                {
                    Assert.That(result.GetString("status"), Is.EqualTo("success"));
                    Assert.That(result.GetString("feedback"), Is.EqualTo("The north gate is open."));
                }
                else
                {
                    Assert.That(result.GetString("status"), Is.EqualTo("error"));
                    StringAssert.Contains("the gate is locked", result.GetString("message"));
                }
                Assert.That(turn.Payload.GetString("spoken", "").Contains("[["), Is.False, "the inline action is never spoken");
            }
            finally { await client.CloseAsync(); }
        }

        /// <summary>All three bridge requests (the real bridge sends only movement.perform so
        /// far), over the real wire against a small stand-in peer
        /// (Tests/Config~/fake_bridge_requests.py) that reports the answers it got back.</summary>
        [Test]
        public async Task HandlersAnswerBridgeRequestsOverTheWire()
        {
            string python = TestEnv.Require("EB_PYTHON", "python with msgpack and websockets");
            string portFile = Path.Combine(TestEnv.Tmp, "fake-requests.url");
            if (File.Exists(portFile)) File.Delete(portFile);
            var psi = new ProcessStartInfo(python, "\"" + Path.Combine(TestEnv.ConfigDir, "fake_bridge_requests.py") + "\" \"" + portFile + "\"")
            { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            var fake = Process.Start(psi);
            try
            {
                var clock = Stopwatch.StartNew();
                while (!(File.Exists(portFile) && new FileInfo(portFile).Length > 0))
                {
                    if (fake.HasExited) Assert.Fail("fake peer exited: " + fake.StandardError.ReadToEnd());
                    if (clock.Elapsed.TotalSeconds > 20) Assert.Fail("fake peer did not start");
                    Thread.Sleep(20);
                }
                var o = TestEnv.Options();
                o.Url = File.ReadAllText(portFile).Trim();
                var client = await BridgeClient.ConnectAsync(o);
                try
                {
                    var npc = await client.InitEntityAsync("gate-2", "gatekeeper");
                    int mainThread = Thread.CurrentThread.ManagedThreadId;
                    var threads = new HashSet<int>();
                    BridgeRequest performed = null;
                    // Entity handler for perform (it fails: the LLM reads the message);
                    // client-wide handler for scene; none at all for actions.request.
                    npc.SetRequestHandler("movement.perform", req =>
                    {
                        threads.Add(Thread.CurrentThread.ManagedThreadId);
                        performed = req;
                        Assert.That(req.Fail("backend_error", "the gate is locked"), Is.True);
                        Assert.That(req.Succeed(null), Is.False, "only one answer");
                    });
                    client.SetRequestHandler("movement.scene.request", req =>
                    {
                        threads.Add(Thread.CurrentThread.ManagedThreadId);
                        req.Succeed(new EepMap().Set("characters", new List<object> { new EepMap().Set("name", "player") })
                                                .Set("objects", new List<object>()));
                    });
                    var turn = Pump.Result(client, npc.SayAsync("Open the gate."), 30);
                    Assert.That(threads, Is.EqualTo(new HashSet<int> { mainThread }), "handlers ran in Dispatch");
                    Assert.That(((EepMap)performed.Actions[0]).GetString("name"), Is.EqualTo("open_gate"));

                    var answers = turn.Payload.GetList("answers").Cast<EepMap>().ToList();
                    Assert.That(answers.Count, Is.EqualTo(3));
                    foreach (var a in answers)
                    {
                        Assert.That(a.GetString("id"), Is.EqualTo(a.GetString("expected_id")), "the reply reuses the request's id");
                        Assert.That(a.GetString("entity"), Is.EqualTo("gate-2"));
                    }
                    Assert.That(answers[0].GetString("type"), Is.EqualTo("movement.perform"));
                    Assert.That(answers[0].GetString("status"), Is.EqualTo("error"));
                    Assert.That(answers[0].GetMap("payload").GetString("code"), Is.EqualTo("backend_error"));
                    Assert.That(answers[0].GetMap("payload").GetString("message"), Is.EqualTo("the gate is locked"));
                    Assert.That(answers[1].GetString("status"), Is.EqualTo("success"));
                    Assert.That(((EepMap)answers[1].GetMap("payload").GetList("characters")[0]).GetString("name"), Is.EqualTo("player"));
                    Assert.That(answers[2].GetString("type"), Is.EqualTo("movement.actions.request"));
                    Assert.That(answers[2].GetString("status"), Is.EqualTo("error"), "no handler: the SDK still answers");
                    StringAssert.Contains("no handler", answers[2].GetMap("payload").GetString("message"));
                }
                finally { await client.CloseAsync(); }
            }
            finally
            {
                if (!fake.HasExited) fake.Kill();
                fake.WaitForExit(5000);
                fake.Dispose();
            }
        }
    }
}
