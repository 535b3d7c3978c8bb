// A small variant value: what one EEP/1 frame holds once decoded.
//
// The core never throws and needs no RTTI (it is compiled as module source inside Unreal,
// which builds without exceptions), so this is a tagged struct rather than std::variant
// (whose std::get throws). Maps keep their pairs in wire order, because the canonical
// encoding writes keys in insertion order; they are stored flat in `items_` as
// key, value, key, value... so a Value stays one allocation-light type.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace eb {

class Value {
public:
    enum class Kind : uint8_t { Nil, Bool, Int, UInt, Float, Str, Bin, Array, Map };

    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool b) : kind_(Kind::Bool) { scalar_.b = b; }
    Value(int v) : Value(static_cast<long long>(v)) {}
    Value(long v) : Value(static_cast<long long>(v)) {}
    Value(long long v) : kind_(Kind::Int) { scalar_.i = static_cast<int64_t>(v); }
    Value(unsigned v) : Value(static_cast<unsigned long long>(v)) {}
    Value(unsigned long v) : Value(static_cast<unsigned long long>(v)) {}
    Value(unsigned long long v);
    Value(double v) : kind_(Kind::Float) { scalar_.f = v; }
    Value(const char* s) : kind_(Kind::Str), str_(s ? s : "") {}
    Value(std::string s) : kind_(Kind::Str), str_(std::move(s)) {}

    static Value bin(std::string bytes);
    static Value bin(const uint8_t* data, size_t size);
    static Value array(std::vector<Value> items = {});
    static Value map();

    Kind kind() const { return kind_; }
    bool is_nil() const { return kind_ == Kind::Nil; }
    bool is_bool() const { return kind_ == Kind::Bool; }
    bool is_int() const { return kind_ == Kind::Int || kind_ == Kind::UInt; }
    bool is_float() const { return kind_ == Kind::Float; }
    bool is_number() const { return is_int() || is_float(); }
    bool is_str() const { return kind_ == Kind::Str; }
    bool is_bin() const { return kind_ == Kind::Bin; }
    bool is_array() const { return kind_ == Kind::Array; }
    bool is_map() const { return kind_ == Kind::Map; }

    // Accessors return the fallback when the kind does not match: callers reading an
    // event from a peer never crash on a field of the wrong type.
    bool as_bool(bool fallback = false) const { return kind_ == Kind::Bool ? scalar_.b : fallback; }
    int64_t as_int(int64_t fallback = 0) const;
    uint64_t as_uint(uint64_t fallback = 0) const;
    double as_double(double fallback = 0.0) const;
    const std::string& as_str() const;  // "" unless Str
    const std::string& as_bin() const;  // "" unless Bin
    // Str or Bin bytes, for the codec.
    const std::string& raw_bytes() const { return str_; }
    bool uint_is_big() const { return kind_ == Kind::UInt; }

    // Arrays.
    size_t size() const;  // array items or map pairs
    const Value& at(size_t i) const;  // nil Value when out of range / not an array
    Value& push(Value v);  // turns a Nil into an Array first
    const std::vector<Value>& items() const { return items_; }

    // Maps (pairs in insertion order).
    const Value& key_at(size_t i) const;
    const Value& value_at(size_t i) const;
    const Value* find(const std::string& key) const;  // nullptr when absent
    Value* find(const std::string& key);
    const Value& get(const std::string& key) const;  // nil Value when absent
    Value& set(const std::string& key, Value v);  // replaces or appends; turns Nil into Map
    Value& append_pair(Value key, Value v);  // wire-order append (the decoder's path)
    bool erase(const std::string& key);

    // String shortcuts for event fields.
    std::string str_or(const std::string& key, const std::string& fallback = "") const;

    bool operator==(const Value& other) const;
    bool operator!=(const Value& other) const { return !(*this == other); }

    // Reserve room for n items (arrays) or n pairs (maps); the decoder calls it only with
    // counts already checked against the remaining input.
    void reserve(size_t n) { items_.reserve(kind_ == Kind::Map ? 2 * n : n); }

private:
    Kind kind_ = Kind::Nil;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
    } scalar_{};
    std::string str_;
    std::vector<Value> items_;
};

const Value& nil_value();

}  // namespace eb
