// Bench of the core under Mono, one thread (= one core): how many bridge events per second
// the client decodes and dispatches (the receive path of BridgeClient without the socket:
// ReceiveFrame -> Route -> Dispatch, with speech and face attached as in a game), and how
// many bytes each audio chunk allocates after warm-up, split into the speech path (buffer,
// face, audio callback) and the whole receive path (including decoding the frame).
//
//   engine_sdk/unity/bench.sh
using System;
using System.Collections.Generic;
using System.Diagnostics;
using EntityBridge;

static class Bench
{
    const int Rate = 24000;
    const int ChunkSamples = Rate * 40 / 1000;          // 40 ms chunks, the bridge's default

    static long Allocated() { return GC.GetAllocatedBytesForCurrentThread(); }

    static byte[] Frame(BridgeEvent e) { return MsgPackWriter.Encode(e.ToWire()); }

    static BridgeEvent Ev(string type, int id, string entity, string turnRef, EepMap payload)
    {
        return new BridgeEvent(type, "b" + id, entity, payload) { Ref = turnRef };
    }

    /// <summary>A turn's worth of frames for one entity: 12 text deltas, then a segment of 25
    /// audio chunks (1 s) with visemes and volume, a countenance, the end.</summary>
    static void Turn(List<byte[]> frames, ref int id, string entity, string turnRef, string speech, Random rng)
    {
        for (int i = 0; i < 12; i++)
            frames.Add(Frame(Ev("ai.text", id++, entity, turnRef, new EepMap().Set("delta", "word" + i + " "))));
        frames.Add(Frame(Ev("ai.speech.start", id++, entity, turnRef,
            new EepMap().Set("speech", speech).Set("text", "A sentence of about one second.").Set("sample_rate", (long)Rate).Set("encoding", "pcm_s16le"))));
        frames.Add(Frame(Ev("ai.countenance", id++, entity, turnRef,
            new EepMap().Set("emotion", "happy").Set("intensity", 0.6).Set("expression", "smile").Set("speech", speech).Set("t", 0L))));
        for (int seq = 0; seq < 25; seq++)
        {
            var pcm = new byte[ChunkSamples * 2];
            rng.NextBytes(pcm);
            var visemes = new List<object> {
                new List<object> { (long)(seq * 40), "aa", 0.7 }, new List<object> { (long)(seq * 40 + 15), "PP", 0.9 },
                new List<object> { (long)(seq * 40 + 30), "E", 0.5 } };
            var volume = new List<object> { 0.2, 0.5, 0.4, 0.3 };
            frames.Add(Frame(Ev("ai.speech.audio", id++, entity, turnRef, new EepMap().Set("speech", speech).Set("seq", (long)seq)
                .Set("t", (long)(seq * 40)).Set("audio", pcm).Set("visemes", visemes).Set("volume", volume))));
        }
        frames.Add(Frame(Ev("ai.speech.end", id++, entity, turnRef, new EepMap().Set("speech", speech).Set("duration_ms", 1000L))));
    }

    static void Main(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 3.0;
        var rng = new Random(7);
        var client = BridgeClient.CreateDetached(new BridgeOptions());
        var entities = new List<BridgeEntity>();
        var voices = new List<SpeechBuffer>();
        long deltas = 0;
        for (int i = 0; i < 10; i++)
        {
            var ent = client.AddDetachedEntity("npc-" + i, "mira");
            voices.Add(ent.AttachSpeech(Rate, 4));
            ent.AttachFace();
            ent.TextDelta += d => deltas++;
            entities.Add(ent);
        }
        // 10 entities x 4 turns each: 1600 frames, cycled.
        var frames = new List<byte[]>();
        int nextId = 1;
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < 10; i++)
                Turn(frames, ref nextId, "npc-" + i, "u" + t, "sp-" + t + "-" + i, rng);
        int audioFrames = 0;
        foreach (var f in frames) if (f.Length > ChunkSamples * 2) audioFrames++;
        var codec = new EventCodec();
        var block = new float[ChunkSamples * 2];
        int ticks = Environment.TickCount;

        Action<int> round = (n) =>
        {
            for (int k = 0; k < n; k++)
            {
                var f = frames[k % frames.Count];
                client.ReceiveFrame(codec, f, f.Length, false);
                if (k % 50 == 49)
                {
                    client.Dispatch();
                    foreach (var v in voices) while (v.Read(block, 0, ChunkSamples, 2) > 0) { }
                }
            }
            client.Dispatch();
        };

