// The shared conformance corpus (tests/conformance/), read with the SDK's own JSON reader:
// every golden frame decodes to its typed value, canonical ones re-encode byte for byte,
// whole events decode the same from their JSON framing, and every bad frame is refused.
#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

#include "entitybridge/event.h"
#include "entitybridge/json.h"
#include "entitybridge/msgpack.h"
#include "helpers.h"

using eb::Value;

namespace {

const std::string kCorpus = std::string(EB_REPO_ROOT) + "/tests/conformance/";

// ["int", "-5"], ["str", "x"], ["map", [[k, v], ...]] ... -> Value (README's typed tree).
bool from_tree(const Value& tree, Value& out, std::string& why) {
    const std::string& tag = tree.at(0).as_str();
    const Value& arg = tree.at(1);
    if (tag == "nil") { out = Value(); return true; }
    if (tag == "bool") { out = Value(arg.as_bool()); return true; }
    if (tag == "int") {
        const std::string& s = arg.as_str();
        if (!s.empty() && s[0] == '-') out = Value(static_cast<int64_t>(std::strtoll(s.c_str(), nullptr, 10)));
        else out = Value(static_cast<unsigned long long>(std::strtoull(s.c_str(), nullptr, 10)));
        return true;
    }
    if (tag == "float") { out = Value(arg.as_double()); return true; }
    if (tag == "str") { out = Value(arg.as_str()); return true; }
    if (tag == "bin") {
        const auto bytes = unhex(arg.as_str());
        out = Value::bin(bytes.data(), bytes.size());
        return true;
    }
    if (tag == "array") {
        out = Value::array();
        for (const Value& item : arg.items()) {
            Value v;
            if (!from_tree(item, v, why)) return false;
            out.push(std::move(v));
        }
        return true;
    }
    if (tag == "map") {
        out = Value::map();
        for (const Value& pair : arg.items()) {
            Value k, v;
            if (!from_tree(pair.at(0), k, why) || !from_tree(pair.at(1), v, why)) return false;
            out.append_pair(std::move(k), std::move(v));
        }
        return true;
    }
    why = "unknown tag " + tag;
    return false;
}

// Exact equality that also tells -0.0 from 0.0 (Value's == treats them as equal).
bool same(const Value& a, const Value& b) {
    if (a.kind() != b.kind()) return false;
    if (a.is_float()) {
        return eb::msgpack_encode(a) == eb::msgpack_encode(b);
    }
    if (a.is_array() || a.is_map()) {
        if (a.items().size() != b.items().size()) return false;
        for (size_t i = 0; i < a.items().size(); ++i) if (!same(a.items()[i], b.items()[i])) return false;
        return true;
    }
    return a == b;
}

Value load(const std::string& name) {
    Value doc;
    std::string err;
    const std::string text = read_file(kCorpus + name);
    REQUIRE_MESSAGE(!text.empty(), "cannot read " << kCorpus << name);
    // The typed tree of the depth-64 frame nests two JSON levels per MessagePack level.
    eb::DecodeOptions options;
    options.max_depth = 512;
    REQUIRE_MESSAGE(eb::json_decode(text, doc, &err, options), name << ": " << err);
    REQUIRE(doc.get("version").as_int() == 1);
    return doc;
}

}  // namespace

TEST_CASE("conformance: every golden frame decodes to its value and re-encodes") {
    const Value doc = load("frames.json");
    const Value& frames = doc.get("frames");
    REQUIRE(frames.size() > 100);
    size_t canonical = 0, events = 0;
    for (const Value& frame : frames.items()) {
        const std::string name = frame.str_or("name");
        CAPTURE(name);
        const auto bytes = unhex(frame.str_or("msgpack"));
        Value decoded, expected;
        std::string err;
        REQUIRE_MESSAGE(eb::msgpack_decode(bytes.data(), bytes.size(), decoded, &err), err);
        std::string why;
        REQUIRE_MESSAGE(from_tree(frame.get("value"), expected, why), why);
        CHECK(same(decoded, expected));
        const auto again = eb::msgpack_encode(decoded);
        if (frame.get("canonical").as_bool()) {
            ++canonical;
            CHECK(hex(again) == frame.str_or("msgpack"));
        } else {
            // Decode-only input re-encodes canonically: to bytes that decode to the same value.
            Value back;
            REQUIRE(eb::msgpack_decode(again.data(), again.size(), back, &err));
            CHECK(same(back, expected));
            CHECK(again == eb::msgpack_encode(expected));
            CHECK(again != bytes);
        }
        if (const Value* json = frame.find("json")) {
            ++events;
            // The same event in the JSON framing: bin fields come back as bytes.
            eb::Event from_json, from_msgpack;
            const std::string& text = json->as_str();
            REQUIRE_MESSAGE(eb::decode_frame(reinterpret_cast<const uint8_t*>(text.data()), text.size(), false, from_json, &err), err);
            REQUIRE_MESSAGE(eb::decode_frame(bytes.data(), bytes.size(), true, from_msgpack, &err), err);
            CHECK(same(from_json.to_wire(), from_msgpack.to_wire()));
            // And our JSON writer's text reads back to the same event.
            const auto ours = eb::encode_frame(from_msgpack, eb::Framing::Json);
            eb::Event reread;
            REQUIRE(eb::decode_frame(ours.data(), ours.size(), false, reread, &err));
            CHECK(same(reread.to_wire(), from_msgpack.to_wire()));
        }
    }
    CHECK(canonical > 100);
    CHECK(events > 50);
}

TEST_CASE("conformance: every bad frame is refused cleanly") {
    const Value doc = load("frames_bad.json");
    const Value& frames = doc.get("frames");
    REQUIRE(frames.size() > 100);
    for (const Value& frame : frames.items()) {
        const std::string name = frame.str_or("name");
        CAPTURE(name);
        const auto bytes = unhex(frame.str_or("msgpack"));
        Value decoded;
        std::string err;
        const bool decoded_ok = eb::msgpack_decode(bytes.data(), bytes.size(), decoded, &err);
        // A frame is refused when it does not decode, or decodes to something that is not a map.
        CHECK_MESSAGE((!decoded_ok || !decoded.is_map()), name);
        if (frame.str_or("error") == "not_map") CHECK(decoded_ok);
        else CHECK_MESSAGE(!decoded_ok, name << " should fail to decode (" << frame.str_or("error") << ")");
        eb::Event event;
        CHECK_FALSE(eb::decode_frame(bytes.data(), bytes.size(), true, event, &err));
        CHECK(!err.empty());
    }
}
