// Unit tests of the value type, the MessagePack and JSON codecs, base64 and event framing.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "entitybridge/event.h"
#include "entitybridge/json.h"
#include "entitybridge/msgpack.h"
#include "entitybridge/transport.h"
#include "helpers.h"

using eb::Value;

TEST_CASE("msgpack: canonical integer forms match msgpack.packb") {
    CHECK(hex(eb::msgpack_encode(Value(0))) == "00");
    CHECK(hex(eb::msgpack_encode(Value(127))) == "7f");
    CHECK(hex(eb::msgpack_encode(Value(128))) == "cc80");
    CHECK(hex(eb::msgpack_encode(Value(65535))) == "cdffff");
    CHECK(hex(eb::msgpack_encode(Value(65536))) == "ce00010000");
    CHECK(hex(eb::msgpack_encode(Value(4294967296LL))) == "cf0000000100000000");
    CHECK(hex(eb::msgpack_encode(Value(-1))) == "ff");
    CHECK(hex(eb::msgpack_encode(Value(-32))) == "e0");
    CHECK(hex(eb::msgpack_encode(Value(-33))) == "d0df");
    CHECK(hex(eb::msgpack_encode(Value(-129))) == "d1ff7f");
    CHECK(hex(eb::msgpack_encode(Value(-32769))) == "d2ffff7fff");
    CHECK(hex(eb::msgpack_encode(Value(std::numeric_limits<int64_t>::min()))) == "d38000000000000000");
    CHECK(hex(eb::msgpack_encode(Value(18446744073709551615ULL))) == "cfffffffffffffffff");
}

TEST_CASE("msgpack: round trip of a nested event keeps kinds and key order") {
    Value v = Value::map();
    v.set("type", "ai.speech.audio");
    v.set("z", 1.5);
    v.set("a", Value::bin(std::string("\x00\x01\xff", 3)));
    Value arr = Value::array();
    arr.push(Value());
    arr.push(true);
    arr.push(-7);
    arr.push(std::string(300, 'x'));
    v.set("list", arr);
    const auto bytes = eb::msgpack_encode(v);
    Value back;
    std::string err;
    REQUIRE(eb::msgpack_decode(bytes.data(), bytes.size(), back, &err));
    CHECK(back == v);
    CHECK(back.key_at(0).as_str() == "type");
    CHECK(back.key_at(1).as_str() == "z");
    CHECK(back.get("a").is_bin());
    CHECK(back.get("list").at(3).as_str().size() == 300);
    CHECK(eb::msgpack_encode(back) == bytes);
}

TEST_CASE("msgpack: hostile input is refused with a category, never allocated") {
    Value out;
    std::string err;
    const auto str32 = unhex("dbffffffff616263");
    CHECK_FALSE(eb::msgpack_decode(str32.data(), str32.size(), out, &err));
    CHECK(err.rfind("length:", 0) == 0);
    const auto array32 = unhex("ddffffffffc0");
    CHECK_FALSE(eb::msgpack_decode(array32.data(), array32.size(), out, &err));
    CHECK(err.rfind("length:", 0) == 0);
    const auto reserved = unhex("81a176c1");
    CHECK_FALSE(eb::msgpack_decode(reserved.data(), reserved.size(), out, &err));
    CHECK(err.rfind("reserved:", 0) == 0);
    const auto ext = unhex("d6ff00000000");
    CHECK_FALSE(eb::msgpack_decode(ext.data(), ext.size(), out, &err));
    CHECK(err.rfind("ext:", 0) == 0);
    const auto trailing = unhex("c0c0");
    CHECK_FALSE(eb::msgpack_decode(trailing.data(), trailing.size(), out, &err));
    CHECK(err.rfind("trailing:", 0) == 0);
    const auto int_key = unhex("8101a178");
    CHECK_FALSE(eb::msgpack_decode(int_key.data(), int_key.size(), out, &err));
    CHECK(err.rfind("key:", 0) == 0);
    CHECK_FALSE(eb::msgpack_decode(nullptr, 0, out, &err));
    CHECK(err.rfind("truncated:", 0) == 0);
}