        round(frames.Count * 3);                               // warm-up: JIT, buffers, string cache
        GC.Collect();
        var proc = Process.GetCurrentProcess();
        var cpu0 = proc.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        long events = 0;
        while (clock.Elapsed.TotalSeconds < seconds) { round(frames.Count); events += frames.Count; }
        double wall = clock.Elapsed.TotalSeconds;
        proc.Refresh();
        double cpu = (proc.TotalProcessorTime - cpu0).TotalSeconds;
        double rate = events / wall;
        double cpuRate = events / cpu;

        // Text-only events (the cheapest kind) for comparison.
        var text = frames.FindAll(f => f.Length < 100);
        var clockText = Stopwatch.StartNew();
        long textEvents = 0;
        while (clockText.Elapsed.TotalSeconds < seconds / 2)
        {
            foreach (var f in text) client.ReceiveFrame(codec, f, f.Length, false);
            client.Dispatch();
            textEvents += text.Count;
        }
        double textRate = textEvents / clockText.Elapsed.TotalSeconds;

        // Allocation per audio chunk, after warm-up.
        var audio = frames.FindAll(f => f.Length > ChunkSamples * 2);
        var decoded = new List<BridgeEvent>();
        foreach (var f in audio) decoded.Add(codec.DecodeBinary(f, 0, f.Length));
        var ent0 = entities[0];
        // The speech path alone: feed pre-decoded chunks to one entity's voice and face, pull them.
        Action<int> speechPath = (n) =>
        {
            for (int k = 0; k < n; k++)
            {
                var e = decoded[k % decoded.Count];
                if (k % 25 == 0)
                {
                    var start = new BridgeEvent("ai.speech.start", "s", ent0.Name, new EepMap().Set("speech", e.Payload.GetString("speech"))
                        .Set("sample_rate", (long)Rate)) { Ref = e.Ref };
                    ent0.OnReceiveThread(start);
                }
                ent0.OnReceiveThread(e);
                ent0.OnMainThread(e);
                ent0.Face.Sample(e.Payload.GetString("speech"), (int)e.Payload.GetLong("t"));
                ent0.Face.Update(0.016f);
                ent0.Speech.Read(block, 0, ChunkSamples, 2);
            }
        };
        // Segment-start events are built outside the measured window (they are not per chunk).
        speechPath(5000);
        int gen0 = GC.CollectionCount(0);
        long before = Allocated();
        const int N = 20000;
        long startAlloc = 0;
        for (int k = 0; k < N; k++)
        {
            var e = decoded[k % decoded.Count];
            if (k % 25 == 0)
            {
                long a0 = Allocated();
                var start = new BridgeEvent("ai.speech.start", "s", ent0.Name, new EepMap().Set("speech", e.Payload.GetString("speech"))
                    .Set("sample_rate", (long)Rate)) { Ref = e.Ref };
                ent0.OnReceiveThread(start);
                startAlloc += Allocated() - a0;
            }
            ent0.OnReceiveThread(e);
            ent0.OnMainThread(e);
            ent0.Face.Sample(e.Payload.GetString("speech"), (int)e.Payload.GetLong("t"));
            ent0.Face.Update(0.016f);
            ent0.Speech.Read(block, 0, ChunkSamples, 2);
        }
        double speechBytes = (double)(Allocated() - before - startAlloc) / N;
        int speechGcs = GC.CollectionCount(0) - gen0;

        // The whole receive path, on fresh turns (unique ids, as in a real session), after warm-up:
        // bytes allocated inside ReceiveFrame for each audio frame, and in Dispatch + the audio
        // callback over the same turns (which also serve the turns' other events).
        var fresh = new List<byte[]>();
        int freshId = 1000000;
        for (int t = 0; t < 10; t++)
            for (int i = 0; i < 10; i++)
                Turn(fresh, ref freshId, "npc-" + i, "f" + t, "fresh-" + t + "-" + i, rng);
        Func<BridgeClient, List<SpeechBuffer>, EventCodec, double[]> measure = (c, vs, cd) =>
        {
            long inAudio = 0, inOther = 0, inDispatch = 0;
            int nAudio = 0, k = 0;
            foreach (var f in fresh)
            {
                long a0 = Allocated();
                c.ReceiveFrame(cd, f, f.Length, false);
                long d = Allocated() - a0;
                if (f.Length > ChunkSamples * 2) { inAudio += d; nAudio++; } else inOther += d;
                if (++k % 50 == 0)
                {
                    long a1 = Allocated();
                    c.Dispatch();
                    foreach (var v in vs) while (v.Read(block, 0, ChunkSamples, 2) > 0) { }
                    inDispatch += Allocated() - a1;
                }
            }
            return new[] { (double)inAudio / nAudio, (double)inDispatch / nAudio, (double)inOther / (fresh.Count - nAudio) };
        };
        var whole = measure(client, voices, codec);
        double wholeBytes = whole[0];
        long frameBytes = 0;
        foreach (var f in audio) frameBytes += f.Length;

