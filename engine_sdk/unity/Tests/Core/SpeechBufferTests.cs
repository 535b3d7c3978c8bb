// The speech buffer on its own: exact pass-through at the same rate, resampling checked by
// the pitch of a known tone, segments and playback accounting, underruns, interrupt flushes.
using System;
using System.Collections.Generic;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class SpeechBufferTests
    {
        public static byte[] Tone(double hz, int rate, double seconds, double amplitude = 0.5)
        {
            int n = (int)(rate * seconds);
            var pcm = new byte[2 * n];
            for (int i = 0; i < n; i++)
            {
                short s = (short)Math.Round(amplitude * 32767 * Math.Sin(2 * Math.PI * hz * i / rate));
                pcm[2 * i] = (byte)s;
                pcm[2 * i + 1] = (byte)(s >> 8);
            }
            return pcm;
        }

        /// <summary>Frequency from the rising zero crossings (interpolated), skipping the edges.</summary>
        public static double Pitch(float[] x, int count, int rate)
        {
            var crossings = new List<double>();
            for (int i = 1; i < count; i++)
                if (x[i - 1] < 0 && x[i] >= 0) crossings.Add(i - 1 + x[i - 1] / (x[i - 1] - x[i]));
            Assert.That(crossings.Count, Is.GreaterThan(10));
            int a = 2, b = crossings.Count - 3;
            return (b - a) * rate / (crossings[b] - crossings[a]);
        }

        static void PushInChunks(SpeechBuffer buf, string speech, byte[] pcm, int chunkBytes)
        {
            for (int o = 0; o < pcm.Length; o += chunkBytes)
                buf.PushPcm16(speech, pcm, o, Math.Min(chunkBytes, pcm.Length - o));
        }

        [Test]
        public void SameRatePassesSamplesThroughExactly()
        {
            var buf = new SpeechBuffer(24000);
            byte[] pcm = Tone(300, 24000, 0.5);
            buf.BeginSegment("sp-1", "u1", 24000);
            PushInChunks(buf, "sp-1", pcm, 1920);
            buf.EndSegment("sp-1");
            var outp = new float[20000];
            int got = buf.Read(outp, 0, outp.Length, 1);
            Assert.That(got, Is.EqualTo(12000));
            for (int i = 0; i < got; i++)
            {
                short s = (short)(pcm[2 * i] | (pcm[2 * i + 1] << 8));
                if (outp[i] != s / 32768f) Assert.Fail("sample " + i + " differs");
            }
            Assert.That(outp[got], Is.EqualTo(0f), "silence after the end");
        }

        [TestCase(24000, 48000, 440.0)]
        [TestCase(16000, 44100, 440.0)]
        [TestCase(22050, 48000, 1000.0)]
        [TestCase(48000, 24000, 300.0)]
        public void ResamplingKeepsThePitchAndTheDuration(int from, int to, double hz)
        {
            var buf = new SpeechBuffer(to);
            byte[] pcm = Tone(hz, from, 1.0);
            buf.BeginSegment("sp-1", "u1", from);
            PushInChunks(buf, "sp-1", pcm, from / 25 * 2);   // 40 ms chunks
            buf.EndSegment("sp-1");
            var outp = new float[to * 2];
            int got = buf.Read(outp, 0, outp.Length, 1);
            Assert.That(got, Is.InRange(to - 2, to + 2), "one second in, one second out");
            double pitch = Pitch(outp, got, to);
            Assert.That(pitch, Is.InRange(hz * 0.995, hz * 1.005), "pitch after resampling " + from + " -> " + to);
            // And the waveform: output sample j is the tone at time j/to (linear interpolation
            // stays within a percent of the amplitude here; holding samples would not).
            double err = 0;
            for (int j = 0; j < got - 2; j++)
            {
                double ideal = Math.Round(0.5 * 32767 * Math.Sin(2 * Math.PI * hz * ((double)j * from / to) / from)) / 32768.0;
                err += (outp[j] - ideal) * (outp[j] - ideal);
            }
            Assert.That(Math.Sqrt(err / (got - 2)), Is.LessThan(0.005), "RMS error against the ideal tone");
        }

        [Test]
        public void PlaybackAccountingSegmentsAndUnderruns()
        {
            var buf = new SpeechBuffer(16000);
            buf.BeginSegment("a", "u1", 16000);
            buf.PushPcm16("a", Tone(200, 16000, 0.1), 0, 3200);     // 100 ms
            var outp = new float[800];
            buf.Read(outp, 0, 800, 1);                                // 50 ms
            int ms;
            Assert.That(buf.Current(out ms), Is.EqualTo("a"));
            Assert.That(ms, Is.EqualTo(50));
            buf.Read(outp, 0, 800, 1);
            buf.Read(outp, 0, 800, 1);                                // ran dry, segment not ended
            Assert.That(buf.Underruns, Is.EqualTo(1));
            Assert.That(buf.UnderrunSamples, Is.EqualTo(800));
            string done;
            Assert.That(buf.TryTakeFinished(out done), Is.False, "not ended yet");
            buf.EndSegment("a");
            Assert.That(buf.TryTakeFinished(out done), Is.True);
            Assert.That(done, Is.EqualTo("a"));
            buf.Read(outp, 0, 800, 1);
            Assert.That(buf.Underruns, Is.EqualTo(1), "idle is not an underrun");
            Assert.That(buf.Current(out ms), Is.Null);
        }

        [Test]
        public void StereoOutputDuplicatesTheMonoSample()
        {
            var buf = new SpeechBuffer(16000);
            buf.BeginSegment("a", "u1", 16000);
            buf.PushPcm16("a", new byte[] { 0x00, 0x40, 0x00, 0xc0 }, 0, 4);
            var outp = new float[8];
            Assert.That(buf.Read(outp, 0, 4, 2), Is.EqualTo(2));
            Assert.That(outp, Is.EqualTo(new[] { 0.5f, 0.5f, -0.5f, -0.5f, 0f, 0f, 0f, 0f }));
        }

        [Test]
        public void FlushDropsEverythingAndLaterChunksOfTheCutTurn()
        {
            var buf = new SpeechBuffer(16000);
            buf.BeginSegment("a", "u1", 16000);
            buf.PushPcm16("a", Tone(200, 16000, 0.5), 0, 16000);
            var outp = new float[4800];
            buf.Read(outp, 0, 4800, 1);                                // 300 ms heard
            int ms;
            Assert.That(buf.Flush(out ms), Is.EqualTo("a"));
            Assert.That(ms, Is.EqualTo(300));
            Assert.That(buf.BufferedSamples, Is.EqualTo(0));
            buf.PushPcm16("a", Tone(200, 16000, 0.1), 0, 3200);       // in flight when we interrupted
            buf.BeginSegment("b", "u1", 16000);                         // next segment of the same turn
            buf.PushPcm16("b", Tone(200, 16000, 0.1), 0, 3200);
            Assert.That(buf.BufferedSamples, Is.EqualTo(0), "nothing of the cut turn is played");
            buf.BeginSegment("c", "u2", 16000);                         // a new turn plays
            buf.PushPcm16("c", Tone(200, 16000, 0.1), 0, 3200);
            Assert.That(buf.BufferedSamples, Is.EqualTo(1600));
        }

        [Test]
        public void CutTurnKeepsAnEarlierTurnsAudio()
        {
            var buf = new SpeechBuffer(16000);
            buf.BeginSegment("a", "u1", 16000);
            buf.PushPcm16("a", Tone(200, 16000, 0.1), 0, 3200);
            buf.EndSegment("a");
            buf.BeginSegment("b", "u2", 16000);
            buf.PushPcm16("b", Tone(200, 16000, 0.1), 0, 3200);
            buf.CutTurn("u2");
            Assert.That(buf.BufferedSamples, Is.EqualTo(1600));
        }

        [Test]
        public void OverflowIsCountedNotGrown()
        {
            var buf = new SpeechBuffer(8000, 0.2);                      // 1600 samples
            buf.BeginSegment("a", "u1", 8000);
            buf.PushPcm16("a", Tone(200, 8000, 0.5), 0, 8000);
            Assert.That(buf.BufferedSamples, Is.EqualTo(1600));
            Assert.That(buf.OverflowSamples, Is.EqualTo(4000 - 1600));
        }
    }
}