TEST_CASE("msgpack: depth 64 decodes, 65 is refused") {
    std::vector<uint8_t> ok(63, 0x91);
    ok.push_back(0x90);  // 64 arrays
    Value out;
    std::string err;
    CHECK(eb::msgpack_decode(ok.data(), ok.size(), out, &err));
    std::vector<uint8_t> deep(64, 0x91);
    deep.push_back(0x90);  // 65 arrays
    CHECK_FALSE(eb::msgpack_decode(deep.data(), deep.size(), out, &err));
    CHECK(err.rfind("depth:", 0) == 0);
    std::vector<uint8_t> very(200000, 0x91);  // would overflow a naive recursive decoder
    CHECK_FALSE(eb::msgpack_decode(very.data(), very.size(), out, &err));
}

TEST_CASE("msgpack: strings must be valid UTF-8") {
    Value out;
    std::string err;
    for (const char* bad : {"a16f80", "a2c080", "a3eda080", "a4f4908080", "a1ff", "a2e282"}) {
        const auto b = unhex(bad);
        CHECK_MESSAGE(!eb::msgpack_decode(b.data(), b.size(), out, &err), bad);
    }
    const auto good = unhex("a9c3a9e282acf09f9880");  // é € 😀
    CHECK(eb::msgpack_decode(good.data(), good.size(), out, &err));
}

