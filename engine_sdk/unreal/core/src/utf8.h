// Strict UTF-8 check shared by the two decoders (internal header).
//
// The bridge decodes MessagePack strings with Python's strict UTF-8 codec, so a frame the
// bridge would refuse must be refused here too: no overlong forms, no surrogates, nothing
// above U+10FFFF, no cut sequences.
#pragma once

#include <cstddef>
#include <cstdint>

namespace eb {
namespace detail {

inline bool valid_utf8(const uint8_t* s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        if (c < 0x80) { ++i; continue; }
        size_t len;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
        else return false;  // continuation byte, overlong lead (c0/c1) or f5..ff
        if (n - i < len) return false;
        for (size_t k = 1; k < len; ++k) {
            const uint8_t cc = s[i + k];
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;  // overlong
        if (cp >= 0xd800 && cp <= 0xdfff) return false;  // surrogate
        if (cp > 0x10ffff) return false;
        i += len;
    }
    return true;
}

}  // namespace detail
}  // namespace eb
