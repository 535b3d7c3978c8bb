// The character's voice between the socket and the audio callback. The reader thread pushes
// each segment's pcm_s16le chunks (resampled to the output rate when the segment's rate
// differs); the audio thread pulls float samples. It knows which segment is playing and how
// much of it was heard, which the entity turns into playback.progress / playback.done, and it
// drops everything on interrupt (later chunks of a cut turn too).
//
// Nothing here allocates after construction: a fixed float ring, a fixed table of segments,
// a fixed queue of finished segment ids. One lock, held for a copy at a time.
using System;
using System.Collections.Generic;

namespace EntityBridge
{
    public sealed class SpeechBuffer
    {
        struct Segment
        {
            public string Speech;
            public string Ref;
            public long Start;      // absolute output-sample index of its first sample
            public long Samples;    // output samples stored so far
            public bool Ended;
            public int SourceRate;
            // linear resampler state
            public double Pos;
            public float Prev;
        }

        const int MaxSegments = 64;
        const int MutedRefs = 16;
        readonly object gate = new object();
        readonly float[] ring;
        readonly Segment[] segs = new Segment[MaxSegments];
        int segHead, segCount;
        long written, read;
        readonly string[] muted = new string[MutedRefs];
        int mutedNext;
        readonly Queue<string> finished = new Queue<string>(MaxSegments);

        public readonly int OutputRate;
        public long Underruns { get; private set; }
        public long UnderrunSamples { get; private set; }
        public long OverflowSamples { get; private set; }
        public long SamplesPlayed { get { lock (gate) return read; } }

        public SpeechBuffer(int outputRate, double capacitySeconds = 15)
        {
            if (outputRate <= 0) throw new ArgumentOutOfRangeException("outputRate");
            OutputRate = outputRate;
            ring = new float[Math.Max(1024, (int)(outputRate * capacitySeconds))];
        }

        public int BufferedSamples { get { lock (gate) return (int)(written - read); } }

        bool IsMuted(string turnRef)
        {
            if (turnRef == null) return false;
            for (int i = 0; i < MutedRefs; i++) if (muted[i] != null && string.Equals(muted[i], turnRef, StringComparison.Ordinal)) return true;
            return false;
        }

        void Mute(string turnRef)
        {
            if (turnRef == null || IsMuted(turnRef)) return;
            muted[mutedNext] = turnRef;
            mutedNext = (mutedNext + 1) % MutedRefs;
        }

        int Find(string speech)
        {
            for (int k = segCount - 1; k >= 0; k--)
            {
                int i = (segHead + k) % MaxSegments;
                if (string.Equals(segs[i].Speech, speech, StringComparison.Ordinal)) return i;
            }
            return -1;
        }

        /// <summary>ai.speech.start: a segment at `sampleRate` begins (ignored for a cut turn).</summary>
        public void BeginSegment(string speech, string turnRef, int sampleRate)
        {
            lock (gate)
            {
                if (IsMuted(turnRef) || Find(speech) >= 0) return;
                if (segCount == MaxSegments) DropHeadSegment();
                int i = (segHead + segCount) % MaxSegments;
                segs[i] = new Segment { Speech = speech, Ref = turnRef, Start = written, SourceRate = sampleRate > 0 ? sampleRate : OutputRate, Pos = 1.0 };
                segCount++;
            }
        }

        void DropHeadSegment()
        {
            segs[segHead] = default(Segment);
            segHead = (segHead + 1) % MaxSegments;
            segCount--;
        }

        /// <summary>ai.speech.audio: appends a chunk of little-endian 16-bit PCM.</summary>
        public void PushPcm16(string speech, byte[] pcm, int offset, int count)
        {
            lock (gate)
            {
                int i = Find(speech);
                if (i < 0 || segs[i].Ended) return;
                // Only the newest segment can grow: chunks of an older one would land after it.
                if (i != (segHead + segCount - 1) % MaxSegments) return;
                int n = count / 2;
                if (segs[i].SourceRate == OutputRate)
                {
                    int room = (int)Math.Min(n, ring.Length - (written - read));
                    int w = (int)(written % ring.Length);
                    int src = offset;
                    for (int k = 0; k < room; k++)
                    {
                        ring[w] = (short)(pcm[src] | (pcm[src + 1] << 8)) * (1f / 32768f);
                        src += 2;
                        if (++w == ring.Length) w = 0;
                    }
                    written += room;
                    segs[i].Samples += room;
                    OverflowSamples += n - room;
                    if (n > 0) segs[i].Prev = Sample(pcm, offset, n - 1);
                    return;
                }
                // Linear interpolation over the virtual sequence [Prev, x0 .. x(n-1)]: Pos indexes it.
                double step = (double)segs[i].SourceRate / OutputRate;
                double pos = segs[i].Pos;
                float prev = segs[i].Prev;
                while (pos < n)
                {
                    int idx = (int)pos;
                    double frac = pos - idx;
                    float a = idx == 0 ? prev : Sample(pcm, offset, idx - 1);
                    float b = Sample(pcm, offset, idx);
                    Store(ref segs[i], (float)(a + (b - a) * frac));
                    pos += step;
                }
                segs[i].Pos = pos - n;
                if (n > 0) segs[i].Prev = Sample(pcm, offset, n - 1);
            }
        }

