// MessagePack decoder for EEP/1 frames, written for the SDK (no NuGet here, and Unity users
// avoid dependency conflicts). Values decode to: null, bool, long (ulong above long.MaxValue),
// double (float32 widened), string, byte[], List<object>, EepMap.
//
// Hostile input: every length prefix is checked against the bytes that remain before anything
// is allocated (a str32 claiming 4 GiB fails at once), containers count at least one byte per
// element, nesting is capped, and extension types / the reserved byte 0xc1 are refused. The
// decoder never loops on its own: each step consumes input, so it cannot hang.
using System;
using System.Collections.Generic;
using System.Text;

namespace EntityBridge
{
    public sealed class MsgPackReader
    {
        public const int MaxDepth = 64;
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        byte[] buf;
        int pos;
        int end;
        readonly StringCache cache = new StringCache();

        [ThreadStatic] static MsgPackReader shared;

        /// <summary>Decodes one value that fills the buffer exactly (trailing bytes are an error).</summary>
        public static object Decode(byte[] data) { return Decode(data, 0, data.Length); }

        public static object Decode(byte[] data, int offset, int count)
        {
            if (shared == null) shared = new MsgPackReader();
            return shared.Read(data, offset, count);
        }

        public object Read(byte[] data, int offset, int count)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (offset < 0 || count < 0 || offset + count > data.Length) throw new ArgumentOutOfRangeException("count");
            buf = data;
            pos = offset;
            end = offset + count;
            try
            {
                if (count == 0) throw Fail("truncated", "empty frame");
                object value = ReadValue(0);
                if (pos != end) throw Fail("trailing", (end - pos) + " bytes after the end of the value");
                return value;
            }
            finally
            {
                buf = null;
            }
        }

        EepCodecException Fail(string category, string message)
        {
            return new EepCodecException(category, "MessagePack: " + message, pos);
        }

        void Need(long n, string what)
        {
            if (n > end - pos) throw Fail(n > int.MaxValue ? "length" : "truncated",
                what + " needs " + n + " bytes, " + (end - pos) + " left");
        }

        byte U8() { Need(1, "a byte"); return buf[pos++]; }

        ushort U16() { Need(2, "uint16"); int v = (buf[pos] << 8) | buf[pos + 1]; pos += 2; return (ushort)v; }

        uint U32()
        {
            Need(4, "uint32");
            uint v = ((uint)buf[pos] << 24) | ((uint)buf[pos + 1] << 16) | ((uint)buf[pos + 2] << 8) | buf[pos + 3];
            pos += 4;
            return v;
        }

        ulong U64()
        {
            Need(8, "uint64");
            ulong hi = ((ulong)buf[pos] << 24) | ((ulong)buf[pos + 1] << 16) | ((ulong)buf[pos + 2] << 8) | buf[pos + 3];
            ulong lo = ((ulong)buf[pos + 4] << 24) | ((ulong)buf[pos + 5] << 16) | ((ulong)buf[pos + 6] << 8) | buf[pos + 7];
            pos += 8;
            return (hi << 32) | lo;
        }

        static object Int(long v) { return BoxCache.Long(v); }

        object ReadValue(int depth)
        {
            int start = pos;
            byte b = U8();
            if (b <= 0x7f) return BoxCache.Long(b);
            if (b >= 0xe0) return BoxCache.Long((sbyte)b);
            if (b <= 0x8f) return ReadMap(b & 0x0f, depth, start);
            if (b <= 0x9f) return ReadArray(b & 0x0f, depth, start);
            if (b <= 0xbf) return ReadStr(b & 0x1f);
            switch (b)
            {
                case 0xc0: return null;
                case 0xc2: return BoxCache.False;
                case 0xc3: return BoxCache.True;
                case 0xc4: return ReadBin(U8());
                case 0xc5: return ReadBin(U16());
                case 0xc6: return ReadBin(U32());
                case 0xca:
                {
                    uint bits = U32();
                    return (double)BitConverter.ToSingle(BitConverter.GetBytes(bits), 0);
                }
                case 0xcb: return BitConverter.Int64BitsToDouble(unchecked((long)U64()));
                case 0xcc: return Int(U8());
                case 0xcd: return Int(U16());
                case 0xce: return Int(U32());
                case 0xcf:
                {
                    ulong v = U64();
                    if (v > long.MaxValue) return v;
                    return Int((long)v);
                }
                case 0xd0: return Int((sbyte)U8());
                case 0xd1: return Int((short)U16());
                case 0xd2: return Int((int)U32());
                case 0xd3: return Int(unchecked((long)U64()));
                case 0xd9: return ReadStr(U8());
                case 0xda: return ReadStr(U16());
                case 0xdb: return ReadStr(U32());
                case 0xdc: return ReadArray(U16(), depth, start);
                case 0xdd: return ReadArray(U32(), depth, start);
                case 0xde: return ReadMap(U16(), depth, start);
                case 0xdf: return ReadMap(U32(), depth, start);
                case 0xc1:
                    pos = start;
                    throw Fail("reserved", "byte 0xc1 is reserved");
                default:
                    // 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext: EEP/1 refuses extension types.
                    pos = start;
                    throw Fail("ext", string.Format("extension type 0x{0:x2} is not allowed in EEP/1", b));
            }
        }

