// The MessagePack and JSON codecs: canonical bytes for every form, round trips, and refusal of
// malformed input (clear exception, no hang, no allocation driven by a length prefix).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Text;
using NUnit.Framework;

namespace EntityBridge.Tests
{
    [TestFixture]
    public class CodecTests
    {
        static string Hex(byte[] b) { return BitConverter.ToString(b).Replace("-", "").ToLowerInvariant(); }

        static byte[] Unhex(string h) { return TestEnv.Unhex(h); }

        [TestCase(0L, "00")]
        [TestCase(127L, "7f")]
        [TestCase(128L, "cc80")]
        [TestCase(255L, "ccff")]
        [TestCase(256L, "cd0100")]
        [TestCase(65535L, "cdffff")]
        [TestCase(65536L, "ce00010000")]
        [TestCase(4294967295L, "ceffffffff")]
        [TestCase(4294967296L, "cf0000000100000000")]
        [TestCase(-1L, "ff")]
        [TestCase(-32L, "e0")]
        [TestCase(-33L, "d0df")]
        [TestCase(-128L, "d080")]
        [TestCase(-129L, "d1ff7f")]
        [TestCase(-32768L, "d18000")]
        [TestCase(-32769L, "d2ffff7fff")]
        [TestCase(-2147483648L, "d280000000")]
        [TestCase(-2147483649L, "d3ffffffff7fffffff")]
        [TestCase(long.MinValue, "d38000000000000000")]
        [TestCase(long.MaxValue, "cf7fffffffffffffff")]
        public void IntegersUseTheSmallestForm(long value, string hex)
        {
            byte[] bytes = MsgPackWriter.Encode(value);
            Assert.That(Hex(bytes), Is.EqualTo(hex));
            Assert.That(MsgPackReader.Decode(bytes), Is.EqualTo(value));
        }

        [Test]
        public void Uint64AboveLongMaxDecodesAsUlong()
        {
            object v = MsgPackReader.Decode(Unhex("cfffffffffffffffff"));
            Assert.That(v, Is.InstanceOf<ulong>());
            Assert.That((ulong)v, Is.EqualTo(ulong.MaxValue));
            Assert.That(Hex(MsgPackWriter.Encode(ulong.MaxValue)), Is.EqualTo("cfffffffffffffffff"));
        }

        [Test]
        public void WideFormsOfSmallIntsDecodeToTheSameValue()
        {
            Assert.That(MsgPackReader.Decode(Unhex("d30000000000000005")), Is.EqualTo(5L));
            Assert.That(MsgPackReader.Decode(Unhex("cd0005")), Is.EqualTo(5L));
            Assert.That(MsgPackReader.Decode(Unhex("d0fb")), Is.EqualTo(-5L));
        }

        [Test]
        public void FloatsAreDoublesAndFloat32Widens()
        {
            Assert.That(Hex(MsgPackWriter.Encode(1.5)), Is.EqualTo("cb3ff8000000000000"));
            Assert.That(Hex(MsgPackWriter.Encode(1.5f)), Is.EqualTo("cb3ff8000000000000"));
            Assert.That(MsgPackReader.Decode(Unhex("ca3fc00000")), Is.EqualTo(1.5));
            Assert.That(MsgPackReader.Decode(Unhex("cb3ff8000000000000")), Is.EqualTo(1.5));
        }

        [TestCase(0, "a0")]
        [TestCase(31, "bf")]
        [TestCase(32, "d920")]
        [TestCase(255, "d9ff")]
        [TestCase(256, "da0100")]
        [TestCase(65536, "db00010000")]
        public void StringHeaders(int length, string header)
        {
            string s = new string('x', length);
            byte[] bytes = MsgPackWriter.Encode(s);
            Assert.That(Hex(bytes).Substring(0, header.Length), Is.EqualTo(header));
            Assert.That(bytes.Length, Is.EqualTo(header.Length / 2 + length));
            Assert.That(MsgPackReader.Decode(bytes), Is.EqualTo(s));
        }