        static float Sample(byte[] pcm, int offset, int k)
        {
            return (short)(pcm[offset + 2 * k] | (pcm[offset + 2 * k + 1] << 8)) / 32768f;
        }

        void Store(ref Segment seg, float v)
        {
            if (written - read >= ring.Length) { OverflowSamples++; return; }
            ring[written % ring.Length] = v;
            written++;
            seg.Samples++;
        }

        /// <summary>ai.speech.end: no more audio for this segment.</summary>
        public void EndSegment(string speech)
        {
            lock (gate)
            {
                int i = Find(speech);
                if (i >= 0) segs[i].Ended = true;
                Advance();
            }
        }

        /// <summary>Drops everything buffered and every later chunk of the same turns (interrupt).
        /// Returns the id of the segment that was playing (or null) and how much of it was heard.</summary>
        public string Flush(out int playedMs)
        {
            lock (gate)
            {
                string speech = CurrentLocked(out playedMs);
                for (int k = 0; k < segCount; k++) Mute(segs[(segHead + k) % MaxSegments].Ref);
                while (segCount > 0) DropHeadSegment();
                written = read;
                return speech;
            }
        }

        /// <summary>Mutes a turn (its audio is dropped from now on) and drops its buffered audio;
        /// used on ai.speech.interrupted and when a turn fails.</summary>
        public void CutTurn(string turnRef)
        {
            lock (gate)
            {
                if (turnRef == null) return;
                Mute(turnRef);
                bool any = false;
                for (int k = 0; k < segCount; k++) if (segs[(segHead + k) % MaxSegments].Ref == turnRef) any = true;
                if (!any) return;
                // Segments are contiguous in order; the cut turn's are normally the last ones.
                int keep = 0;
                while (keep < segCount && segs[(segHead + keep) % MaxSegments].Ref != turnRef) keep++;
                long cutAt = keep < segCount ? Math.Max(read, segs[(segHead + keep) % MaxSegments].Start) : written;
                while (segCount > keep)
                {
                    int last = (segHead + segCount - 1) % MaxSegments;
                    segs[last] = default(Segment);
                    segCount--;
                }
                written = cutAt;
            }
        }

        string CurrentLocked(out int playedMs)
        {
            for (int k = 0; k < segCount; k++)
            {
                var s = segs[(segHead + k) % MaxSegments];
                if (read < s.Start + s.Samples || !s.Ended)
                {
                    long heard = Math.Max(0, Math.Min(read, s.Start + s.Samples) - s.Start);
                    playedMs = (int)(heard * 1000 / OutputRate);
                    return s.Speech;
                }
            }
            playedMs = 0;
            return null;
        }

        /// <summary>The segment being played (null when idle) and how much of it was heard.</summary>
        public string Current(out int playedMs)
        {
            lock (gate) return CurrentLocked(out playedMs);
        }

        /// <summary>A segment that ended and was played out to its last sample (for playback.done).</summary>
        public bool TryTakeFinished(out string speech)
        {
            lock (gate)
            {
                if (finished.Count > 0) { speech = finished.Dequeue(); return true; }
                speech = null;
                return false;
            }
        }

        void Advance()
        {
            while (segCount > 0)
            {
                var s = segs[segHead];
                if (!s.Ended || read < s.Start + s.Samples) break;
                if (finished.Count < MaxSegments) finished.Enqueue(s.Speech);
                DropHeadSegment();
            }
        }

        /// <summary>The audio callback: fills `frames` frames of `channels` interleaved floats
        /// (the same sample on every channel), silence where nothing is buffered. An underrun is
        /// counted when a segment still in progress ran dry.</summary>
        public int Read(float[] data, int offset, int frames, int channels)
        {
            if (channels < 1) channels = 1;
            lock (gate)
            {
                long avail = written - read;
                int n = (int)Math.Min(avail, frames);
                int r = (int)(read % ring.Length);
                int o = offset;
                if (channels == 1)
                {
                    int first = Math.Min(n, ring.Length - r);
                    Array.Copy(ring, r, data, o, first);
                    if (n > first) Array.Copy(ring, 0, data, o + first, n - first);
                    if (frames > n) Array.Clear(data, o + n, frames - n);
                }
                else if (channels == 2)
                {
                    for (int f = 0; f < n; f++)
                    {
                        float v = ring[r];
                        if (++r == ring.Length) r = 0;
                        data[o] = v;
                        data[o + 1] = v;
                        o += 2;
                    }
                    if (frames > n) Array.Clear(data, o, (frames - n) * 2);
                }
                else
                {
                    for (int f = 0; f < n; f++)
                    {
                        float v = ring[r];
                        if (++r == ring.Length) r = 0;
                        for (int c = 0; c < channels; c++) data[o++] = v;
                    }
                    if (frames > n) Array.Clear(data, o, (frames - n) * channels);
                }
                read += n;
                Advance();
                if (n < frames && segCount > 0)
                {
                    Underruns++;
                    UnderrunSamples += frames - n;
                }
                return n;
            }
        }

        /// <summary>Mono floats, for tests and for engines that mix themselves.</summary>
        public int Read(float[] data) { return Read(data, 0, data.Length, 1); }

        /// <summary>Forgets everything (connection lost): no playback.done for what was dropped.</summary>
        public void Reset()
        {
            lock (gate)
            {
                while (segCount > 0) DropHeadSegment();
                written = read;
                finished.Clear();
            }
        }
    }
}