        string ReadStr(long n)
        {
            Need(n, "a string");
            int len = (int)n;
            string s = len <= StringCache.MaxLength ? cache.Get(buf, pos, len) : null;
            if (s == null)
            {
                try { s = StrictUtf8.GetString(buf, pos, len); }
                catch (ArgumentException) { throw Fail("utf8", "string is not valid UTF-8"); }
                if (len <= StringCache.MaxLength) cache.Put(buf, pos, len, s);
            }
            pos += len;
            return s;
        }

        byte[] ReadBin(long n)
        {
            Need(n, "a bin");
            var bytes = new byte[n];
            Buffer.BlockCopy(buf, pos, bytes, 0, (int)n);
            pos += (int)n;
            return bytes;
        }

        List<object> ReadArray(long n, int depth, int start)
        {
            if (depth >= MaxDepth) { pos = start; throw Fail("depth", "nesting deeper than " + MaxDepth); }
            Need(n, "an array");   // each element takes at least one byte
            var list = new List<object>((int)n);
            for (long i = 0; i < n; i++) list.Add(ReadValue(depth + 1));
            return list;
        }

        EepMap ReadMap(long n, int depth, int start)
        {
            if (depth >= MaxDepth) { pos = start; throw Fail("depth", "nesting deeper than " + MaxDepth); }
            Need(2 * n, "a map");     // each pair takes at least two bytes
            var map = new EepMap((int)Math.Max(1, n));
            for (long i = 0; i < n; i++)
            {
                int keyAt = pos;
                object key = ReadValue(depth + 1);
                if (!(key is string))
                {
                    pos = keyAt;
                    throw Fail("key", "map keys must be strings in EEP/1, not " + (key == null ? "nil" : key.GetType().Name));
                }
                object value = ReadValue(depth + 1);
                map.Append(key, value);
            }
            return map;
        }

        // ------------------------------------------------------------------ audio fast path

        public const int MaxKeyframes = 64;
        public readonly int[] KeyT = new int[MaxKeyframes];
        public readonly byte[] KeyViseme = new byte[MaxKeyframes];
        public readonly float[] KeyWeight = new float[MaxKeyframes];

        static readonly byte[] KType = Ascii("type"), KEntity = Ascii("entity"), KStatus = Ascii("status"),
            KRef = Ascii("ref"), KPayload = Ascii("payload"), KSpeech = Ascii("speech"), KSeq = Ascii("seq"), KT = Ascii("t"),
            KAudio = Ascii("audio"), KVisemes = Ascii("visemes"), VAudioType = Ascii("ai.speech.audio"), VNew = Ascii("new");
        static readonly byte[][] VisemeBytes = MakeVisemeBytes();

        static byte[] Ascii(string s) { return Encoding.ASCII.GetBytes(s); }

        static byte[][] MakeVisemeBytes()
        {
            var names = new[] { "sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U" };
            var a = new byte[names.Length][];
            for (int i = 0; i < names.Length; i++) a[i] = Ascii(names[i]);
            return a;
        }

        bool Is(int off, int len, byte[] lit)
        {
            if (len != lit.Length) return false;
            for (int i = 0; i < len; i++) if (buf[off + i] != lit[i]) return false;
            return true;
        }

