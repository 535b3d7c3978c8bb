// JSON reader/writer and base64: see json.h.
#include "entitybridge/json.h"

#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "utf8.h"

namespace eb {

namespace {

class Parser {
public:
    Parser(const char* text, size_t size, const DecodeOptions& options, std::string* error)
        : s_(text), n_(size), options_(options), error_(error) {}

    bool document(Value& out) {
        ws();
        if (!value(out, 1)) return false;
        ws();
        if (i_ != n_) return fail("trailing", "characters after the value");
        return true;
    }

private:
    bool fail(const char* category, const char* detail) {
        if (error_) *error_ = std::string(category) + ": " + detail + " (offset " + std::to_string(i_) + ")";
        return false;
    }

    void ws() {
        while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }

    bool literal(const char* word, Value v, Value& out) {
        const size_t len = std::strlen(word);
        if (n_ - i_ < len || std::memcmp(s_ + i_, word, len) != 0) return fail("syntax", "unexpected character");
        i_ += len;
        out = std::move(v);
        return true;
    }

    bool value(Value& out, size_t depth) {
        if (i_ >= n_) return fail("truncated", "a value was expected");
        const char c = s_[i_];
        switch (c) {
            case '{': return object(out, depth);
            case '[': return array(out, depth);
            case '"': {
                std::string s;
                if (!string(s)) return false;
                out = Value(std::move(s));
                return true;
            }
            case 't': return literal("true", Value(true), out);
            case 'f': return literal("false", Value(false), out);
            case 'n': return literal("null", Value(), out);
            default: break;
        }
        if (c == '-' || (c >= '0' && c <= '9')) return number(out);
        return fail("syntax", "unexpected character");
    }

    bool object(Value& out, size_t depth) {
        if (depth > options_.max_depth) return fail("depth", "nesting too deep");
        ++i_;
        out = Value::map();
        ws();
        if (i_ < n_ && s_[i_] == '}') { ++i_; return true; }
        for (;;) {
            ws();
            if (i_ >= n_) return fail("truncated", "object not closed");
            if (s_[i_] != '"') return fail("key", "object keys must be strings");
            std::string key;
            if (!string(key)) return false;
            ws();
            if (i_ >= n_ || s_[i_] != ':') return fail("syntax", "':' expected");
            ++i_;
            ws();
            Value item;
            if (!value(item, depth + 1)) return false;
            out.set(key, std::move(item));  // a repeated key keeps the last value, as Python does
            ws();
            if (i_ >= n_) return fail("truncated", "object not closed");
            if (s_[i_] == ',') { ++i_; continue; }
            if (s_[i_] == '}') { ++i_; return true; }
            return fail("syntax", "',' or '}' expected");
        }
    }

    bool array(Value& out, size_t depth) {
        if (depth > options_.max_depth) return fail("depth", "nesting too deep");
        ++i_;
        out = Value::array();
        ws();
        if (i_ < n_ && s_[i_] == ']') { ++i_; return true; }
        for (;;) {
            ws();
            Value item;
            if (!value(item, depth + 1)) return false;
            out.push(std::move(item));
            ws();
            if (i_ >= n_) return fail("truncated", "array not closed");
            if (s_[i_] == ',') { ++i_; continue; }
            if (s_[i_] == ']') { ++i_; return true; }
            return fail("syntax", "',' or ']' expected");
        }
    }

    bool hex4(uint32_t& out) {
        if (n_ - i_ < 4) return fail("truncated", "\\u needs four hex digits");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
            const char h = s_[i_++];
            v <<= 4;
            if (h >= '0' && h <= '9') v |= static_cast<uint32_t>(h - '0');
            else if (h >= 'a' && h <= 'f') v |= static_cast<uint32_t>(h - 'a' + 10);
            else if (h >= 'A' && h <= 'F') v |= static_cast<uint32_t>(h - 'A' + 10);
            else return fail("syntax", "bad hex digit in \\u escape");
        }
        out = v;
        return true;
    }

    static void utf8(uint32_t cp, std::string& out) {
        if (cp < 0x80) out += static_cast<char>(cp);
        else if (cp < 0x800) { out += static_cast<char>(0xc0 | (cp >> 6)); out += static_cast<char>(0x80 | (cp & 0x3f)); }
        else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    bool string(std::string& out) {
        ++i_;  // opening quote
        for (;;) {
            if (i_ >= n_) return fail("truncated", "string not closed");
            const unsigned char c = static_cast<unsigned char>(s_[i_]);
            if (c == '"') {
                ++i_;
                if (!detail::valid_utf8(reinterpret_cast<const uint8_t*>(out.data()), out.size())) return fail("utf8", "string is not valid UTF-8");
                return true;
            }
            if (c < 0x20) return fail("syntax", "control character in string");
            if (c != '\\') { out += static_cast<char>(c); ++i_; continue; }
            ++i_;
            if (i_ >= n_) return fail("truncated", "escape not finished");
            const char e = s_[i_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    uint32_t cp;
                    if (!hex4(cp)) return false;
                    if (cp >= 0xd800 && cp <= 0xdbff) {
                        uint32_t low;
                        if (n_ - i_ < 2 || s_[i_] != '\\' || s_[i_ + 1] != 'u') return fail("syntax", "lone high surrogate");
                        i_ += 2;
                        if (!hex4(low)) return false;
                        if (low < 0xdc00 || low > 0xdfff) return fail("syntax", "bad low surrogate");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                        return fail("syntax", "lone low surrogate");
                    }
                    utf8(cp, out);
                    break;
                }
                default: return fail("syntax", "unknown escape");
            }
        }
    }