        // The same with the audio fast path (DispatchAudioEvents = false): frames read in place.
        var fastClient = BridgeClient.CreateDetached(new BridgeOptions { DispatchAudioEvents = false });
        var fastVoices = new List<SpeechBuffer>();
        for (int i = 0; i < 10; i++)
        {
            var ent = fastClient.AddDetachedEntity("npc-" + i, "mira");
            fastVoices.Add(ent.AttachSpeech(Rate, 4));
            ent.AttachFace();
        }
        var fastCodec = new EventCodec();
        Action<List<byte[]>, int> fastRound = (list, reps) =>
        {
            int c = 0;
            for (int r = 0; r < reps; r++)
                foreach (var f in list)
                {
                    fastClient.ReceiveFrame(fastCodec, f, f.Length, false);
                    if (++c % 50 == 0) { fastClient.Dispatch(); foreach (var v in fastVoices) while (v.Read(block, 0, ChunkSamples, 2) > 0) { } }
                }
            fastClient.Dispatch();
        };
        fastRound(frames, 3);                                   // warm-up, segment starts included
        gen0 = GC.CollectionCount(0);
        var fastWhole = measure(fastClient, fastVoices, fastCodec);
        int fastGcs = GC.CollectionCount(0) - gen0;
        var fastClock = Stopwatch.StartNew();
        long fastEvents = 0;
        while (fastClock.Elapsed.TotalSeconds < seconds / 2) { fastRound(frames, 1); fastEvents += frames.Count; }
        double fastRate = fastEvents / fastClock.Elapsed.TotalSeconds;

        Console.WriteLine("BENCH: runtime " + Type.GetType("Mono.Runtime").GetMethod("GetDisplayName",
            System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static).Invoke(null, null));
        Console.WriteLine("BENCH: mixed turn events (12 ai.text, start, countenance, 25 x 40 ms audio at 24 kHz with visemes, end; 10 entities):");
        Console.WriteLine("BENCH:   decoded + routed + dispatched: " + rate.ToString("F0") + " events/s of wall time, " + cpuRate.ToString("F0")
            + " events per CPU-second (" + events + " events, " + wall.ToString("F1") + " s wall, " + cpu.ToString("F1") + " s CPU, one thread)");
        Console.WriteLine("BENCH:   = " + (cpuRate * audioFrames / frames.Count * 40 / 1000).ToString("F0") + " s of speech audio per CPU-second");
        string load = System.IO.File.Exists("/proc/loadavg") ? System.IO.File.ReadAllText("/proc/loadavg").Trim() : "?";
        Console.WriteLine("BENCH:   load average during the run: " + load + " (" + Environment.ProcessorCount + " cores)");
        Console.WriteLine("BENCH: ai.text only: " + textRate.ToString("F0") + " events/s; TextDelta handlers ran " + deltas + " times");
        Console.WriteLine("BENCH: allocation per audio chunk after warm-up, speech path (voice push, face keyframes, sample, audio callback): "
            + speechBytes.ToString("F1") + " B (" + speechGcs + " gen-0 GCs in " + N + " chunks)");
        Console.WriteLine("BENCH: allocation per audio chunk, whole receive path (decode the " + (frameBytes / audio.Count) + "-byte frame, route): "
            + wholeBytes.ToString("F0") + " B; Dispatch + audio callback per audio chunk: " + whole[1].ToString("F1") + " B; per other event: " + whole[2].ToString("F0") + " B");
        Console.WriteLine("BENCH: with DispatchAudioEvents = false (audio frames read in place): " + fastWhole[0].ToString("F1")
            + " B per audio chunk in ReceiveFrame, " + fastWhole[1].ToString("F1") + " B per audio chunk in Dispatch + audio callback ("
            + fastGcs + " gen-0 GCs over " + fresh.Count + " frames); mixed events " + fastRate.ToString("F0") + "/s of wall time");
        Console.WriteLine("BENCH: underruns " + voices[0].Underruns + ", overflow samples " + voices[0].OverflowSamples + " (pulled as fast as pushed)");
    }
}