        /// <summary>A str header: returns the length and leaves pos at the bytes, or -1 (pos
        /// unchanged) when the next value is not a string.</summary>
        int StrHeader()
        {
            Need(1, "a byte");
            byte b = buf[pos];
            long n;
            if (b >= 0xa0 && b <= 0xbf) { pos++; n = b & 0x1f; }
            else if (b == 0xd9) { pos++; n = U8(); }
            else if (b == 0xda) { pos++; n = U16(); }
            else if (b == 0xdb) { pos++; n = U32(); }
            else return -1;
            Need(n, "a string");
            return (int)n;
        }

        /// <summary>A map key (a string): its bytes' offset and length, stepped over; -1 if not a string.</summary>
        int Key(out int off)
        {
            int len = StrHeader();
            off = pos;
            if (len > 0) pos += len;
            return len;
        }

        /// <summary>The next value is a string with exactly these (ASCII) bytes; stepped over.</summary>
        bool StrValueIs(byte[] lit)
        {
            int len = StrHeader();
            if (len < 0 || !Is(pos, len, lit)) return false;
            pos += len;
            return true;
        }

        string StrValue()
        {
            int n = StrHeader();
            return n < 0 ? null : ReadStr(n);
        }

        bool IntValue(out long v)
        {
            v = 0;
            byte b = U8();
            if (b <= 0x7f) { v = b; return true; }
            if (b >= 0xe0) { v = (sbyte)b; return true; }
            switch (b)
            {
                case 0xcc: v = U8(); return true;
                case 0xcd: v = U16(); return true;
                case 0xce: v = U32(); return true;
                case 0xcf: { ulong u = U64(); if (u > long.MaxValue) return false; v = (long)u; return true; }
                case 0xd0: v = (sbyte)U8(); return true;
                case 0xd1: v = (short)U16(); return true;
                case 0xd2: v = (int)U32(); return true;
                case 0xd3: v = unchecked((long)U64()); return true;
            }
            return false;
        }

        bool NumberValue(out double v)
        {
            v = 0;
            Need(1, "a number");
            byte b = buf[pos];
            if (b == 0xcb) { pos++; v = BitConverter.Int64BitsToDouble(unchecked((long)U64())); return true; }
            if (b == 0xca) { pos++; uint bits = U32(); v = BitConverter.ToSingle(BitConverter.GetBytes(bits), 0); return true; }
            long l;
            if (!IntValue(out l)) return false;
            v = l;
            return true;
        }

        int MapHeaderValue()
        {
            byte b = U8();
            if (b >= 0x80 && b <= 0x8f) return b & 0x0f;
            if (b == 0xde) return U16();
            if (b == 0xdf) { uint n = U32(); return n > int.MaxValue ? -1 : (int)n; }
            return -1;
        }

        int ArrayHeaderValue()
        {
            byte b = U8();
            if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
            if (b == 0xdc) return U16();
            if (b == 0xdd) { uint n = U32(); return n > int.MaxValue ? -1 : (int)n; }
            return -1;
        }

        /// <summary>Steps over one value with the same checks as ReadValue, building nothing.</summary>
        void Skip(int depth)
        {
            int start = pos;
            byte b = U8();
            if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return;
            if (b <= 0x8f) { SkipContainer(b & 0x0f, 2, depth, start); return; }
            if (b <= 0x9f) { SkipContainer(b & 0x0f, 1, depth, start); return; }
            if (b <= 0xbf) { StrBytes(b & 0x1f); return; }
            switch (b)
            {
                case 0xc4: Bytes(U8()); return;
                case 0xc5: Bytes(U16()); return;
                case 0xc6: Bytes(U32()); return;
                case 0xca: Need(4, "float32"); pos += 4; return;
                case 0xcb: Need(8, "float64"); pos += 8; return;
                case 0xcc: case 0xd0: Need(1, "int8"); pos += 1; return;
                case 0xcd: case 0xd1: Need(2, "int16"); pos += 2; return;
                case 0xce: case 0xd2: Need(4, "int32"); pos += 4; return;
                case 0xcf: case 0xd3: Need(8, "int64"); pos += 8; return;
                case 0xd9: StrBytes(U8()); return;
                case 0xda: StrBytes(U16()); return;
                case 0xdb: StrBytes(U32()); return;
                case 0xdc: SkipContainer(U16(), 1, depth, start); return;
                case 0xdd: SkipContainer(U32(), 1, depth, start); return;
                case 0xde: SkipContainer(U16(), 2, depth, start); return;
                case 0xdf: SkipContainer(U32(), 2, depth, start); return;
                case 0xc1: pos = start; throw Fail("reserved", "byte 0xc1 is reserved");
                default: pos = start; throw Fail("ext", "extension types are not allowed in EEP/1");
            }
        }

