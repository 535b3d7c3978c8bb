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
            Need(n, "an array of " + n + " elements");   // each element takes at least one byte
            var list = new List<object>((int)n);
            for (long i = 0; i < n; i++) list.Add(ReadValue(depth + 1));
            return list;
        }

        EepMap ReadMap(long n, int depth, int start)
        {
            if (depth >= MaxDepth) { pos = start; throw Fail("depth", "nesting deeper than " + MaxDepth); }
            Need(2 * n, "a map of " + n + " pairs");     // each pair takes at least two bytes
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
