// MessagePack encoder writing the canonical form every EEP/1 peer writes (what Python's
// msgpack.packb(value, use_bin_type=True) writes): smallest int form, floats as float64,
// smallest str/bin/array/map header, map keys in insertion order. One writer reuses its
// buffer, so steady-state encoding allocates only the frame it hands out (or nothing, with
// WriteTo / the Buffer accessors).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Text;

namespace EntityBridge
{
    public sealed class MsgPackWriter
    {
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false, true);
        byte[] buf;
        int len;

        [ThreadStatic] static MsgPackWriter shared;

        public MsgPackWriter(int capacity = 256) { buf = new byte[Math.Max(16, capacity)]; }

        public static byte[] Encode(object value)
        {
            if (shared == null) shared = new MsgPackWriter();
            shared.Reset();
            shared.Write(value);
            return shared.ToArray();
        }

        public int Length { get { return len; } }
        /// <summary>The internal buffer; valid bytes are [0, Length). Overwritten by the next Reset.</summary>
        public byte[] Buffer { get { return buf; } }
        public void Reset() { len = 0; }

        public byte[] ToArray()
        {
            var a = new byte[len];
            System.Buffer.BlockCopy(buf, 0, a, 0, len);
            return a;
        }

        void Ensure(int n)
        {
            if (len + n <= buf.Length) return;
            int size = buf.Length * 2;
            while (size < len + n) size *= 2;
            Array.Resize(ref buf, size);
        }

        void B(byte b) { Ensure(1); buf[len++] = b; }
        void B16(byte tag, int v) { Ensure(3); buf[len++] = tag; buf[len++] = (byte)(v >> 8); buf[len++] = (byte)v; }

        void B32(byte tag, uint v)
        {
            Ensure(5);
            buf[len++] = tag;
            buf[len++] = (byte)(v >> 24); buf[len++] = (byte)(v >> 16); buf[len++] = (byte)(v >> 8); buf[len++] = (byte)v;
        }

        void B64(byte tag, ulong v)
        {
            Ensure(9);
            buf[len++] = tag;
            for (int s = 56; s >= 0; s -= 8) buf[len++] = (byte)(v >> s);
        }

        public void WriteNil() { B(0xc0); }
        public void WriteBool(bool v) { B(v ? (byte)0xc3 : (byte)0xc2); }

        public void WriteInt(long v)
        {
            if (v >= 0) { WriteUInt((ulong)v); return; }
            if (v >= -32) B((byte)(sbyte)v);
            else if (v >= sbyte.MinValue) { Ensure(2); buf[len++] = 0xd0; buf[len++] = (byte)(sbyte)v; }
            else if (v >= short.MinValue) B16(0xd1, (short)v);
            else if (v >= int.MinValue) B32(0xd2, unchecked((uint)(int)v));
            else B64(0xd3, unchecked((ulong)v));
        }

        public void WriteUInt(ulong v)
        {
            if (v <= 0x7f) B((byte)v);
            else if (v <= byte.MaxValue) { Ensure(2); buf[len++] = 0xcc; buf[len++] = (byte)v; }
            else if (v <= ushort.MaxValue) B16(0xcd, (int)v);
            else if (v <= uint.MaxValue) B32(0xce, (uint)v);
            else B64(0xcf, v);
        }

        public void WriteDouble(double v) { B64(0xcb, unchecked((ulong)BitConverter.DoubleToInt64Bits(v))); }

        public void WriteString(string s)
        {
            int n;
            try { n = Utf8.GetByteCount(s); }
            catch (ArgumentException) { throw new EepCodecException("utf8", "MessagePack: string holds an unpaired surrogate", len); }
            if (n <= 31) B((byte)(0xa0 | n));
            else if (n <= byte.MaxValue) { Ensure(2); buf[len++] = 0xd9; buf[len++] = (byte)n; }
            else if (n <= ushort.MaxValue) B16(0xda, n);
            else B32(0xdb, (uint)n);
            Ensure(n);
            len += Utf8.GetBytes(s, 0, s.Length, buf, len);
        }

        public void WriteBin(byte[] data, int offset, int count)
        {
            if (count <= byte.MaxValue) { Ensure(2); buf[len++] = 0xc4; buf[len++] = (byte)count; }
            else if (count <= ushort.MaxValue) B16(0xc5, count);
            else B32(0xc6, (uint)count);
            Ensure(count);
            System.Buffer.BlockCopy(data, offset, buf, len, count);
            len += count;
        }

        public void WriteArrayHeader(int n)
        {
            if (n <= 15) B((byte)(0x90 | n));
            else if (n <= ushort.MaxValue) B16(0xdc, n);
            else B32(0xdd, (uint)n);
        }

        public void WriteMapHeader(int n)
        {
            if (n <= 15) B((byte)(0x80 | n));
            else if (n <= ushort.MaxValue) B16(0xde, n);
            else B32(0xdf, (uint)n);
        }

        public void Write(object value) { Write(value, 0); }

        void Write(object value, int depth)
        {
            if (depth > MsgPackReader.MaxDepth)
                throw new EepCodecException("depth", "MessagePack: value nests deeper than " + MsgPackReader.MaxDepth, len);
            if (value == null) { WriteNil(); return; }
            string s = value as string;
            if (s != null) { WriteString(s); return; }
            if (value is long) { WriteInt((long)value); return; }
            if (value is int) { WriteInt((int)value); return; }
            if (value is double) { WriteDouble((double)value); return; }
            if (value is bool) { WriteBool((bool)value); return; }
            var map = value as EepMap;
            if (map != null)
            {
                WriteMapHeader(map.Count);
                for (int i = 0; i < map.Count; i++) { Write(map.KeyAt(i), depth + 1); Write(map.ValueAt(i), depth + 1); }
                return;
            }
            var bytes = value as byte[];
            if (bytes != null) { WriteBin(bytes, 0, bytes.Length); return; }
            if (value is ArraySegment<byte>)
            {
                var seg = (ArraySegment<byte>)value;
                WriteBin(seg.Array, seg.Offset, seg.Count);
                return;
            }
            if (value is ulong) { WriteUInt((ulong)value); return; }
            if (value is uint) { WriteUInt((uint)value); return; }
            if (value is short) { WriteInt((short)value); return; }
            if (value is ushort) { WriteUInt((ushort)value); return; }
            if (value is byte) { WriteUInt((byte)value); return; }
            if (value is sbyte) { WriteInt((sbyte)value); return; }
            if (value is float) { WriteDouble((float)value); return; }
            if (value is decimal) { WriteDouble((double)(decimal)value); return; }
            var dict = value as IDictionary;
            if (dict != null)
            {
                WriteMapHeader(dict.Count);
                foreach (DictionaryEntry e in dict) { Write(e.Key, depth + 1); Write(e.Value, depth + 1); }
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                WriteArrayHeader(list.Count);
                for (int i = 0; i < list.Count; i++) Write(list[i], depth + 1);
                return;
            }
            throw new EepCodecException("type", "MessagePack: cannot encode a " + value.GetType().FullName, len);
        }
    }
}
