// MessagePack codec: see msgpack.h for the rules it enforces and why.
#include "entitybridge/msgpack.h"

#include <cstring>

#include "utf8.h"

namespace eb {

namespace {

class Reader {
public:
    Reader(const uint8_t* data, size_t size, const DecodeOptions& options, std::string* error)
        : p_(data), size_(size), options_(options), error_(error) {}

    bool value(Value& out, size_t depth);
    size_t offset() const { return pos_; }

    bool fail(const char* category, const std::string& detail) {
        if (error_) *error_ = std::string(category) + ": " + detail + " (offset " + std::to_string(pos_) + ")";
        return false;
    }

private:
    size_t left() const { return size_ - pos_; }

    bool need(size_t n, const char* what) {
        if (n > left()) return fail("truncated", std::string(what) + " needs " + std::to_string(n) + " bytes, " + std::to_string(left()) + " left");
        return true;
    }

    bool be(size_t n, uint64_t& out, const char* what) {
        if (!need(n, what)) return false;
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v = (v << 8) | p_[pos_ + i];
        pos_ += n;
        out = v;
        return true;
    }

    // A payload of `n` bytes announced by a length prefix: refused before any allocation
    // when it points past the end of the frame.
    bool bytes(uint64_t n, std::string& out, const char* what) {
        if (n > left()) return fail("length", std::string(what) + " claims " + std::to_string(n) + " bytes, " + std::to_string(left()) + " left");
        out.assign(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(n));
        pos_ += static_cast<size_t>(n);
        return true;
    }

    bool str(uint64_t n, Value& out) {
        std::string s;
        const size_t at = pos_;
        if (!bytes(n, s, "str")) return false;
        if (!detail::valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size())) {
            pos_ = at;
            return fail("utf8", "string is not valid UTF-8");
        }
        out = Value(std::move(s));
        return true;
    }

    bool bin(uint64_t n, Value& out) {
        std::string s;
        if (!bytes(n, s, "bin")) return false;
        out = Value::bin(std::move(s));
        return true;
    }

    bool array(uint64_t n, Value& out, size_t depth) {
        if (depth > options_.max_depth) return fail("depth", "nesting deeper than " + std::to_string(options_.max_depth));
        // Every element takes at least one byte: a count beyond the bytes left is a lie.
        if (n > left()) return fail("length", "array claims " + std::to_string(n) + " items, " + std::to_string(left()) + " bytes left");
        out = Value::array();
        out.reserve(static_cast<size_t>(n));
        for (uint64_t i = 0; i < n; ++i) {
            Value item;
            if (!value(item, depth + 1)) return false;
            out.push(std::move(item));
        }
        return true;
    }

    bool map(uint64_t n, Value& out, size_t depth) {
        if (depth > options_.max_depth) return fail("depth", "nesting deeper than " + std::to_string(options_.max_depth));
        if (n > left() / 2) return fail("length", "map claims " + std::to_string(n) + " pairs, " + std::to_string(left()) + " bytes left");
        out = Value::map();
        out.reserve(static_cast<size_t>(n));
        for (uint64_t i = 0; i < n; ++i) {
            size_t key_at = pos_;
            Value key;
            if (!value(key, depth + 1)) return false;
            if (!key.is_str()) {
                pos_ = key_at;
                return fail("key", "map keys must be strings");
            }
            Value item;
            if (!value(item, depth + 1)) return false;
            out.append_pair(std::move(key), std::move(item));
        }
        return true;
    }