        void Bytes(long n) { Need(n, "bytes"); pos += (int)n; }

        /// <summary>Steps over n bytes of a string, checking they are UTF-8 as ReadStr would
        /// (GetCharCount validates without allocating).</summary>
        void StrBytes(long n)
        {
            Need(n, "a string");
            Utf8Check(pos, (int)n);
            pos += (int)n;
        }

        /// <summary>Strict UTF-8 validation without allocating (Mono's strict decoder allocates a
        /// fallback buffer per call): no overlong forms, no surrogates, nothing above U+10FFFF.</summary>
        void Utf8Check(int off, int len)
        {
            int i = off, e = off + len;
            while (i < e)
            {
                int b = buf[i];
                if (b < 0x80) { i++; continue; }
                int need, min, cp;
                if (b >= 0xc2 && b <= 0xdf) { need = 1; min = 0x80; cp = b & 0x1f; }
                else if (b >= 0xe0 && b <= 0xef) { need = 2; min = 0x800; cp = b & 0x0f; }
                else if (b >= 0xf0 && b <= 0xf4) { need = 3; min = 0x10000; cp = b & 0x07; }
                else throw Fail("utf8", "string is not valid UTF-8");
                if (e - i <= need) throw Fail("utf8", "string is not valid UTF-8");
                for (int k = 1; k <= need; k++)
                {
                    int c = buf[i + k];
                    if ((c & 0xc0) != 0x80) throw Fail("utf8", "string is not valid UTF-8");
                    cp = (cp << 6) | (c & 0x3f);
                }
                if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw Fail("utf8", "string is not valid UTF-8");
                i += need + 1;
            }
        }

        void SkipContainer(long n, int per, int depth, int start)
        {
            if (depth >= MaxDepth) { pos = start; throw Fail("depth", "nesting deeper than " + MaxDepth); }
            Need(per * n, "a container");
            for (long i = 0; i < n; i++)
            {
                if (per == 2)
                {
                    int keyAt = pos;
                    int klen = StrHeader();
                    if (klen < 0) { pos = keyAt; throw Fail("key", "map keys must be strings in EEP/1"); }
                    StrBytes(klen);
                }
                Skip(depth + 1);
            }
        }

        /// <summary>Reads an ai.speech.audio frame without building it (the zero-allocation audio
        /// path). False, and nothing is consumed from the caller's point of view, for any frame
        /// that is something else, is malformed, or uses a form this scanner does not take: the
        /// caller then decodes it the ordinary way.</summary>
        public bool TryScanAudio(byte[] data, int offset, int count, ref AudioChunk c)
        {
            buf = data;
            pos = offset;
            end = offset + count;
            c = default(AudioChunk);
            c.AudioOffset = -1;
            try
            {
                bool audioType = false;
                int n = MapHeaderValue();
                if (n < 0) return false;
                for (int i = 0; i < n; i++)
                {
                    int koff, klen = Key(out koff);
                    if (klen < 0) return false;
                    if (Is(koff, klen, KType))
                    {
                        if (!StrValueIs(VAudioType)) return false;
                        audioType = true;
                    }
                    else if (Is(koff, klen, KEntity)) { c.Entity = StrValue(); if (c.Entity == null) return false; }
                    else if (Is(koff, klen, KRef)) { c.Ref = StrValue(); if (c.Ref == null) return false; }
                    else if (Is(koff, klen, KStatus)) { if (!StrValueIs(VNew)) return false; }
                    else if (Is(koff, klen, KPayload)) { if (!ScanPayload(ref c)) return false; }
                    else { Utf8Check(koff, klen); Skip(1); }   // id and unknown keys
                }
                if (pos != end) return false;
                return audioType && c.Entity != null && c.Speech != null && c.AudioOffset >= 0;
            }
            catch (EepCodecException)
            {
                return false;
            }
            finally
            {
                buf = null;
            }
        }