        [TestCase(0, "c400")]
        [TestCase(255, "c4ff")]
        [TestCase(256, "c50100")]
        [TestCase(70000, "c600011170")]
        public void BinHeaders(int length, string header)
        {
            var data = new byte[length];
            for (int i = 0; i < length; i++) data[i] = (byte)(i * 7);
            byte[] bytes = MsgPackWriter.Encode(data);
            Assert.That(Hex(bytes).Substring(0, header.Length), Is.EqualTo(header));
            var back = (byte[])MsgPackReader.Decode(bytes);
            Assert.That(back, Is.EqualTo(data));
        }

        [Test]
        public void Utf8StringsRoundTrip()
        {
            string s = "héllo wörld, 你好, \U0001F600";
            Assert.That(MsgPackReader.Decode(MsgPackWriter.Encode(s)), Is.EqualTo(s));
            Assert.That(Json.Decode(Json.Encode(s)), Is.EqualTo(s));
        }

        [TestCase(15, "9f")]
        [TestCase(16, "dc0010")]
        [TestCase(65536, "dd00010000")]
        public void ArrayHeaders(int n, string header)
        {
            var list = new List<object>();
            for (int i = 0; i < n; i++) list.Add(null);
            byte[] bytes = MsgPackWriter.Encode(list);
            Assert.That(Hex(bytes).Substring(0, header.Length), Is.EqualTo(header));
            Assert.That(((List<object>)MsgPackReader.Decode(bytes)).Count, Is.EqualTo(n));
        }

        [TestCase(15, "8f")]
        [TestCase(16, "de0010")]
        [TestCase(65536, "df00010000")]
        public void MapHeadersAndOrder(int n, string header)
        {
            var map = new EepMap();
            for (int i = n - 1; i >= 0; i--) map.Append("k" + i, (long)i);
            byte[] bytes = MsgPackWriter.Encode(map);
            Assert.That(Hex(bytes).Substring(0, header.Length), Is.EqualTo(header));
            var back = (EepMap)MsgPackReader.Decode(bytes);
            Assert.That(back.Count, Is.EqualTo(n));
            Assert.That(back.KeyAt(0), Is.EqualTo("k" + (n - 1)), "insertion order is kept");
            Assert.That(back.GetLong("k0"), Is.EqualTo(0L));
            Assert.That(MsgPackWriter.Encode(back), Is.EqualTo(bytes));
        }

        [Test]
        public void NilAndBools()
        {
            Assert.That(Hex(MsgPackWriter.Encode(null)), Is.EqualTo("c0"));
            Assert.That(Hex(MsgPackWriter.Encode(true)), Is.EqualTo("c3"));
            Assert.That(Hex(MsgPackWriter.Encode(false)), Is.EqualTo("c2"));
            Assert.That(MsgPackReader.Decode(Unhex("c3")), Is.EqualTo(true));
            Assert.That(MsgPackReader.Decode(Unhex("c0")), Is.Null);
        }

        [Test]
        public void AnEventMatchesPythonMsgpackBytes()
        {
            // msgpack.packb({"type": "ping", "id": "1", "payload": None}, use_bin_type=True)
            var map = new EepMap().Set("type", "ping").Set("id", "1").Set("payload", null);
            Assert.That(Hex(MsgPackWriter.Encode(map)), Is.EqualTo("83a474797065a470696e67a26964a131a77061796c6f6164c0"));
        }

        [TestCase("db ffffffff", "length")]            // str32 claiming 4 GiB
        [TestCase("c6 ffffffff", "length")]            // bin32 claiming 4 GiB
        [TestCase("dd ffffffff", "length")]            // array32 of 4G elements, no bytes behind
        [TestCase("df 7fffffff", "length")]            // map32
        [TestCase("da 0010 6162", "truncated")]
        [TestCase("c1", "reserved")]
        [TestCase("d4 01 00", "ext")]
        [TestCase("c7 01 ff 00", "ext")]
        [TestCase("d6 ff 00000000", "ext")]           // timestamp32
        [TestCase("", "truncated")]
        [TestCase("cd 01", "truncated")]
        [TestCase("a3 6162", "truncated")]
        [TestCase("81 a1 61", "truncated")]
        [TestCase("c0 c0", "trailing")]
        [TestCase("81 01 c0", "key")]
        [TestCase("81 c4 01 6b c0", "key")]
        [TestCase("a2 c3 28", "utf8")]
        public void MalformedMsgPackIsRefusedWithACategory(string hex, string category)
        {
            byte[] bytes = Unhex(hex.Replace(" ", ""));
            var ex = Assert.Throws<EepCodecException>(delegate { MsgPackReader.Decode(bytes); });
            Assert.That(ex.Category, Is.EqualTo(category), ex.Message);
            StringAssert.Contains("MessagePack", ex.Message);
        }

