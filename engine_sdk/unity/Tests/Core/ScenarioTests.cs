// The conformance corpus' scripted scenarios (tests/conformance/scenarios), replayed with the
// SDK's codec over a plain ClientWebSocket against a bridge started with the corpus' own
// tests/conformance/bridge.toml (through the SDK's SidecarLauncher).
using System;
using System.Collections.Generic;
using System.IO;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class ScenarioTests
    {
        SidecarLauncher bridge;

        [TestFixtureSetUp]
        public void StartBridge()
        {
            bridge = SidecarLauncher.Start(new SidecarOptions
            {
                Executable = TestEnv.BridgeBin,
                ConfigPath = Path.Combine(TestEnv.ConformanceDir, "bridge.toml"),
                WorkingDirectory = TestEnv.Tmp,
                StartTimeout = TimeSpan.FromSeconds(60),
            });
        }

        [TestFixtureTearDown]
        public void StopBridge()
        {
            if (bridge != null) bridge.Dispose();
        }

        static IEnumerable<string> Scenarios()
        {
            string dir = Environment.GetEnvironmentVariable("EB_CONFORMANCE_DIR");
            if (string.IsNullOrEmpty(dir) || !Directory.Exists(Path.Combine(dir, "scenarios"))) return new[] { "(corpus missing)" };
            var names = new List<string>();
            foreach (var f in Directory.GetFiles(Path.Combine(dir, "scenarios"), "*.json")) names.Add(Path.GetFileName(f));
            names.Sort(StringComparer.Ordinal);
            return names;
        }

        [TestCaseSource("Scenarios")]
        public async Task ScenarioPlaysAsScripted(string file)
        {
            var doc = (EepMap)Json.Decode(File.ReadAllText(Path.Combine(TestEnv.ConformanceDir, "scenarios", file), Encoding.UTF8));
            bool json = doc.GetString("framing") == "json";
            var codec = new EventCodec();
            using (var ws = new ClientWebSocket())
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                await ws.ConnectAsync(new Uri(bridge.Url), cts.Token);
                var buffer = new byte[1 << 20];
                int step = 0;
                foreach (EepMap s in doc.GetList("steps"))
                {
                    step++;
                    var send = s.GetMap("send");
                    if (send != null)
                    {
                        byte[] data = json ? Encoding.UTF8.GetBytes(Json.Encode(send)) : MsgPackWriter.Encode(send);
                        await ws.SendAsync(new ArraySegment<byte>(data), json ? WebSocketMessageType.Text : WebSocketMessageType.Binary, true, cts.Token);
                        continue;
                    }
                    var expect = s.GetMap("expect");
                    int count = 0;
                    WebSocketReceiveResult r;
                    do
                    {
                        r = await ws.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), cts.Token);
                        count += r.Count;
                    } while (!r.EndOfMessage);
                    Assert.That(r.MessageType, Is.EqualTo(json ? WebSocketMessageType.Text : WebSocketMessageType.Binary), file + " step " + step + ": framing");
                    var e = json ? codec.DecodeText(buffer, 0, count) : codec.DecodeBinary(buffer, 0, count);
                    string where = file + " step " + step + ": got " + e;
                    Assert.That(e.Type, Is.EqualTo(expect.GetString("type")), where);
                    Assert.That(e.Status, Is.EqualTo(expect.GetString("status")), where);
                    if (expect.ContainsKey("id")) Assert.That(e.Id, Is.EqualTo(expect.GetString("id")), where);
                    if (expect.ContainsKey("code")) Assert.That(e.ErrorCode, Is.EqualTo(expect.GetString("code")), where);
                    if (expect.ContainsKey("ref"))
                    {
                        string gotRef = e.Type == "error" && e.Payload != null ? e.Payload.GetString("ref") : e.Ref;
                        Assert.That(gotRef, Is.EqualTo(expect.GetString("ref")), where);
                    }
                }
                // Nothing more arrives after the last step.
                var extra = ws.ReceiveAsync(new ArraySegment<byte>(buffer), cts.Token);
                var done = await Task.WhenAny(extra, Task.Delay(500));
                Assert.That(done, Is.Not.SameAs(extra), file + ": a stray message after the last step");
                ws.Abort();
            }
        }
    }
}
