// JSON codec for the debugging framing, into the same value model as MessagePack: integers
// without a fraction or exponent become long (ulong when above long.MaxValue), other numbers
// double; objects become EepMap in document order. byte[] values are written as base64
// strings (the protocol's rule for bin fields in JSON); the event layer turns the known
// binary fields back into bytes on decode. Unity's JsonUtility cannot do arbitrary maps, and
// a Newtonsoft dependency would clash with the user's own copy, hence this small one.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace EntityBridge
{
    public static class Json
    {
        public static object Decode(string text) { return Decode(text, MsgPackReader.MaxDepth); }

        /// <summary>maxDepth: containers nested deeper are refused (64 for frames; a larger
        /// figure for trusted documents such as the conformance corpus).</summary>
        public static object Decode(string text, int maxDepth)
        {
            if (text == null) throw new ArgumentNullException("text");
            var p = new JsonParser(text, maxDepth);
            return p.ParseDocument();
        }

        public static string Encode(object value)
        {
            var sb = new StringBuilder(128);
            Write(sb, value, 0);
            return sb.ToString();
        }

        public static void Write(StringBuilder sb, object value, int depth)
        {
            if (depth > MsgPackReader.MaxDepth) throw new EepCodecException("depth", "JSON: value nests deeper than " + MsgPackReader.MaxDepth, sb.Length);
            if (value == null) { sb.Append("null"); return; }
            string s = value as string;
            if (s != null) { WriteString(sb, s); return; }
            if (value is bool) { sb.Append((bool)value ? "true" : "false"); return; }
            if (value is long || value is int || value is short || value is sbyte || value is byte ||
                value is ushort || value is uint || value is ulong)
            {
                sb.Append(Convert.ToString(value, CultureInfo.InvariantCulture));
                return;
            }
            if (value is double || value is float || value is decimal)
            {
                double d = Convert.ToDouble(value, CultureInfo.InvariantCulture);
                if (double.IsNaN(d) || double.IsInfinity(d))
                    throw new EepCodecException("type", "JSON: cannot encode " + d, sb.Length);
                string r = d.ToString("R", CultureInfo.InvariantCulture);
                sb.Append(r);
                if (r.IndexOf('.') < 0 && r.IndexOf('E') < 0) sb.Append(".0");
                return;
            }
            var bytes = value as byte[];
            if (bytes != null) { sb.Append('"').Append(Convert.ToBase64String(bytes)).Append('"'); return; }
            if (value is ArraySegment<byte>)
            {
                var seg = (ArraySegment<byte>)value;
                sb.Append('"').Append(Convert.ToBase64String(seg.Array, seg.Offset, seg.Count)).Append('"');
                return;
            }
            var map = value as EepMap;
            if (map != null)
            {
                sb.Append('{');
                for (int i = 0; i < map.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    WriteKey(sb, map.KeyAt(i));
                    sb.Append(':');
                    Write(sb, map.ValueAt(i), depth + 1);
                }
                sb.Append('}');
                return;
            }
            var dict = value as IDictionary;
            if (dict != null)
            {
                sb.Append('{');
                bool first = true;
                foreach (DictionaryEntry e in dict)
                {
                    if (!first) sb.Append(',');
                    first = false;
                    WriteKey(sb, e.Key);
                    sb.Append(':');
                    Write(sb, e.Value, depth + 1);
                }
                sb.Append('}');
                return;
            }
            var list = value as IList;
            if (list != null)
            {
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(',');
                    Write(sb, list[i], depth + 1);
                }
                sb.Append(']');
                return;
            }
            throw new EepCodecException("type", "JSON: cannot encode a " + value.GetType().FullName, sb.Length);
        }

        static void WriteKey(StringBuilder sb, object key)
        {
            string k = key as string;
            if (k == null) throw new EepCodecException("type", "JSON: map keys must be strings, not " + (key == null ? "null" : key.GetType().Name), sb.Length);
            WriteString(sb, k);
        }

        static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }
    }

    sealed class JsonParser
    {
        readonly string s;
        readonly int maxDepth;
        int i;

        public JsonParser(string text, int maxDepth) { s = text; this.maxDepth = maxDepth; }

        EepCodecException Fail(string category, string message) { return new EepCodecException(category, "JSON: " + message, i); }

        public object ParseDocument()
        {
            Ws();
            if (i >= s.Length) throw Fail("truncated", "empty document");
            object v = Value(0);
            Ws();
            if (i != s.Length) throw Fail("trailing", "text after the end of the value");
            return v;
        }

        void Ws()
        {
            while (i < s.Length)
            {
                char c = s[i];
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') i++; else break;
            }
        }

        char Peek()
        {
            if (i >= s.Length) throw Fail("truncated", "unexpected end of text");
            return s[i];
        }

        object Value(int depth)
        {
            char c = Peek();
            switch (c)
            {
                case '{': return Obj(depth);
                case '[': return Arr(depth);
                case '"': return Str();
                case 't': Lit("true"); return BoxCache.True;
                case 'f': Lit("false"); return BoxCache.False;
                case 'n': Lit("null"); return null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return Num();
                    throw Fail("syntax", "unexpected character '" + c + "'");
            }
        }

        void Lit(string word)
        {
            if (i + word.Length > s.Length) { i = s.Length; throw Fail("truncated", "unexpected end of text"); }
            if (string.CompareOrdinal(s, i, word, 0, word.Length) != 0) throw Fail("syntax", "expected " + word);
            i += word.Length;
        }

        EepMap Obj(int depth)
        {
            if (depth >= maxDepth) throw Fail("depth", "nesting deeper than " + maxDepth);
            i++;
            var map = new EepMap();
            Ws();
            if (Peek() == '}') { i++; return map; }
            while (true)
            {
                Ws();
                if (Peek() != '"') throw Fail("syntax", "expected a string key");
                string key = Str();
                Ws();
                if (Peek() != ':') throw Fail("syntax", "expected ':'");
                i++;
                Ws();
                map.Append(key, Value(depth + 1));
                Ws();
                char c = Peek();
                i++;
                if (c == ',') continue;
                if (c == '}') return map;
                i--;
                throw Fail("syntax", "expected ',' or '}'");
            }
        }

        List<object> Arr(int depth)
        {
            if (depth >= maxDepth) throw Fail("depth", "nesting deeper than " + maxDepth);
            i++;
            var list = new List<object>();
            Ws();
            if (Peek() == ']') { i++; return list; }
            while (true)
            {
                Ws();
                list.Add(Value(depth + 1));
                Ws();
                char c = Peek();
                i++;
                if (c == ',') continue;
                if (c == ']') return list;
                i--;
                throw Fail("syntax", "expected ',' or ']'");
            }
        }

        string Str()
        {
            i++; // opening quote
            int start = i;
            // Fast path: no escapes.
            while (i < s.Length)
            {
                char c = s[i];
                if (c == '"') { string plain = s.Substring(start, i - start); i++; return plain; }
                if (c == '\\') break;
                if (c < 0x20) throw Fail("syntax", "control character in a string");
                i++;
            }
            var sb = new StringBuilder(s, start, i - start, Math.Max(16, (i - start) * 2));
            while (true)
            {
                if (i >= s.Length) throw Fail("truncated", "unterminated string");
                char c = s[i++];
                if (c == '"') return sb.ToString();
                if (c < 0x20) { i--; throw Fail("syntax", "control character in a string"); }
                if (c != '\\') { sb.Append(c); continue; }
                if (i >= s.Length) throw Fail("truncated", "unterminated escape");
                char e = s[i++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (i + 4 > s.Length) { i = s.Length; throw Fail("truncated", "short \\u escape"); }
                        int code = 0;
                        for (int k = 0; k < 4; k++)
                        {
                            int h = Hex(s[i + k]);
                            if (h < 0) throw Fail("syntax", "bad \\u escape");
                            code = code * 16 + h;
                        }
                        i += 4;
                        sb.Append((char)code);
                        break;
                    default:
                        i--;
                        throw Fail("syntax", "bad escape '\\" + e + "'");
                }
            }
        }

        static int Hex(char c)
        {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        }

        object Num()
        {
            int start = i;
            if (s[i] == '-') i++;
            if (i >= s.Length) throw Fail("truncated", "number ends early");
            if (s[i] == '0') i++;
            else if (s[i] >= '1' && s[i] <= '9') { while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++; }
            else throw Fail("syntax", "bad number");
            bool isFloat = false;
            if (i < s.Length && s[i] == '.')
            {
                isFloat = true;
                i++;
                int d = i;
                while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++;
                if (i == d) throw Fail(i >= s.Length ? "truncated" : "syntax", "digits expected after '.'");
            }
            if (i < s.Length && (s[i] == 'e' || s[i] == 'E'))
            {
                isFloat = true;
                i++;
                if (i < s.Length && (s[i] == '+' || s[i] == '-')) i++;
                int d = i;
                while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++;
                if (i == d) throw Fail(i >= s.Length ? "truncated" : "syntax", "digits expected in the exponent");
            }
            string text = s.Substring(start, i - start);
            if (!isFloat)
            {
                long l;
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return BoxCache.Long(l);
                ulong u;
                if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out u)) return u;
            }
            double v;
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out v) || double.IsInfinity(v))
                throw Fail("syntax", "number out of range: " + text);
            return v;
        }
    }
}