    bool number(Value& out) {
        const size_t start = i_;
        bool is_float = false;
        if (s_[i_] == '-') ++i_;
        if (i_ >= n_) return fail("truncated", "number not finished");
        if (s_[i_] == '0') ++i_;
        else if (s_[i_] >= '1' && s_[i_] <= '9') while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        else return fail("syntax", "digit expected");
        if (i_ < n_ && s_[i_] == '.') {
            is_float = true;
            ++i_;
            if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') return fail("syntax", "digit expected after '.'");
            while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        }
        if (i_ < n_ && (s_[i_] == 'e' || s_[i_] == 'E')) {
            is_float = true;
            ++i_;
            if (i_ < n_ && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (i_ >= n_ || s_[i_] < '0' || s_[i_] > '9') return fail("syntax", "digit expected in exponent");
            while (i_ < n_ && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        }
        std::string text(s_ + start, i_ - start);
        if (!is_float) {
            // Exact integer arithmetic; beyond 64 bits it falls back to a double as Python's
            // json would keep it exact (rare: EEP/1 integers are milliseconds and counts).
            const bool negative = text[0] == '-';
            uint64_t magnitude = 0;
            bool overflow = false;
            for (size_t k = negative ? 1 : 0; k < text.size(); ++k) {
                const uint64_t digit = static_cast<uint64_t>(text[k] - '0');
                if (magnitude > (UINT64_MAX - digit) / 10) { overflow = true; break; }
                magnitude = magnitude * 10 + digit;
            }
            if (!overflow) {
                if (!negative) { out = Value(static_cast<unsigned long long>(magnitude)); return true; }
                if (magnitude <= static_cast<uint64_t>(INT64_MAX) + 1) {
                    out = Value(static_cast<int64_t>(0 - magnitude));
                    return true;
                }
            }
        }
        // strtod follows the C locale's decimal point; a host may have changed it.
        const char point = *std::localeconv()->decimal_point;
        if (point != '.') for (char& ch : text) if (ch == '.') ch = point;
        out = Value(std::strtod(text.c_str(), nullptr));
        return true;
    }

    const char* s_;
    size_t n_;
    size_t i_ = 0;
    const DecodeOptions& options_;
    std::string* error_;
};

void write_string(const std::string& s, std::string& out) {
    static const char* hex = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 0xf];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

void write_double(double d, std::string& out) {
    if (!std::isfinite(d)) { out += "null"; return; }
    char buf[40];
    // The shortest of %.15g / %.16g / %.17g that reads back to the same double.
    for (int precision = 15; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, d);
        if (std::strtod(buf, nullptr) == d) break;
    }
    const char point = *std::localeconv()->decimal_point;
    bool has_mark = false;
    for (char* p = buf; *p; ++p) {
        if (*p == point) *p = '.';
        if (*p == '.' || *p == 'e' || *p == 'n' || *p == 'i') has_mark = true;
    }
    out += buf;
    if (!has_mark) out += ".0";  // keep it a float for the reader on the other side
}

void write(const Value& v, std::string& out) {
    switch (v.kind()) {
        case Value::Kind::Nil: out += "null"; return;
        case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
        case Value::Kind::Int: out += std::to_string(v.as_int()); return;
        case Value::Kind::UInt: out += std::to_string(v.as_uint()); return;
        case Value::Kind::Float: write_double(v.as_double(), out); return;
        case Value::Kind::Str: write_string(v.as_str(), out); return;
        case Value::Kind::Bin: out += '"'; out += base64_encode(v.as_bin()); out += '"'; return;
        case Value::Kind::Array: {
            out += '[';
            bool first = true;
            for (const Value& item : v.items()) {
                if (!first) out += ',';
                first = false;
                write(item, out);
            }
            out += ']';
            return;
        }
        case Value::Kind::Map: {
            out += '{';
            for (size_t i = 0; i < v.size(); ++i) {
                if (i) out += ',';
                const Value& key = v.key_at(i);
                if (key.is_str()) write_string(key.as_str(), out);
                else write_string(json_encode(key), out);  // JSON keys are strings
                out += ':';
                write(v.value_at(i), out);
            }
            out += '}';
            return;
        }
    }
}

int b64_index(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

}  // namespace

bool json_decode(const char* text, size_t size, Value& out, std::string* error, const DecodeOptions& options) {
    if (text == nullptr && size != 0) {
        if (error) *error = "truncated: no data";
        return false;
    }
    Parser parser(text, size, options, error);
    return parser.document(out);
}

std::string json_encode(const Value& v) {
    std::string out;
    write(v, out);
    return out;
}

std::string base64_encode(const std::string& bytes) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    for (; i + 2 < bytes.size(); i += 3) {
        const uint32_t v = (uint32_t(b[i]) << 16) | (uint32_t(b[i + 1]) << 8) | b[i + 2];
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    if (i + 1 == bytes.size()) {
        const uint32_t v = uint32_t(b[i]) << 16;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += "==";
    } else if (i + 2 == bytes.size()) {
        const uint32_t v = (uint32_t(b[i]) << 16) | (uint32_t(b[i + 1]) << 8);
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool base64_decode(const std::string& text, std::string& out) {
    out.clear();
    if (text.size() % 4 != 0) return false;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            const unsigned char c = static_cast<unsigned char>(text[i + k]);
            if (c == '=' && i + 4 == text.size() && k >= 2) { v[k] = 0; ++pad; continue; }
            if (pad) return false;  // data after padding
            v[k] = b64_index(c);
            if (v[k] < 0) return false;
        }
        const uint32_t bits = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) | uint32_t(v[3]);
        out += static_cast<char>(bits >> 16);
        if (pad < 2) out += static_cast<char>((bits >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(bits & 0xff);
    }
    return true;
}

}  // namespace eb