TEST_CASE("json: reader keeps int vs float and reads escapes") {
    Value v;
    std::string err;
    REQUIRE(eb::json_decode(R"( {"a": 1, "b": 1.0, "c": -9223372036854775808, "d": 18446744073709551615,
        "e": "\u00e9\ud83d\ude00\n", "f": [true, false, null], "g": 1e3} )", v, &err));
    CHECK(v.get("a").kind() == Value::Kind::Int);
    CHECK(v.get("b").kind() == Value::Kind::Float);
    CHECK(v.get("c").as_int() == std::numeric_limits<int64_t>::min());
    CHECK(v.get("d").as_uint() == 18446744073709551615ULL);
    CHECK(v.get("e").as_str() == "\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(v.get("f").size() == 3);
    CHECK(v.get("g").as_double() == 1000.0);
}

TEST_CASE("json: malformed text is refused cleanly") {
    Value v;
    std::string err;
    for (const char* bad : {"", "{", "{\"a\":}", "[1,]", "\"abc", "{\"a\" 1}", "tru", "01x", "\"\\ud800\"",
                            "[1] 2", "{1:2}", "\"\\x\"", "-", "1.", "1e"}) {
        CHECK_MESSAGE(!eb::json_decode(std::string(bad), v, &err), bad);
    }
    std::string deep(65, '[');
    deep += std::string(65, ']');
    CHECK_FALSE(eb::json_decode(deep, v, &err));
    CHECK(err.rfind("depth:", 0) == 0);
}

TEST_CASE("json: writer output reads back equal, floats stay floats") {
    Value v = Value::map();
    v.set("t", "q\"uote\\ \x01 é");
    v.set("x", 2.0);
    v.set("pi", 3.141592653589793);
    v.set("n", -12);
    v.set("bin", Value::bin(std::string("hello")));
    const std::string text = eb::json_encode(v);
    CHECK(text.find("\"x\":2.0") != std::string::npos);
    CHECK(text.find("\"bin\":\"aGVsbG8=\"") != std::string::npos);
    Value back;
    REQUIRE(eb::json_decode(text, back));
    CHECK(back.get("pi").as_double() == 3.141592653589793);
    CHECK(back.get("t") == v.get("t"));
    CHECK(back.get("x").is_float());
}

TEST_CASE("base64: round trip and strict padding") {
    std::string out;
    for (size_t n = 0; n < 10; ++n) {
        std::string raw;
        for (size_t i = 0; i < n; ++i) raw += static_cast<char>(i * 37 + 250);
        REQUIRE(eb::base64_decode(eb::base64_encode(raw), out));
        CHECK(out == raw);
    }
    CHECK(eb::base64_encode("hi!") == "aGkh");
    CHECK_FALSE(eb::base64_decode("aGk", out));
    CHECK_FALSE(eb::base64_decode("a=Gk", out));
    CHECK_FALSE(eb::base64_decode("aG!h", out));
}

TEST_CASE("event: JSON framing turns only the schema's binary fields into bytes") {
    const std::string text = R"({"type":"ai.speech.audio","id":"b1","entity":"npc","ref":"u1","payload":{"audio":"AAB4AA==","speech":"AAB4AA=="}})";
    eb::Event e;
    std::string err;
    REQUIRE(eb::decode_frame(reinterpret_cast<const uint8_t*>(text.data()), text.size(), false, e, &err));
    CHECK(e.payload.get("audio").is_bin());
    CHECK(e.payload.get("audio").as_bin() == std::string("\x00\x00\x78\x00", 4));
    CHECK(e.payload.get("speech").is_str());
    CHECK(e.status == "new");
    CHECK(e.ref == "u1");
    const std::string bad = R"({"type":"ai.speech.audio","id":"b1","payload":{"audio":"not base64!"}})";
    CHECK_FALSE(eb::decode_frame(reinterpret_cast<const uint8_t*>(bad.data()), bad.size(), false, e, &err));
    CHECK(err.rfind("bad_event:", 0) == 0);
    const std::string no_id = R"({"type":"ai.text","payload":null})";
    CHECK_FALSE(eb::decode_frame(reinterpret_cast<const uint8_t*>(no_id.data()), no_id.size(), false, e, &err));
}

TEST_CASE("event: the same event in both framings decodes to the same thing") {
    eb::Event e;
    e.type = "stt.audio";
    e.id = "m1";
    e.entity = "npc-1";
    e.payload.set("seq", 3);
    e.payload.set("audio", Value::bin(std::string("\x01\x02\x03\x04", 4)));
    for (eb::Framing f : {eb::Framing::MsgPack, eb::Framing::Json}) {
        const auto frame = eb::encode_frame(e, f);
        eb::Event back;
        REQUIRE(eb::decode_frame(frame.data(), frame.size(), f == eb::Framing::MsgPack, back));
        CHECK(back.to_wire() == e.to_wire());
    }
}

TEST_CASE("fragments: Unreal-style pieces reassemble into one message, bounded") {
    eb::FragmentAssembler fa(10);
    const uint8_t a[] = {1, 2, 3}, b[] = {4, 5}, c[] = {6};
    CHECK(fa.feed(a, 3, false) == eb::FragmentAssembler::Result::Partial);
    CHECK(fa.feed(b, 2, false) == eb::FragmentAssembler::Result::Partial);
    REQUIRE(fa.feed(c, 1, true) == eb::FragmentAssembler::Result::Complete);
    CHECK(fa.message() == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
    REQUIRE(fa.feed(c, 1, true) == eb::FragmentAssembler::Result::Complete);  // a one-fragment message
    CHECK(fa.message() == std::vector<uint8_t>{6});
    const uint8_t big[8] = {};
    CHECK(fa.feed(big, 8, false) == eb::FragmentAssembler::Result::Partial);
    CHECK(fa.feed(big, 8, false) == eb::FragmentAssembler::Result::Partial);
    CHECK(fa.feed(c, 1, true) == eb::FragmentAssembler::Result::TooLarge);
    REQUIRE(fa.feed(a, 3, true) == eb::FragmentAssembler::Result::Complete);  // recovers
    CHECK(fa.message() == std::vector<uint8_t>{1, 2, 3});
}
