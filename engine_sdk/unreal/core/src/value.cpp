// Value: see value.h.
#include "entitybridge/value.h"

#include <limits>

namespace eb {

const Value& nil_value() {
    static const Value nil;
    return nil;
}

namespace {
const std::string& empty_string() {
    static const std::string empty;
    return empty;
}
}  // namespace

Value::Value(unsigned long long v) {
    if (v <= static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
        kind_ = Kind::Int;
        scalar_.i = static_cast<int64_t>(v);
    } else {
        kind_ = Kind::UInt;
        scalar_.u = static_cast<uint64_t>(v);
    }
}

Value Value::bin(std::string bytes) {
    Value v;
    v.kind_ = Kind::Bin;
    v.str_ = std::move(bytes);
    return v;
}

Value Value::bin(const uint8_t* data, size_t size) {
    return bin(std::string(reinterpret_cast<const char*>(data), size));
}

Value Value::array(std::vector<Value> items) {
    Value v;
    v.kind_ = Kind::Array;
    v.items_ = std::move(items);
    return v;
}

Value Value::map() {
    Value v;
    v.kind_ = Kind::Map;
    return v;
}

int64_t Value::as_int(int64_t fallback) const {
    switch (kind_) {
        case Kind::Int: return scalar_.i;
        case Kind::UInt: return fallback;  // does not fit
        default: return fallback;
    }
}

uint64_t Value::as_uint(uint64_t fallback) const {
    switch (kind_) {
        case Kind::Int: return scalar_.i >= 0 ? static_cast<uint64_t>(scalar_.i) : fallback;
        case Kind::UInt: return scalar_.u;
        default: return fallback;
    }
}

double Value::as_double(double fallback) const {
    switch (kind_) {
        case Kind::Int: return static_cast<double>(scalar_.i);
        case Kind::UInt: return static_cast<double>(scalar_.u);
        case Kind::Float: return scalar_.f;
        default: return fallback;
    }
}

const std::string& Value::as_str() const { return kind_ == Kind::Str ? str_ : empty_string(); }
const std::string& Value::as_bin() const { return kind_ == Kind::Bin ? str_ : empty_string(); }

size_t Value::size() const {
    if (kind_ == Kind::Array) return items_.size();
    if (kind_ == Kind::Map) return items_.size() / 2;
    return 0;
}

const Value& Value::at(size_t i) const {
    return (kind_ == Kind::Array && i < items_.size()) ? items_[i] : nil_value();
}

Value& Value::push(Value v) {
    if (kind_ == Kind::Nil) kind_ = Kind::Array;
    items_.push_back(std::move(v));
    return items_.back();
}

const Value& Value::key_at(size_t i) const {
    return (kind_ == Kind::Map && 2 * i < items_.size()) ? items_[2 * i] : nil_value();
}

const Value& Value::value_at(size_t i) const {
    return (kind_ == Kind::Map && 2 * i + 1 < items_.size()) ? items_[2 * i + 1] : nil_value();
}

const Value* Value::find(const std::string& key) const {
    if (kind_ != Kind::Map) return nullptr;
    for (size_t i = 0; i + 1 < items_.size(); i += 2) {
        if (items_[i].kind_ == Kind::Str && items_[i].str_ == key) return &items_[i + 1];
    }
    return nullptr;
}

Value* Value::find(const std::string& key) {
    return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

const Value& Value::get(const std::string& key) const {
    const Value* v = find(key);
    return v ? *v : nil_value();
}

Value& Value::set(const std::string& key, Value v) {
    if (kind_ == Kind::Nil) kind_ = Kind::Map;
    if (Value* existing = find(key)) {
        *existing = std::move(v);
        return *existing;
    }
    return append_pair(Value(key), std::move(v));
}

Value& Value::append_pair(Value key, Value v) {
    if (kind_ == Kind::Nil) kind_ = Kind::Map;
    items_.push_back(std::move(key));
    items_.push_back(std::move(v));
    return items_.back();
}

bool Value::erase(const std::string& key) {
    if (kind_ != Kind::Map) return false;
    for (size_t i = 0; i + 1 < items_.size(); i += 2) {
        if (items_[i].kind_ == Kind::Str && items_[i].str_ == key) {
            items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(i),
                         items_.begin() + static_cast<std::ptrdiff_t>(i + 2));
            return true;
        }
    }
    return false;
}

std::string Value::str_or(const std::string& key, const std::string& fallback) const {
    const Value* v = find(key);
    return (v && v->is_str()) ? v->str_ : fallback;
}

bool Value::operator==(const Value& other) const {
    if (kind_ != other.kind_) return false;
    switch (kind_) {
        case Kind::Nil: return true;
        case Kind::Bool: return scalar_.b == other.scalar_.b;
        case Kind::Int: return scalar_.i == other.scalar_.i;
        case Kind::UInt: return scalar_.u == other.scalar_.u;
        case Kind::Float: return scalar_.f == other.scalar_.f || (scalar_.f != scalar_.f && other.scalar_.f != other.scalar_.f);
        case Kind::Str:
        case Kind::Bin: return str_ == other.str_;
        case Kind::Array:
        case Kind::Map: return items_ == other.items_;
    }
    return false;
}

}  // namespace eb
