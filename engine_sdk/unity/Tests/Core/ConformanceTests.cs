// The shared corpus (tests/conformance): every golden frame decodes to its typed value, the
// canonical ones re-encode byte for byte, the JSON form means the same, and every bad frame
// is refused with an EepCodecException (never a crash, a hang or a huge allocation).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class ConformanceTests
    {
        static List<object> Frames(string file)
        {
            var doc = (EepMap)Json.Decode(File.ReadAllText(Path.Combine(TestEnv.ConformanceDir, file), Encoding.UTF8), 100000);
            Assert.That(doc.GetLong("version"), Is.EqualTo(1L));
            return doc.GetList("frames");
        }

        static byte[] Unhex(string h) { return TestEnv.Unhex(h); }

        /// <summary>"" when `value` is what the typed tree says, else where and how it differs.</summary>
        static string Diff(object value, object tree, string path)
        {
            var t = (List<object>)tree;
            string kind = (string)t[0];
            switch (kind)
            {
                case "nil": return value == null ? "" : path + ": expected nil, got " + Show(value);
                case "bool": return value is bool && (bool)value == (bool)t[1] ? "" : path + ": expected bool " + t[1] + ", got " + Show(value);
                case "int":
                {
                    string want = (string)t[1];
                    string got = value is long ? ((long)value).ToString(CultureInfo.InvariantCulture)
                               : value is ulong ? ((ulong)value).ToString(CultureInfo.InvariantCulture) : null;
                    return got == want ? "" : path + ": expected int " + want + ", got " + Show(value);
                }
                case "float":
                {
                    double want = t[1] is double ? (double)t[1] : Convert.ToDouble(t[1], CultureInfo.InvariantCulture);
                    return value is double && ((double)value).Equals(want) ? "" : path + ": expected float " + want.ToString("R", CultureInfo.InvariantCulture) + ", got " + Show(value);
                }
                case "str": return value is string && (string)value == (string)t[1] ? "" : path + ": expected str " + t[1] + ", got " + Show(value);
                case "bin":
                {
                    var b = value as byte[];
                    if (b == null) return path + ": expected bin, got " + Show(value);
                    return Hex(b) == (string)t[1] ? "" : path + ": bin differs";
                }
                case "array":
                {
                    var items = (List<object>)t[1];
                    var list = value as List<object>;
                    if (list == null) return path + ": expected array, got " + Show(value);
                    if (list.Count != items.Count) return path + ": expected " + items.Count + " items, got " + list.Count;
                    for (int i = 0; i < items.Count; i++)
                    {
                        string d = Diff(list[i], items[i], path + "[" + i + "]");
                        if (d != "") return d;
                    }
                    return "";
                }
                case "map":
                {
                    var pairs = (List<object>)t[1];
                    var map = value as EepMap;
                    if (map == null) return path + ": expected map, got " + Show(value);
                    if (map.Count != pairs.Count) return path + ": expected " + pairs.Count + " pairs, got " + map.Count;
                    for (int i = 0; i < pairs.Count; i++)
                    {
                        var pair = (List<object>)pairs[i];
                        string d = Diff(map.KeyAt(i), pair[0], path + ".key" + i);
                        if (d != "") return d;
                        d = Diff(map.ValueAt(i), pair[1], path + "." + map.KeyAt(i));
                        if (d != "") return d;
                    }
                    return "";
                }
            }
            return path + ": unknown tree kind " + kind;
        }

        static string Show(object v) { return v == null ? "nil" : v.GetType().Name + " " + Json.Encode(v); }
        static string Hex(byte[] b) { return BitConverter.ToString(b).Replace("-", "").ToLowerInvariant(); }

        [Test]
        public void EveryGoldenFrameDecodesToItsValueAndCanonicalOnesReencodeByteForByte()
        {
            var frames = Frames("frames.json");
            Assert.That(frames.Count, Is.GreaterThan(50));
            var problems = new List<string>();
            int canonical = 0, withJson = 0;
            foreach (EepMap f in frames)
            {
                string name = f.GetString("name");
                byte[] bytes = Unhex(f.GetString("msgpack"));
                object decoded;
                try { decoded = MsgPackReader.Decode(bytes); }
                catch (EepCodecException ex) { problems.Add(name + ": refused: " + ex.Message); continue; }
                string d = Diff(decoded, f["value"], name);
                if (d != "") { problems.Add(d); continue; }
                byte[] again = MsgPackWriter.Encode(decoded);
                if (f.GetBool("canonical"))
                {
                    canonical++;
                    if (Hex(again) != Hex(bytes)) problems.Add(name + ": re-encoded to " + Hex(again));
                }
                else
                {
                    // Decode-only forms (wide ints, float32) re-encode canonically to the same value.
                    string d2 = Diff(MsgPackReader.Decode(again), f["value"], name + " (re-encoded)");
                    if (d2 != "") problems.Add(d2);
                }
                string json = f.GetString("json");
                if (json != null)
                {
                    withJson++;
                    try
                    {
                        var wire = EventCodec.DecodeTextWire(json);
                        string dj = Diff(wire, f["value"], name + " (json)");
                        if (dj != "") problems.Add(dj);
                        // Our JSON writer, read back, gives the same event again.
                        string mine = Json.Encode(BridgeEvent.FromWire(wire).ToWire());
                        string dj2 = Diff(EventCodec.DecodeTextWire(mine), f["value"], name + " (our json)");
                        if (dj2 != "" && !dj2.Contains("pairs")) problems.Add(dj2);
                    }
                    catch (EepCodecException ex) { problems.Add(name + ": json refused: " + ex.Message); }
                }
            }
            Assert.That(problems, Is.Empty, string.Join("\n", problems.ToArray()));
            Assert.That(canonical, Is.GreaterThan(20));
            Assert.That(withJson, Is.GreaterThan(20));
        }

        [Test]
        public void EveryGoldenEventBecomesABridgeEvent()
        {
            var codec = new EventCodec();
            int events = 0;
            foreach (EepMap f in Frames("frames.json"))
            {
                if (f.GetString("json") == null) continue;
                byte[] bytes = Unhex(f.GetString("msgpack"));
                var e = codec.DecodeBinary(bytes, 0, bytes.Length);
                var wire = (EepMap)MsgPackReader.Decode(bytes);
                Assert.That(e.Type, Is.EqualTo(wire["type"]), f.GetString("name"));
                Assert.That(e.Id, Is.EqualTo(wire["id"]), f.GetString("name"));
                Assert.That(e.Status, Is.EqualTo(wire.GetString("status", "new")));
                events++;
            }
            Assert.That(events, Is.GreaterThan(20));
        }

        [Test]
        public void EveryBadFrameIsRefusedCleanly()
        {
            var frames = Frames("frames_bad.json");
            Assert.That(frames.Count, Is.GreaterThan(20));
            var problems = new List<string>();
            var codec = new EventCodec();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            foreach (EepMap f in frames)
            {
                string name = f.GetString("name");
                byte[] bytes = Unhex(f.GetString("msgpack"));
                long before = GC.GetTotalMemory(false);
                try
                {
                    codec.DecodeBinary(bytes, 0, bytes.Length);
                    problems.Add(name + ": accepted (expected " + f.GetString("error") + ")");
                }
                catch (EepCodecException ex)
                {
                    if (ex.Category != f.GetString("error"))
                        Console.WriteLine("INFO: " + name + ": refused as " + ex.Category + " (corpus says " + f.GetString("error") + ")");
                }
                catch (Exception ex)
                {
                    problems.Add(name + ": crashed with " + ex.GetType().Name + ": " + ex.Message);
                }
                long grew = GC.GetTotalMemory(false) - before;
                if (grew > 64L * 1024 * 1024) problems.Add(name + ": allocated " + grew + " bytes");
            }
            Assert.That(problems, Is.Empty, string.Join("\n", problems.ToArray()));
            Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(10));
        }
    }
}