        [Test]
        public void NestingIsCappedAt64()
        {
            var ok = new byte[64];
            for (int i = 0; i < 63; i++) ok[i] = 0x91;
            ok[63] = 0x90;                                 // 64 arrays deep: accepted
            Assert.That(MsgPackReader.Decode(ok), Is.Not.Null);
            var deep = new byte[100001];
            for (int i = 0; i < 100000; i++) deep[i] = 0x91;
            deep[100000] = 0xc0;
            var ex = Assert.Throws<EepCodecException>(delegate { MsgPackReader.Decode(deep); });
            Assert.That(ex.Category, Is.EqualTo("depth"));
            var json = new string('[', 100000) + new string(']', 100000);
            Assert.That(Assert.Throws<EepCodecException>(delegate { Json.Decode(json); }).Category, Is.EqualTo("depth"));
        }

        static EepMap SampleEvent()
        {
            var audio = new byte[1920];
            new Random(3).NextBytes(audio);
            var visemes = new List<object> {
                new List<object> { 0L, "sil", 1.0 }, new List<object> { 12L, "O", 0.7 } };
            var payload = new EepMap().Set("speech", "sp-1").Set("seq", 3L).Set("t", 120L).Set("audio", audio)
                .Set("visemes", visemes).Set("volume", new List<object> { 0.0, 0.31, 0.56, 0.48 })
                .Set("big", -4294967296L).Set("flag", true).Set("none", null).Set("text", "Of course! \"Five\"\n");
            return new EepMap().Set("type", "ai.speech.audio").Set("id", "b103").Set("entity", "npc-innkeeper")
                .Set("ref", "u1").Set("payload", payload);
        }

        [Test]
        public void EveryTruncationOfAFrameFailsCleanly()
        {
            byte[] frame = MsgPackWriter.Encode(SampleEvent());
            for (int n = 0; n < frame.Length; n++)
            {
                var cut = new byte[n];
                Buffer.BlockCopy(frame, 0, cut, 0, n);
                var ex = Assert.Throws<EepCodecException>(delegate { MsgPackReader.Decode(cut); }, "prefix of " + n);
                Assert.That(ex.Category, Is.EqualTo("truncated").Or.EqualTo("length"));
            }
            Assert.That(MsgPackWriter.Encode(MsgPackReader.Decode(frame)), Is.EqualTo(frame));
        }

        [Test]
        public void RandomBytesNeverCrashOrHang()
        {
            var rng = new Random(12345);
            byte[] frame = MsgPackWriter.Encode(SampleEvent());
            var clock = Stopwatch.StartNew();
            int refused = 0, decoded = 0;
            for (int round = 0; round < 20000; round++)
            {
                byte[] input;
                if (round % 2 == 0)
                {
                    input = new byte[rng.Next(0, 64)];
                    rng.NextBytes(input);
                }
                else
                {
                    input = (byte[])frame.Clone();          // a real frame with a few bytes flipped
                    for (int k = 0; k < 1 + rng.Next(4); k++) input[rng.Next(input.Length)] = (byte)rng.Next(256);
                }
                try { MsgPackReader.Decode(input); decoded++; }
                catch (EepCodecException) { refused++; }
            }
            Assert.That(refused + decoded, Is.EqualTo(20000));
            Assert.That(refused, Is.GreaterThan(1000), "random input is mostly refused");
            Assert.That(clock.Elapsed.TotalSeconds, Is.LessThan(20), "no hang");
        }

