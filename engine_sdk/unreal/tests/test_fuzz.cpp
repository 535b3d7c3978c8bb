// A bounded random fuzz of the decoders: every corpus frame (good and bad) mutated many
// times (bit flips, byte changes, cuts, inserted bytes, length fields set to huge values,
// splices); no crash, no hang, properties hold. Deterministic (fixed seed) and bounded in
// iterations and time, so it runs in CI under ASan+UBSan too. The open-ended fuzz is the
// libFuzzer target in fuzz/ (run-tests.sh runs it for a few seconds).
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "../fuzz/fuzz_decoder.h"
#include "helpers.h"

namespace {

struct Rng {
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    uint64_t next() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return s;
    }
    size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

std::vector<std::vector<uint8_t>> seeds() {
    std::vector<std::vector<uint8_t>> out;
    for (const char* name : {"frames.json", "frames_bad.json"}) {
        eb::Value doc;
        eb::DecodeOptions deep;
        deep.max_depth = 512;
        REQUIRE(eb::json_decode(read_file(std::string(EB_REPO_ROOT) + "/tests/conformance/" + name), doc, nullptr, deep));
        for (const eb::Value& f : doc.get("frames").items()) {
            auto bytes = unhex(f.str_or("msgpack"));
            if (bytes.size() <= 8192) out.push_back(std::move(bytes));
            if (const eb::Value* json = f.find("json")) out.emplace_back(json->as_str().begin(), json->as_str().end());
        }
    }
    return out;
}

void mutate(std::vector<uint8_t>& b, Rng& rng, const std::vector<std::vector<uint8_t>>& pool) {
    const int edits = 1 + static_cast<int>(rng.below(4));
    for (int e = 0; e < edits; ++e) {
        switch (rng.below(7)) {
            case 0: if (!b.empty()) b[rng.below(b.size())] ^= static_cast<uint8_t>(1u << rng.below(8)); break;
            case 1: if (!b.empty()) b[rng.below(b.size())] = static_cast<uint8_t>(rng.next()); break;
            case 2: if (!b.empty()) b.resize(rng.below(b.size())); break;
            case 3: b.insert(b.begin() + static_cast<long>(rng.below(b.size() + 1)), static_cast<uint8_t>(rng.next())); break;
            case 4: {  // a length prefix or count made huge
                static const uint8_t tags[] = {0xdb, 0xc6, 0xdd, 0xdf, 0xda, 0xdc, 0xde, 0xd9, 0xc4};
                const size_t at = rng.below(b.size() + 1);
                std::vector<uint8_t> huge = {tags[rng.below(sizeof tags)], 0xff, 0xff, 0xff, 0xff};
                b.insert(b.begin() + static_cast<long>(at), huge.begin(), huge.end());
                break;
            }
            case 5: {  // splice in part of another frame
                const auto& other = pool[rng.below(pool.size())];
                if (other.empty()) break;
                const size_t from = rng.below(other.size());
                const size_t len = rng.below(other.size() - from) + 1;
                b.insert(b.begin() + static_cast<long>(rng.below(b.size() + 1)), other.begin() + static_cast<long>(from),
                         other.begin() + static_cast<long>(from + len));
                break;
            }
            default:  // deep nesting
                b.insert(b.begin() + static_cast<long>(rng.below(b.size() + 1)), rng.below(200), rng.below(2) ? 0x91 : '[');
        }
    }
}

}  // namespace

TEST_CASE("fuzz: mutated corpus frames never crash or hang the decoders, and round-trip") {
    const auto pool = seeds();
    REQUIRE(pool.size() > 300);
    Rng rng;
    const auto start = std::chrono::steady_clock::now();
    const int iterations = 200000;
    int done = 0, failures = 0;
    for (; done < iterations; ++done) {
        std::vector<uint8_t> b = pool[rng.below(pool.size())];
        mutate(b, rng, pool);
        if (!eb_fuzz::fuzz_one(b.data(), b.size())) {
            if (failures++ < 5) FAIL_CHECK("property failed for input " << hex(b));
        }
        if ((done & 1023) == 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(10)) break;
    }
    MESSAGE("fuzz iterations: " << done);
    CHECK(failures == 0);
    CHECK(done >= 10000);  // the time cap must not make the fuzz meaningless
}

TEST_CASE("fuzz: random bytes") {
    Rng rng;
    rng.s = 12345;
    for (int i = 0; i < 20000; ++i) {
        std::vector<uint8_t> b(rng.below(64));
        for (auto& x : b) x = static_cast<uint8_t>(rng.next());
        REQUIRE(eb_fuzz::fuzz_one(b.data(), b.size()));
    }
}