    const uint8_t* p_;
    size_t size_;
    size_t pos_ = 0;
    const DecodeOptions& options_;
    std::string* error_;
};

bool Reader::value(Value& out, size_t depth) {
    if (!need(1, "a value")) return false;
    const uint8_t b = p_[pos_++];
    uint64_t n = 0;
    if (b <= 0x7f) { out = Value(static_cast<int64_t>(b)); return true; }
    if (b >= 0xe0) { out = Value(static_cast<int64_t>(static_cast<int8_t>(b))); return true; }
    if ((b & 0xe0) == 0xa0) return str(b & 0x1f, out);
    if ((b & 0xf0) == 0x90) return array(b & 0x0f, out, depth);
    if ((b & 0xf0) == 0x80) return map(b & 0x0f, out, depth);
    switch (b) {
        case 0xc0: out = Value(); return true;
        case 0xc2: out = Value(false); return true;
        case 0xc3: out = Value(true); return true;
        case 0xc1: --pos_; return fail("reserved", "byte 0xc1 is never used");
        case 0xc4: return be(1, n, "bin8 length") && bin(n, out);
        case 0xc5: return be(2, n, "bin16 length") && bin(n, out);
        case 0xc6: return be(4, n, "bin32 length") && bin(n, out);
        case 0xc7: case 0xc8: case 0xc9:
        case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
            --pos_;
            return fail("ext", "MessagePack extension types are not part of EEP/1");
        case 0xca: {
            if (!be(4, n, "float32")) return false;
            uint32_t bits = static_cast<uint32_t>(n);
            float f;
            std::memcpy(&f, &bits, sizeof f);
            out = Value(static_cast<double>(f));
            return true;
        }
        case 0xcb: {
            if (!be(8, n, "float64")) return false;
            double d;
            std::memcpy(&d, &n, sizeof d);
            out = Value(d);
            return true;
        }
        case 0xcc: if (!be(1, n, "uint8")) return false; out = Value(static_cast<unsigned long long>(n)); return true;
        case 0xcd: if (!be(2, n, "uint16")) return false; out = Value(static_cast<unsigned long long>(n)); return true;
        case 0xce: if (!be(4, n, "uint32")) return false; out = Value(static_cast<unsigned long long>(n)); return true;
        case 0xcf: if (!be(8, n, "uint64")) return false; out = Value(static_cast<unsigned long long>(n)); return true;
        case 0xd0: if (!be(1, n, "int8")) return false; out = Value(static_cast<int64_t>(static_cast<int8_t>(n))); return true;
        case 0xd1: if (!be(2, n, "int16")) return false; out = Value(static_cast<int64_t>(static_cast<int16_t>(n))); return true;
        case 0xd2: if (!be(4, n, "int32")) return false; out = Value(static_cast<int64_t>(static_cast<int32_t>(n))); return true;
        case 0xd3: if (!be(8, n, "int64")) return false; out = Value(static_cast<int64_t>(n)); return true;
        case 0xd9: return be(1, n, "str8 length") && str(n, out);
        case 0xda: return be(2, n, "str16 length") && str(n, out);
        case 0xdb: return be(4, n, "str32 length") && str(n, out);
        case 0xdc: return be(2, n, "array16 count") && array(n, out, depth);
        case 0xdd: return be(4, n, "array32 count") && array(n, out, depth);
        case 0xde: return be(2, n, "map16 count") && map(n, out, depth);
        case 0xdf: return be(4, n, "map32 count") && map(n, out, depth);
        default: break;
    }
    --pos_;
    return fail("reserved", "unknown type byte");
}

void put_be(std::vector<uint8_t>& out, uint8_t tag, uint64_t v, size_t n) {
    out.push_back(tag);
    for (size_t i = n; i-- > 0;) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void put_len(std::vector<uint8_t>& out, size_t n, uint8_t fix_base, size_t fix_max, uint8_t tag8, uint8_t tag16, uint8_t tag32) {
    if (n <= fix_max) out.push_back(static_cast<uint8_t>(fix_base | n));
    else if (tag8 != 0 && n <= 0xff) put_be(out, tag8, n, 1);
    else if (n <= 0xffff) put_be(out, tag16, n, 2);
    else put_be(out, tag32, n, 4);
}

}  // namespace

bool msgpack_decode(const uint8_t* data, size_t size, Value& out, std::string* error, const DecodeOptions& options) {
    if (data == nullptr && size != 0) {
        if (error) *error = "truncated: no data";
        return false;
    }
    Reader reader(data, size, options, error);
    if (!reader.value(out, 1)) return false;
    if (reader.offset() != size) {
        return reader.fail("trailing", std::to_string(size - reader.offset()) + " bytes after the value");
    }
    return true;
}

void msgpack_encode(const Value& v, std::vector<uint8_t>& out) {
    switch (v.kind()) {
        case Value::Kind::Nil: out.push_back(0xc0); return;
        case Value::Kind::Bool: out.push_back(v.as_bool() ? 0xc3 : 0xc2); return;
        case Value::Kind::UInt: put_be(out, 0xcf, v.as_uint(), 8); return;
        case Value::Kind::Int: {
            const int64_t i = v.as_int();
            if (i >= 0) {
                const uint64_t u = static_cast<uint64_t>(i);
                if (u <= 0x7f) out.push_back(static_cast<uint8_t>(u));
                else if (u <= 0xff) put_be(out, 0xcc, u, 1);
                else if (u <= 0xffff) put_be(out, 0xcd, u, 2);
                else if (u <= 0xffffffffULL) put_be(out, 0xce, u, 4);
                else put_be(out, 0xcf, u, 8);
            } else {
                const uint64_t bits = static_cast<uint64_t>(i);
                if (i >= -32) out.push_back(static_cast<uint8_t>(bits));
                else if (i >= -128) put_be(out, 0xd0, bits & 0xff, 1);
                else if (i >= -32768) put_be(out, 0xd1, bits & 0xffff, 2);
                else if (i >= -2147483648LL) put_be(out, 0xd2, bits & 0xffffffffULL, 4);
                else put_be(out, 0xd3, bits, 8);
            }
            return;
        }
        case Value::Kind::Float: {
            const double d = v.as_double();
            uint64_t bits;
            std::memcpy(&bits, &d, sizeof bits);
            put_be(out, 0xcb, bits, 8);
            return;
        }
        case Value::Kind::Str: {
            const std::string& s = v.raw_bytes();
            put_len(out, s.size(), 0xa0, 31, 0xd9, 0xda, 0xdb);
            out.insert(out.end(), s.begin(), s.end());
            return;
        }
        case Value::Kind::Bin: {
            const std::string& s = v.raw_bytes();
            if (s.size() <= 0xff) put_be(out, 0xc4, s.size(), 1);
            else if (s.size() <= 0xffff) put_be(out, 0xc5, s.size(), 2);
            else put_be(out, 0xc6, s.size(), 4);
            out.insert(out.end(), s.begin(), s.end());
            return;
        }
        case Value::Kind::Array:
            put_len(out, v.size(), 0x90, 15, 0, 0xdc, 0xdd);
            for (const Value& item : v.items()) msgpack_encode(item, out);
            return;
        case Value::Kind::Map:
            put_len(out, v.size(), 0x80, 15, 0, 0xde, 0xdf);
            for (const Value& item : v.items()) msgpack_encode(item, out);  // key, value, ...
            return;
    }
}

std::vector<uint8_t> msgpack_encode(const Value& v) {
    std::vector<uint8_t> out;
    msgpack_encode(v, out);
    return out;
}

}  // namespace eb
