// Speech against the real bridge's espeak voice: what the speech buffer yields equals what
// the bridge sent, visemes become the keyframe weights, interrupt stops the audio and reports
// what was heard, playback.progress is what the bridge counts as heard.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class LiveSpeechTests
    {
        const int Rate = 16000;
        const string LongLine = "Once upon a time in a quiet village by the river there lived an old miller who told long stories to every traveller who passed his door";

        static BridgeOptions Options(int leadMs)
        {
            var o = TestEnv.Options();
            o.AudioOutSampleRate = Rate;
            o.AudioOutChunkMs = 40;
            o.AudioOutLeadMs = leadMs;
            return o;
        }

        [Test]
        public async Task TheSpeechBufferYieldsExactlyWhatTheBridgeSent()
        {
            var client = await BridgeClient.ConnectAsync(Options(0));
            try
            {
                var npc = await client.InitEntityAsync("voice-1", "speaker");
                var speech = npc.AttachSpeech(Rate);
                var face = npc.AttachFace();
                face.VisemeAttack = face.VisemeRelease = 0;
                var turn = Pump.Result(client, npc.TtsSayAsync("Good evening, traveller. The stew is hot."), 60);
                var chunks = turn.OfType("ai.speech.audio");
                var starts = turn.OfType("ai.speech.start");
                Assert.That(starts.Count, Is.GreaterThanOrEqualTo(2), "two sentences, two segments");
                Assert.That(starts.All(s => s.Payload.GetLong("sample_rate") == Rate), Is.True);
                Assert.That(chunks.Count, Is.GreaterThan(10));
                var sent = new List<short>();
                foreach (var c in chunks)
                {
                    var a = c.Payload.GetBytes("audio");
                    for (int i = 0; i + 1 < a.Length; i += 2) sent.Add((short)(a[i] | (a[i + 1] << 8)));
                }
                Assert.That(speech.BufferedSamples, Is.EqualTo(sent.Count), "every sample is buffered");

                var pulled = new float[sent.Count + 4000];
                int got = 0;
                while (got < pulled.Length)                      // the audio callback: 10 ms blocks
                {
                    int n = speech.Read(pulled, got, Math.Min(160, pulled.Length - got), 1);
                    got += 160;
                    if (n == 0) break;
                }
                int mismatches = 0;
                for (int i = 0; i < sent.Count; i++) if (pulled[i] != sent[i] / 32768f) mismatches++;
                Assert.That(mismatches, Is.EqualTo(0), "content of " + sent.Count + " samples");
                Assert.That(pulled.Skip(sent.Count).All(v => v == 0f), Is.True, "then silence");
                Assert.That(speech.Underruns, Is.EqualTo(0));
                Assert.That(speech.OverflowSamples, Is.EqualTo(0));

                var errors = new List<string>();
                npc.Error += (code, msg) => errors.Add(code + ": " + msg);
                Pump.Until(client, () => npc.PlaybackDoneSent == starts.Count, 5, "playback.done for every segment");
                Pump.For(client, 0.3);
                Assert.That(errors, Is.Empty, "the bridge accepted the playback reports");

                // Visemes: at each keyframe's time the weight is the keyframe's.
                int checkedKeys = 0;
                foreach (var c in chunks)
                {
                    string sp = c.Payload.GetString("speech");
                    var keys = c.Payload.GetList("visemes");
                    Assert.That(keys, Is.Not.Null);
                    for (int i = 0; i < keys.Count; i++)
                    {
                        var k = (List<object>)keys[i];
                        int t = (int)(long)k[0];
                        bool sameTimeLater = i + 1 < keys.Count && (long)((List<object>)keys[i + 1])[0] == t;
                        if (sameTimeLater) continue;
                        face.Sample(sp, t);
                        face.Update(0.01f);
                        Assert.That(face.VisemeWeight((string)k[1]), Is.EqualTo(Convert.ToSingle(k[2])).Within(1e-6), sp + " t=" + t);
                        checkedKeys++;
                    }
                }
                Assert.That(checkedKeys, Is.GreaterThan(10));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task CountenanceFromTheReplyReachesTheFaceAtItsTime()
        {
            var client = await BridgeClient.ConnectAsync(Options(0));
            try
            {
                var npc = await client.InitEntityAsync("voice-mood", "speaker");
                var face = npc.AttachFace();
                face.EmotionAttack = face.EmotionRelease = 0;
                var seen = new List<string>();
                npc.Countenance += (emotion, intensity, expression) => seen.Add(emotion);
                var turn = Pump.Result(client, npc.SayAsync("Hello!"), 60);
                Pump.Until(client, () => client.QueuedEvents == 0, 5, "dispatch");
                var moods = turn.OfType("ai.countenance");
                Assert.That(moods.Count, Is.GreaterThan(0), "the [happy] tag gives a countenance");
                var mood = moods[0].Payload;
                Assert.That(mood.GetString("emotion"), Is.EqualTo("happy"));
                Assert.That(seen, Has.Member("happy"));
                string sp = mood.GetString("speech");
                if (sp != null)
                {
                    Assert.That(face.Emotion, Is.EqualTo("neutral"), "tied to a segment: not before its time");
                    face.Sample(sp, (int)mood.GetLong("t"));
                }
                face.Update(0.016f);
                Assert.That(face.Emotion, Is.EqualTo("happy"));
                Assert.That(face.EmotionWeight("happy"), Is.EqualTo((float)mood.GetDouble("intensity")).Within(1e-6));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task SpeechInTheJsonFramingArrivesAsBytes()
        {
            var o = Options(0);
            o.Framing = Framing.Json;
            var client = await BridgeClient.ConnectAsync(o);
            try
            {
                var npc = await client.InitEntityAsync("voice-json", "speaker");
                var speech = npc.AttachSpeech(Rate);
                var turn = Pump.Result(client, npc.TtsSayAsync("Good evening, traveller."), 60);
                var chunks = turn.OfType("ai.speech.audio");
                Assert.That(chunks.Count, Is.GreaterThan(5));
                Assert.That(chunks.All(c => c.Payload["audio"] is byte[]), Is.True, "base64 turned back into bytes");
                Assert.That(speech.BufferedSamples, Is.EqualTo(chunks.Sum(c => c.Payload.GetBytes("audio").Length / 2)));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task ResampledLiveSpeechKeepsItsLength()
        {
            var client = await BridgeClient.ConnectAsync(Options(0));
            try
            {
                var npc = await client.InitEntityAsync("voice-48k", "speaker");
                var speech = npc.AttachSpeech(48000);
                var turn = Pump.Result(client, npc.TtsSayAsync("Good evening, traveller."), 60);
                long sent = turn.OfType("ai.speech.audio").Sum(c => c.Payload.GetBytes("audio").Length / 2);
                long segments = turn.OfType("ai.speech.start").Count;
                Assert.That(speech.BufferedSamples, Is.InRange(sent * 3 - 3 * segments, sent * 3 + 3 * segments), "16 kHz -> 48 kHz");
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task InterruptMidSpeechStopsTheAudioAndReportsWhatWasHeard()
        {
            var client = await BridgeClient.ConnectAsync(Options(200));
            try
            {
                var npc = await client.InitEntityAsync("voice-int", "talker");
                var speech = npc.AttachSpeech(Rate);
                var audioAfter = new List<BridgeEvent>();
                var turn = npc.StartSay(LongLine);
                Pump.Until(client, () => speech.BufferedSamples >= Rate / 4, 30, "the first quarter second of audio");
                var block = new float[Rate / 100];
                for (int i = 0; i < 25; i++) speech.Read(block, 0, block.Length, 1);   // 250 ms played
                var interrupt = npc.InterruptAsync();
                Assert.That(speech.BufferedSamples, Is.EqualTo(0), "flushed at once");
                var reply = Pump.Result(client, interrupt);
                Assert.That(reply.Payload.GetBool("interrupted"), Is.True);
                var ex = Pump.Wait(client, turn.Task, 30) as BridgeException;
                Assert.That(ex, Is.Not.Null, "the turn ends with an error");
                Assert.That(ex.Code, Is.EqualTo("cancelled"));

                npc.EventReceived += e => { if (e.Type == "ai.speech.audio") audioAfter.Add(e); };
                Pump.For(client, 0.6);
                Assert.That(audioAfter, Is.Empty, "no audio after the final reply");
                Assert.That(speech.BufferedSamples, Is.EqualTo(0));
                Assert.That(speech.Read(block, 0, block.Length, 1), Is.EqualTo(0), "nothing more is played");
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task TheInterruptedSegmentReportsOurPlayedMs()
        {
            var client = await BridgeClient.ConnectAsync(Options(200));
            try
            {
                var npc = await client.InitEntityAsync("voice-int2", "talker");
                var speech = npc.AttachSpeech(Rate);
                var interrupted = new List<BridgeEvent>();
                client.EventReceived += e => { if (e.Type == "ai.speech.interrupted") interrupted.Add(e); };
                var turn = npc.StartSay(LongLine);
                Pump.Until(client, () => speech.BufferedSamples >= Rate * 4 / 10, 30, "audio");
                var block = new float[Rate / 100 * 3];
                for (int i = 0; i < 10; i++) speech.Read(block, 0, block.Length, 1);    // 300 ms
                int heard;
                string playing = speech.Current(out heard);
                Assert.That(playing, Is.Not.Null);
                var reply = Pump.Result(client, npc.InterruptAsync());
                Assert.That(reply.Payload.GetBool("interrupted"), Is.True);
                Assert.That(Pump.Wait(client, turn.Task, 30), Is.InstanceOf<BridgeException>());
                Pump.Until(client, () => interrupted.Count > 0, 5, "ai.speech.interrupted");
                Assert.That(interrupted[0].Payload.GetString("speech"), Is.EqualTo(playing));
                Assert.That(interrupted[0].Payload.GetLong("played_ms"), Is.EqualTo((long)heard), "the bridge counts what we played");
                Assert.That(heard, Is.InRange(1, 300));
                Assert.That(interrupted[0].Ref, Is.EqualTo(turn.Id));
            }
            finally { await client.CloseAsync(); }
        }

        [Test]
        public async Task PlaybackProgressIsWhatTheBridgeCountsAsHeard()
        {
            var client = await BridgeClient.ConnectAsync(Options(200));
            try
            {
                var npc = await client.InitEntityAsync("voice-prog", "talker");
                npc.ProgressIntervalMs = 100;
                var speech = npc.AttachSpeech(Rate);
                var interrupted = new List<BridgeEvent>();
                client.EventReceived += e => { if (e.Type == "ai.speech.interrupted") interrupted.Add(e); };
                var turn = npc.StartSay(LongLine);
                Pump.Until(client, () => speech.BufferedSamples >= Rate / 5, 30, "audio");
                var block = new float[Rate / 50];                // 20 ms, in real time
                for (int i = 0; i < 30; i++)
                {
                    speech.Read(block, 0, block.Length, 1);
                    client.Dispatch();
                    Thread.Sleep(20);
                }
                int reported = npc.LastProgressMs;
                Assert.That(reported, Is.InRange(300, 600), "progress went out while playing");
                Pump.For(client, 0.2);                           // let the last report arrive; no more playing
                reported = npc.LastProgressMs;
                // An interrupt without played_ms: the bridge falls back to our last progress report.
                var reply = Pump.Result(client, client.RequestAsync("entity.interrupt", new EepMap(), npc.Name));
                Assert.That(reply.Payload.GetBool("interrupted"), Is.True);
                Assert.That(Pump.Wait(client, turn.Task, 30), Is.InstanceOf<BridgeException>());
                Pump.Until(client, () => interrupted.Count > 0, 5, "ai.speech.interrupted");
                Assert.That(interrupted[0].Payload.GetLong("played_ms"), Is.EqualTo((long)reported));
            }
            finally { await client.CloseAsync(); }
        }
    }
}