        [Test]
        public void JsonRandomTextNeverCrashes()
        {
            var rng = new Random(99);
            string doc = Json.Encode(SampleEvent());
            const string alphabet = "{}[]\",:0123456789.eE-+tfnul\\ abc";
            int refused = 0;
            for (int round = 0; round < 20000; round++)
            {
                string input;
                if (round % 2 == 0)
                {
                    var chars = new char[rng.Next(0, 40)];
                    for (int k = 0; k < chars.Length; k++) chars[k] = alphabet[rng.Next(alphabet.Length)];
                    input = new string(chars);
                }
                else
                {
                    var chars = doc.ToCharArray();
                    for (int k = 0; k < 1 + rng.Next(3); k++) chars[rng.Next(chars.Length)] = alphabet[rng.Next(alphabet.Length)];
                    input = round % 3 == 0 ? new string(chars, 0, rng.Next(chars.Length)) : new string(chars);
                }
                try { Json.Decode(input); }
                catch (EepCodecException) { refused++; }
            }
            Assert.That(refused, Is.GreaterThan(1000));
        }

        [Test]
        public void JsonRoundTripKeepsTypes()
        {
            var ev = SampleEvent();
            string text = Json.Encode(ev);
            var back = (EepMap)Json.Decode(text);
            var p = back.GetMap("payload");
            Assert.That(p["seq"], Is.InstanceOf<long>());
            Assert.That(((List<object>)p["volume"])[0], Is.InstanceOf<double>(), "0.0 stays a float");
            Assert.That(p["big"], Is.EqualTo(-4294967296L));
            Assert.That(p["text"], Is.EqualTo("Of course! \"Five\"\n"));
            Assert.That(p["audio"], Is.EqualTo(Convert.ToBase64String(ev.GetMap("payload").GetBytes("audio"))));
            Assert.That(Json.Encode(back), Is.EqualTo(text));
            Assert.That(Json.Decode("18446744073709551615"), Is.EqualTo(ulong.MaxValue));
            Assert.That(Json.Decode("\"\\u00e9\\ud83d\\ude00\""), Is.EqualTo("é\U0001F600"));
            Assert.That(Json.Decode(" [1e3, -0.5, 2E-2] "), Is.EqualTo(new List<object> { 1000.0, -0.5, 0.02 }));
        }

        [TestCase("{\"a\":1,}", "syntax")]
        [TestCase("{\"a\" 1}", "syntax")]
        [TestCase("[1,2", "truncated")]
        [TestCase("\"abc", "truncated")]
        [TestCase("tru", "truncated")]
        [TestCase("01", "trailing")]
        [TestCase("{} {}", "trailing")]
        [TestCase("\"\\x\"", "syntax")]
        [TestCase("1e999", "syntax")]
        [TestCase("", "truncated")]
        public void MalformedJsonIsRefused(string text, string category)
        {
            var ex = Assert.Throws<EepCodecException>(delegate { Json.Decode(text); });
            Assert.That(ex.Category, Is.EqualTo(category), ex.Message);
        }

        [Test]
        public void EventCodecTurnsJsonAudioBackIntoBytes()
        {
            var codec = new EventCodec();
            var e = BridgeEvent.FromWire(SampleEvent());
            byte[] text = codec.Encode(e, Framing.Json);
            var back = codec.DecodeText(text, 0, text.Length);
            Assert.That(back.Payload.GetBytes("audio"), Is.EqualTo(e.Payload.GetBytes("audio")));
            Assert.That(back.Payload["text"], Is.InstanceOf<string>(), "other strings stay strings");
            byte[] bin = codec.Encode(e, Framing.MsgPack);
            var back2 = codec.DecodeBinary(bin, 0, bin.Length);
            Assert.That(back2.Type, Is.EqualTo("ai.speech.audio"));
            Assert.That(back2.Ref, Is.EqualTo("u1"));
            Assert.That(back2.Payload.GetLong("seq"), Is.EqualTo(3L));
            Assert.That(Assert.Throws<EepCodecException>(delegate { codec.DecodeBinary(new byte[] { 0x93, 1, 2, 3 }, 0, 4); }).Category,
                Is.EqualTo("not_map"), "a frame that is not a map");
        }
    }
}
