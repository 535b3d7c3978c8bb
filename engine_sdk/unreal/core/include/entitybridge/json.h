// JSON for the EEP/1 text framing, and base64 for its binary fields.
//
// Like the MessagePack decoder, the JSON reader is bounded (nesting depth capped, no
// allocation beyond the input's own size) and reports errors instead of throwing. Numbers
// without a fraction or exponent become integers (int64, or uint64 above INT64_MAX), the rest
// doubles, so a reader keeps the int/float distinction the bridge's Python json keeps.
// `bin` values are written as base64 strings (the JSON framing's rule for binary fields);
// turning the known binary fields back into bytes is the event layer's job (event.h).
#pragma once

#include <cstddef>
#include <string>

#include "entitybridge/msgpack.h"
#include "entitybridge/value.h"

namespace eb {

bool json_decode(const char* text, size_t size, Value& out, std::string* error = nullptr,
                 const DecodeOptions& options = {});
inline bool json_decode(const std::string& text, Value& out, std::string* error = nullptr,
                        const DecodeOptions& options = {}) {
    return json_decode(text.data(), text.size(), out, error, options);
}

// Compact JSON (no spaces), UTF-8 passed through, like json.dumps(separators=(",", ":"),
// ensure_ascii=False). Non-finite floats, which JSON cannot carry, are written as null.
std::string json_encode(const Value& v);

std::string base64_encode(const std::string& bytes);
// Standard alphabet, padding required (what Python's b64decode(validate=True) accepts).
bool base64_decode(const std::string& text, std::string& out);

}  // namespace eb
