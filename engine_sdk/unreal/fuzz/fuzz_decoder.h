// One fuzz input through every decoder path a hostile peer can reach, with the codec's
// round-trip property checked: shared by the libFuzzer target (fuzz_decoder.cpp) and the
// bounded random loop in the doctest suite (tests/test_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "entitybridge/event.h"
#include "entitybridge/json.h"
#include "entitybridge/msgpack.h"
#include "entitybridge/speech_buffer.h"
#include "entitybridge/timeline.h"

namespace eb_fuzz {

// Returns false when a property fails (the callers abort or fail the test on it).
inline bool fuzz_one(const uint8_t* data, size_t size) {
    eb::Value v;
    std::string err;
    if (eb::msgpack_decode(data, size, v, &err)) {
        // Whatever decodes re-encodes canonically, and that decodes to the same value.
        const auto again = eb::msgpack_encode(v);
        eb::Value back;
        if (!eb::msgpack_decode(again.data(), again.size(), back, &err)) return false;
        if (eb::msgpack_encode(back) != again) return false;
    } else if (err.empty()) {
        return false;  // a refusal always says why
    }
    eb::Value j;
    err.clear();
    if (eb::json_decode(reinterpret_cast<const char*>(data), size, j, &err)) {
        const std::string text = eb::json_encode(j);
        eb::Value back;
        if (!eb::json_decode(text, back, &err)) return false;
    } else if (err.empty()) {
        return false;
    }
    // The event layer, and what a game does with an event: speech and lip sync.
    for (bool binary : {true, false}) {
        eb::Event e;
        if (!eb::decode_frame(data, size, binary, e, &err)) continue;
        eb::SpeechBuffer buffer(16000, 4096);
        eb::Timeline timeline;
        buffer.handle(e);
        timeline.handle(e);
        float block[64];
        buffer.pull(block, 64);
        buffer.poll_reports();
        timeline.weights_at(e.payload.str_or("speech"), 40);
        const auto frame = eb::encode_frame(e, binary ? eb::Framing::MsgPack : eb::Framing::Json);
        eb::Event again;
        if (!eb::decode_frame(frame.data(), frame.size(), binary, again, &err)) return false;
    }
    return true;
}

}  // namespace eb_fuzz