        bool ScanPayload(ref AudioChunk c)
        {
            int n = MapHeaderValue();
            if (n < 0) return false;
            for (int i = 0; i < n; i++)
            {
                int koff, klen = Key(out koff);
                if (klen < 0) return false;
                if (Is(koff, klen, KSpeech)) { c.Speech = StrValue(); if (c.Speech == null) return false; }
                else if (Is(koff, klen, KSeq)) { if (!IntValue(out c.Seq)) return false; }
                else if (Is(koff, klen, KT)) { if (!IntValue(out c.T)) return false; }
                else if (Is(koff, klen, KAudio))
                {
                    byte b = U8();
                    long len;
                    if (b == 0xc4) len = U8(); else if (b == 0xc5) len = U16(); else if (b == 0xc6) len = U32(); else return false;
                    Need(len, "a bin");
                    c.AudioOffset = pos;
                    c.AudioCount = (int)len;
                    pos += (int)len;
                }
                else if (Is(koff, klen, KVisemes))
                {
                    int keys = ArrayHeaderValue();
                    if (keys < 0) return false;
                    for (int k = 0; k < keys; k++)
                    {
                        if (ArrayHeaderValue() != 3) return false;
                        long t;
                        if (!IntValue(out t)) return false;
                        int vlen = StrHeader();
                        if (vlen < 0) return false;
                        int v = -1;
                        for (int j = 0; j < VisemeBytes.Length; j++) if (Is(pos, vlen, VisemeBytes[j])) { v = j; break; }
                        if (v < 0) Utf8Check(pos, vlen);   // an unknown name is skipped, but must be text
                        pos += vlen;
                        double w;
                        if (!NumberValue(out w)) return false;
                        if (v >= 0 && c.KeyCount < MaxKeyframes)
                        {
                            KeyT[c.KeyCount] = (int)t;
                            KeyViseme[c.KeyCount] = (byte)v;
                            KeyWeight[c.KeyCount] = (float)w;
                            c.KeyCount++;
                        }
                    }
                }
                else { Utf8Check(koff, klen); Skip(2); }   // volume and unknown keys
            }
            return true;
        }
    }

    /// <summary>What TryScanAudio found in an ai.speech.audio frame: strings come from the
    /// reader's cache (no allocation once seen), the PCM stays in the frame buffer, the viseme
    /// keyframes are in the reader's KeyT / KeyViseme / KeyWeight arrays.</summary>
    public struct AudioChunk
    {
        public string Entity;
        public string Ref;
        public string Speech;
        public long Seq;
        public long T;
        public int AudioOffset;
        public int AudioCount;
        public int KeyCount;
    }

    /// <summary>Boxes for the values every frame repeats (small ints, bools), so decoding them
    /// allocates nothing.</summary>
    static class BoxCache
    {
        public static readonly object True = true;
        public static readonly object False = false;
        const int Low = -128, High = 1024;
        static readonly object[] longs = Make();

        static object[] Make()
        {
            var a = new object[High - Low + 1];
            for (int i = 0; i < a.Length; i++) a[i] = (long)(i + Low);
            return a;
        }

        public static object Long(long v)
        {
            if (v >= Low && v <= High) return longs[v - Low];
            return v;
        }
    }

    /// <summary>Remembers short strings by their UTF-8 bytes: map keys, event types, speech ids
    /// and entity names repeat in every frame, so they are decoded once.</summary>
    sealed class StringCache
    {
        public const int MaxLength = 32;
        const int Slots = 512;
        readonly byte[][] keys = new byte[Slots][];
        readonly string[] strings = new string[Slots];

        static int Hash(byte[] b, int o, int n)
        {
            uint h = 2166136261;
            for (int i = 0; i < n; i++) h = (h ^ b[o + i]) * 16777619;
            return (int)(h & (Slots - 1));
        }

        public string Get(byte[] b, int o, int n)
        {
            int slot = Hash(b, o, n);
            byte[] k = keys[slot];
            if (k == null || k.Length != n) return null;
            for (int i = 0; i < n; i++) if (k[i] != b[o + i]) return null;
            return strings[slot];
        }

        public void Put(byte[] b, int o, int n, string s)
        {
            int slot = Hash(b, o, n);
            var k = keys[slot];
            if (k == null || k.Length != n) k = new byte[n];
            Buffer.BlockCopy(b, o, k, 0, n);
            keys[slot] = k;
            strings[slot] = s;
        }
    }
}
