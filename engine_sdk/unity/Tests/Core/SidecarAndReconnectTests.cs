// The sidecar launcher starting and stopping a real bridge, its error reports, and a client
// that reconnects after the bridge restarts, with its entities re-created.
using System;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class SidecarAndReconnectTests
    {
        static SidecarOptions Sidecar(int port = 0)
        {
            return new SidecarOptions
            {
                Executable = TestEnv.BridgeBin,
                ConfigPath = Path.Combine(TestEnv.ConfigDir, "bridge.toml"),
                Port = port,
                StartTimeout = TimeSpan.FromSeconds(60),
                WorkingDirectory = TestEnv.Tmp,
            };
        }

        static int FreePort()
        {
            var l = new TcpListener(IPAddress.Loopback, 0);
            l.Start();
            int port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            return port;
        }

        [Test]
        public async Task TheLauncherStartsAndStopsARealBridge()
        {
            var bridge = SidecarLauncher.Start(Sidecar());
            try
            {
                StringAssert.StartsWith("ws://127.0.0.1:", bridge.Url);
                var o = TestEnv.Options();
                o.Url = bridge.Url;
                var client = await BridgeClient.ConnectAsync(o);
                string lost = null;
                client.Disconnected += reason => lost = reason;
                var npc = await client.InitEntityAsync("side-1", "echoer");
                Assert.That((await npc.SayAsync("ping")).Payload.GetString("reply"), Is.EqualTo("You said: ping"));
                int code = bridge.Stop();
                Assert.That(code, Is.EqualTo(0), "closing stdin makes the bridge exit cleanly");
                Assert.That(bridge.HasExited, Is.True);
                Pump.Until(client, () => lost != null, 10, "the client to notice");
                Assert.That(client.State, Is.EqualTo(ClientState.Closed), "AutoReconnect is off here");
            }
            finally { bridge.Dispose(); }
        }

        [Test]
        public async Task TheHelloCarriesTheToken()
        {
            var o = Sidecar();
            o.ConfigPath = Path.Combine(TestEnv.ConfigDir, "bridge-token.toml");
            using (var bridge = SidecarLauncher.Start(o))
            {
                var options = TestEnv.Options();
                options.Url = bridge.Url;
                foreach (var wrong in new[] { null, "not-it" })
                {
                    options.Token = wrong;
                    var ex = Assert.Throws<BridgeException>(() => BridgeClient.ConnectAsync(options).GetAwaiter().GetResult(), "token " + wrong);
                    Assert.That(ex.Code, Is.EqualTo("unauthorized"));
                }
                options.Token = "unity-test-secret";
                var client = await BridgeClient.ConnectAsync(options);
                var npc = await client.InitEntityAsync("t-1", "echoer");
                Assert.That((await npc.SayAsync("secret handshake")).Payload.GetString("reply"), Is.EqualTo("You said: secret handshake"));
                await client.CloseAsync();
            }
        }

        [Test]
        public void NotInstalledIsNamed()
        {
            var o = Sidecar();
            o.Executable = "/nonexistent/entity-bridge";
            var ex = Assert.Throws<SidecarException>(() => SidecarLauncher.Start(o));
            Assert.That(ex.Reason, Is.EqualTo("not_installed"));
            StringAssert.Contains("/nonexistent/entity-bridge", ex.Message);
        }

        [Test]
        public void AConfigErrorIsNamedWithTheBridgesMessage()
        {
            string bad = Path.Combine(TestEnv.Tmp, "bad-bridge.toml");
            File.WriteAllText(bad, "[characters.x\nmodules = 3\n");
            var o = Sidecar();
            o.ConfigPath = bad;
            var ex = Assert.Throws<SidecarException>(() => SidecarLauncher.Start(o));
            Assert.That(ex.Reason, Is.EqualTo("config_error"), ex.Message);
            StringAssert.Contains("bad-bridge.toml", ex.Message);
        }

        [Test]
        public void APortInUseIsNamed()
        {
            var holder = new TcpListener(IPAddress.Loopback, 0);
            holder.Start();
            try
            {
                int port = ((IPEndPoint)holder.LocalEndpoint).Port;
                var ex = Assert.Throws<SidecarException>(() => SidecarLauncher.Start(Sidecar(port)));
                Assert.That(ex.Reason, Is.EqualTo("port_in_use"), ex.Message);
                StringAssert.Contains(port.ToString(), ex.Message);
            }
            finally { holder.Stop(); }
        }

        [Test]
        public async Task AfterABridgeRestartTheClientReconnectsAndItsEntitiesComeBack()
        {
            int port = FreePort();
            var first = SidecarLauncher.Start(Sidecar(port));
            SidecarLauncher second = null;
            BridgeClient client = null;
            try
            {
                var o = TestEnv.Options();
                o.Url = first.Url;
                o.AutoReconnect = true;
                o.ReconnectInitialDelay = TimeSpan.FromMilliseconds(100);
                o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(500);
                client = await BridgeClient.ConnectAsync(o);
                int disconnects = 0, reconnects = 0;
                client.Disconnected += r => disconnects++;
                client.Reconnected += () => reconnects++;
                var a = await client.InitEntityAsync("keep-a", "echoer");
                var b = await client.InitEntityAsync("keep-b", "greeter");
                string session1 = client.Hello.GetString("session");

                Assert.That(first.Stop(), Is.EqualTo(0));
                Pump.Until(client, () => disconnects == 1, 10, "the disconnect");
                Assert.That(client.State, Is.EqualTo(ClientState.Reconnecting));
                var during = a.StartSay("are you there?");
                Assert.That(Pump.Wait(client, during.Task, 5), Is.InstanceOf<ConnectionLostException>(), "requests fail fast while down");

                second = SidecarLauncher.Start(Sidecar(port));
                Pump.Until(client, () => reconnects == 1, 30, "the reconnect");
                Assert.That(client.State, Is.EqualTo(ClientState.Open));
                Assert.That(client.ReconnectCount, Is.EqualTo(1));
                Assert.That(client.Hello.GetString("session"), Is.Not.EqualTo(session1), "a new session on the new bridge");
                // Both entities exist on the new bridge: their turns work, and init again is refused.
                Assert.That(Pump.Result(client, a.SayAsync("back again")).Payload.GetString("reply"), Is.EqualTo("You said: back again"));
                StringAssert.Contains("Hello there", Pump.Result(client, b.SayAsync("hi")).Payload.GetString("reply"));
                var dup = Pump.Wait(client, client.RequestAsync("entity.init", new EepMap().Set("character", "echoer"), "keep-a"), 10) as BridgeException;
                Assert.That(dup, Is.Not.Null);
                Assert.That(dup.Code, Is.EqualTo("entity_exists"));
            }
            finally
            {
                if (client != null) await client.CloseAsync();
                first.Dispose();
                if (second != null) second.Dispose();
            }
        }
    }
}
