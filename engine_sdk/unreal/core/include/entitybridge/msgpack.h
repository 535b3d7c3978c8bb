// MessagePack for EEP/1 frames: a bounded, non-throwing decoder and the canonical encoder.
//
// The decoder treats every byte as hostile: each length prefix is checked against the bytes
// that are left before anything is allocated (so a str32 claiming 4 GiB costs nothing), nesting
// is capped, extension types (timestamps included) and the reserved byte 0xc1 are refused as
// the bridge refuses them, strings must be valid UTF-8, map keys must be strings, and bytes after the value are an error.
// The encoder writes exactly what the bridge writes (msgpack.packb(value, use_bin_type=True)):
// smallest int/str/bin/array/map forms, floats as float64, map keys in insertion order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "entitybridge/value.h"

namespace eb {

struct DecodeOptions {
    // Containers nested deeper than this are refused (the top-level map is depth 1).
    size_t max_depth = 64;
};

// Decodes exactly one value filling the whole buffer. On failure returns false and sets
// `error` to "<category>: <detail>" (categories: truncated, length, reserved, ext, depth,
// utf8, key, trailing); `out` is then unspecified.
bool msgpack_decode(const uint8_t* data, size_t size, Value& out, std::string* error = nullptr,
                    const DecodeOptions& options = {});

// Appends the canonical encoding of `v` to `out`.
void msgpack_encode(const Value& v, std::vector<uint8_t>& out);
std::vector<uint8_t> msgpack_encode(const Value& v);

}  // namespace eb
