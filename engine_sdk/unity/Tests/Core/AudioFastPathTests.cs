// The zero-allocation audio path (BridgeOptions.DispatchAudioEvents = false): the in-place
// scanner agrees with the ordinary decoder on every audio frame, says no to everything else
// without throwing, and a live session through it plays what an ordinary session plays.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class AudioFastPathTests
    {
        static readonly string[] Names = { "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U" };

        static EepMap RandomAudio(Random rng)
        {
            var pcm = new byte[2 * rng.Next(0, 1500)];
            rng.NextBytes(pcm);
            var keys = new List<object>();
            int nk = rng.Next(0, 6);
            for (int i = 0; i < nk; i++)
            {
                object w = rng.Next(3) == 0 ? (object)(long)rng.Next(0, 2) : rng.NextDouble();
                keys.Add(new List<object> { (long)rng.Next(0, 100000), rng.Next(8) == 0 ? "XX" : Names[rng.Next(Names.Length)], w });
            }
            var payload = new List<KeyValuePair<string, object>> {
                new KeyValuePair<string, object>("speech", "sp-" + rng.Next(1000)),
                new KeyValuePair<string, object>("seq", (long)rng.Next(0, 70000)),
                new KeyValuePair<string, object>("t", (long)rng.Next(0, 5000000)),
                new KeyValuePair<string, object>("audio", pcm),
                new KeyValuePair<string, object>("visemes", keys),
                new KeyValuePair<string, object>("volume", new List<object> { 0.1, 0.5 }),
            };
            if (rng.Next(3) == 0) payload.Add(new KeyValuePair<string, object>("future_field", new EepMap().Set("x", new List<object> { 1L, "y", null })));
            var env = new List<KeyValuePair<string, object>> {
                new KeyValuePair<string, object>("type", "ai.speech.audio"),
                new KeyValuePair<string, object>("id", "b" + rng.Next()),
                new KeyValuePair<string, object>("entity", "npc-" + rng.Next(5)),
                new KeyValuePair<string, object>("ref", "u" + rng.Next(50)),
            };
            var p = new EepMap();
            foreach (var kv in payload.OrderBy(x => rng.Next())) p.Append(kv.Key, kv.Value);
            env.Add(new KeyValuePair<string, object>("payload", p));
            var m = new EepMap();
            foreach (var kv in env.OrderBy(x => rng.Next())) m.Append(kv.Key, kv.Value);
            return m;
        }

        [Test]
        public void TheScannerAgreesWithTheDecoderOnAudioFrames()
        {
            var rng = new Random(5);
            var codec = new EventCodec();
            for (int round = 0; round < 3000; round++)
            {
                byte[] frame = MsgPackWriter.Encode(RandomAudio(rng));
                var chunk = new AudioChunk();
                Assert.That(codec.TryScanAudio(frame, 0, frame.Length, ref chunk), Is.True, "round " + round);
                var e = codec.DecodeBinary(frame, 0, frame.Length);
                var p = e.Payload;
                Assert.That(chunk.Entity, Is.EqualTo(e.Entity));
                Assert.That(chunk.Ref, Is.EqualTo(e.Ref));
                Assert.That(chunk.Speech, Is.EqualTo(p.GetString("speech")));
                Assert.That(chunk.Seq, Is.EqualTo(p.GetLong("seq")));
                Assert.That(chunk.T, Is.EqualTo(p.GetLong("t")));
                var audio = new byte[chunk.AudioCount];
                Buffer.BlockCopy(frame, chunk.AudioOffset, audio, 0, chunk.AudioCount);
                Assert.That(audio, Is.EqualTo(p.GetBytes("audio")));
                var known = p.GetList("visemes").Cast<List<object>>().Where(k => Visemes.IndexOf((string)k[1]) >= 0).ToList();
                Assert.That(chunk.KeyCount, Is.EqualTo(known.Count));
                for (int i = 0; i < known.Count; i++)
                {
                    Assert.That(codec.Reader.KeyT[i], Is.EqualTo((int)(long)known[i][0]));
                    Assert.That(Visemes.Names[codec.Reader.KeyViseme[i]], Is.EqualTo(known[i][1]));
                    Assert.That(codec.Reader.KeyWeight[i], Is.EqualTo(Convert.ToSingle(known[i][2])));
                }
            }
        }

        [Test]
        public void TheScannerSaysNoToEverythingElseWithoutThrowing()
        {
            var codec = new EventCodec();
            var chunk = new AudioChunk();
            var others = new[] {
                new EepMap().Set("type", "ai.text").Set("id", "b1").Set("entity", "n").Set("payload", new EepMap().Set("delta", "hi")),
                new EepMap().Set("type", "ai.speech.audio").Set("id", "b1").Set("entity", "n").Set("status", "error")
                    .Set("payload", new EepMap().Set("code", "x").Set("message", "y")),
                new EepMap().Set("type", "ai.speech.audio").Set("id", "b1").Set("payload", new EepMap().Set("speech", "s").Set("audio", new byte[4])),
                new EepMap().Set("type", "ai.speech.audio").Set("id", "b1").Set("entity", "n").Set("payload", new EepMap().Set("speech", "s").Set("audio", "AAAA")),
            };
            foreach (var m in others)
            {
                byte[] f = MsgPackWriter.Encode(m);
                Assert.That(codec.TryScanAudio(f, 0, f.Length, ref chunk), Is.False, Json.Encode(m));
            }
            byte[] frame = MsgPackWriter.Encode(RandomAudio(new Random(9)));
            for (int n = 0; n < frame.Length; n++)
                Assert.That(codec.TryScanAudio(frame, 0, n, ref chunk), Is.False, "prefix " + n);
            var rng = new Random(10);
            for (int round = 0; round < 5000; round++)
            {
                var bent = (byte[])frame.Clone();
                for (int k = 0; k < 1 + rng.Next(4); k++) bent[rng.Next(bent.Length)] = (byte)rng.Next(256);
                bool scanned = codec.TryScanAudio(bent, 0, bent.Length, ref chunk);
                if (scanned)    // then the ordinary decoder must accept it too, with the same audio
                {
                    var e = codec.DecodeBinary(bent, 0, bent.Length);
                    Assert.That(e.Payload.GetBytes("audio").Length, Is.EqualTo(chunk.AudioCount));
                }
            }
            var bad = (EepMap)Json.Decode(File.ReadAllText(Path.Combine(TestEnv.ConformanceDir, "frames_bad.json"), Encoding.UTF8), 100000);
            foreach (EepMap f in bad.GetList("frames"))
            {
                var b = TestEnv.Unhex(f.GetString("msgpack"));
                Assert.That(codec.TryScanAudio(b, 0, b.Length, ref chunk), Is.False, f.GetString("name"));
            }
        }

        [TestCase("6f6b80", false)]         // lone continuation
        [TestCase("6f6bc328", false)]       // bad continuation
        [TestCase("6f6bc080", false)]       // overlong NUL
        [TestCase("6f6be080af", false)]     // overlong '/'
        [TestCase("6f6beda080", false)]     // surrogate
        [TestCase("6f6bf4908080", false)]   // above U+10FFFF
        [TestCase("6f6bff", false)]
        [TestCase("6f6be282", false)]       // cut multibyte
        [TestCase("c3a9", true)]            // é
        [TestCase("e4bda0", true)]          // 你
        [TestCase("f09f9880", true)]        // 😀
        public void SkippedStringsAreCheckedForUtf8LikeTheDecoderDoes(string hex, bool valid)
        {
            var b = TestEnv.Unhex(hex);
            // {"type": "ai.speech.audio", "entity": "n", "payload": {"speech": "s", "audio": bin, "note": <str>}}
            var w = new MsgPackWriter();
            w.WriteMapHeader(3);
            w.WriteString("type"); w.WriteString("ai.speech.audio");
            w.WriteString("entity"); w.WriteString("n");
            w.WriteString("payload"); w.WriteMapHeader(3);
            w.WriteString("speech"); w.WriteString("s");
            w.WriteString("audio"); w.WriteBin(new byte[4], 0, 4);
            w.WriteString("note");
            var frame = w.ToArray();
            var full = new byte[frame.Length + 1 + b.Length];
            Buffer.BlockCopy(frame, 0, full, 0, frame.Length);
            full[frame.Length] = (byte)(0xa0 | b.Length);
            Buffer.BlockCopy(b, 0, full, frame.Length + 1, b.Length);
            var codec = new EventCodec();
            var chunk = new AudioChunk();
            Assert.That(codec.TryScanAudio(full, 0, full.Length, ref chunk), Is.EqualTo(valid));
            if (valid) Assert.That(codec.DecodeBinary(full, 0, full.Length).Payload.GetString("note"), Is.Not.Null);
            else Assert.That(Assert.Throws<EepCodecException>(() => codec.DecodeBinary(full, 0, full.Length)).Category, Is.EqualTo("utf8"));
        }

        [Test]
        public void GoldenAudioFramesScanLikeTheyDecode()
        {
            var doc = (EepMap)Json.Decode(File.ReadAllText(Path.Combine(TestEnv.ConformanceDir, "frames.json"), Encoding.UTF8), 100000);
            var codec = new EventCodec();
            int seen = 0;
            foreach (EepMap f in doc.GetList("frames"))
            {
                var b = TestEnv.Unhex(f.GetString("msgpack"));
                var chunk = new AudioChunk();
                bool scanned = codec.TryScanAudio(b, 0, b.Length, ref chunk);
                BridgeEvent e;
                try { e = codec.DecodeBinary(b, 0, b.Length); } catch (EepCodecException) { Assert.That(scanned, Is.False); continue; }
                bool isAudio = e.Type == "ai.speech.audio" && e.Status == "new" && e.Entity != null && e.Payload != null && e.Payload.GetBytes("audio") != null;
                Assert.That(scanned, Is.EqualTo(isAudio), f.GetString("name"));
                if (!scanned) continue;
                seen++;
                Assert.That(chunk.AudioCount, Is.EqualTo(e.Payload.GetBytes("audio").Length));
                Assert.That(chunk.Speech, Is.EqualTo(e.Payload.GetString("speech")));
            }
            Assert.That(seen, Is.GreaterThan(0), "the corpus has audio frames");
        }

        [Test]
        public async Task ALiveSessionThroughTheFastPathPlaysWhatTheBridgeSent()
        {
            var options = TestEnv.Options();
            options.AudioOutSampleRate = 16000;
            options.AudioOutLeadMs = 0;
            options.DispatchAudioEvents = false;
            var fast = await BridgeClient.ConnectAsync(options);
            try
            {
                var npc = await fast.InitEntityAsync("fast-b", "speaker");
                var speech = npc.AttachSpeech(16000);
                var face = npc.AttachFace();
                face.VisemeAttack = face.VisemeRelease = 0;
                // What the bridge sent, copied off the wire before routing, decoded afterwards.
                var wire = new List<byte[]>();
                fast.FrameTap += (seg, text) =>
                {
                    var copy = new byte[seg.Count];
                    Buffer.BlockCopy(seg.Array, seg.Offset, copy, 0, seg.Count);
                    lock (wire) wire.Add(copy);
                };
                var audioEvents = new List<BridgeEvent>();
                npc.EventReceived += e => { if (e.Type == "ai.speech.audio") audioEvents.Add(e); };
                var turn = Pump.Result(fast, npc.TtsSayAsync("Good evening, traveller. The stew is hot."), 60);
                Pump.For(fast, 0.1);
                Assert.That(turn.OfType("ai.speech.audio"), Is.Empty, "chunks skipped the event machinery");
                Assert.That(audioEvents, Is.Empty);
                Assert.That(turn.OfType("ai.speech.start").Count, Is.GreaterThanOrEqualTo(2), "other events still come");

                var codec = new EventCodec();
                var sent = new List<short>();
                var keys = new List<Tuple<string, int, string, float>>();
                List<byte[]> frames;
                lock (wire) frames = new List<byte[]>(wire);
                foreach (var f in frames)
                {
                    var e = codec.DecodeBinary(f, 0, f.Length);
                    if (e.Type != "ai.speech.audio") continue;
                    var a = e.Payload.GetBytes("audio");
                    for (int i = 0; i + 1 < a.Length; i += 2) sent.Add((short)(a[i] | (a[i + 1] << 8)));
                    foreach (List<object> k in e.Payload.GetList("visemes"))
                        keys.Add(Tuple.Create(e.Payload.GetString("speech"), (int)(long)k[0], (string)k[1], Convert.ToSingle(k[2])));
                }
                Assert.That(sent.Count, Is.GreaterThan(8000));
                Assert.That(speech.BufferedSamples, Is.EqualTo(sent.Count));
                var pulled = new float[sent.Count];
                speech.Read(pulled, 0, pulled.Length, 1);
                int mismatches = 0;
                for (int i = 0; i < sent.Count; i++) if (pulled[i] != sent[i] / 32768f) mismatches++;
                Assert.That(mismatches, Is.EqualTo(0));
                int checkedKeys = 0;
                for (int i = 0; i < keys.Count; i++)
                {
                    if (i + 1 < keys.Count && keys[i + 1].Item2 == keys[i].Item2 && keys[i + 1].Item1 == keys[i].Item1) continue;
                    face.Sample(keys[i].Item1, keys[i].Item2);
                    face.Update(0.01f);
                    Assert.That(face.VisemeWeight(keys[i].Item3), Is.EqualTo(keys[i].Item4).Within(1e-6));
                    checkedKeys++;
                }
                Assert.That(checkedKeys, Is.GreaterThan(10));
            }
            finally { await fast.CloseAsync(); }
        }
    }
}
