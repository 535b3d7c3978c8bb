// Event envelope and framing: see event.h.
#include "entitybridge/event.h"

#include "entitybridge/json.h"
#include "entitybridge/msgpack.h"

namespace eb {

bool is_binary_field(const std::string& type, const std::string& field) {
    return field == "audio" && (type == "stt.audio" || type == "stt.transcribe" || type == "ai.speech.audio");
}

Value Event::to_wire() const {
    Value wire = Value::map();
    wire.set("type", type);
    wire.set("id", id);
    if (!entity.empty()) wire.set("entity", entity);
    if (!status.empty() && status != "new") wire.set("status", status);
    if (!ref.empty()) wire.set("ref", ref);
    wire.set("payload", payload);
    return wire;
}

namespace {
bool optional_str(const Value& wire, const char* key, std::string& out, std::string* error) {
    const Value* v = wire.find(key);
    if (v == nullptr || v->is_nil()) return true;
    if (!v->is_str()) {
        if (error) *error = std::string("bad_event: '") + key + "' must be a string";
        return false;
    }
    out = v->as_str();
    return true;
}
}  // namespace

bool Event::from_wire(const Value& wire, Event& out, std::string* error) {
    if (!wire.is_map()) {
        if (error) *error = "bad_frame: a frame must hold one map";
        return false;
    }
    out = Event();
    const Value& type = wire.get("type");
    const Value& id = wire.get("id");
    if (!type.is_str() || type.as_str().empty()) {
        if (error) *error = "bad_event: no string 'type'";
        return false;
    }
    if (!id.is_str() || id.as_str().empty()) {
        if (error) *error = "bad_event: no string 'id'";
        return false;
    }
    out.type = type.as_str();
    out.id = id.as_str();
    if (!optional_str(wire, "entity", out.entity, error)) return false;
    if (!optional_str(wire, "ref", out.ref, error)) return false;
    if (!optional_str(wire, "status", out.status, error)) return false;
    if (out.status.empty()) out.status = "new";
    const Value& payload = wire.get("payload");
    if (!payload.is_nil() && !payload.is_map()) {
        if (error) *error = "bad_event: 'payload' must be a map or null";
        return false;
    }
    out.payload = payload;
    return true;
}

bool decode_frame(const uint8_t* data, size_t size, bool binary, Event& out, std::string* error) {
    Value wire;
    std::string why;
    const bool ok = binary ? msgpack_decode(data, size, wire, &why)
                           : json_decode(reinterpret_cast<const char*>(data), size, wire, &why);
    if (!ok) {
        if (error) *error = std::string("bad_frame: cannot decode ") + (binary ? "MessagePack" : "JSON") + " frame: " + why;
        return false;
    }
    if (!Event::from_wire(wire, out, error)) return false;
    if (!binary && out.payload.is_map()) {
        for (size_t i = 0; i < out.payload.size(); ++i) {
            const std::string& name = out.payload.key_at(i).as_str();
            if (!is_binary_field(out.type, name)) continue;
            Value* field = out.payload.find(name);
            if (field == nullptr || !field->is_str()) continue;
            std::string bytes;
            if (!base64_decode(field->as_str(), bytes)) {
                if (error) *error = "bad_event: payload." + name + " must be base64 text in JSON framing";
                return false;
            }
            *field = Value::bin(std::move(bytes));
        }
    }
    return true;
}

std::vector<uint8_t> encode_frame(const Event& event, Framing framing) {
    const Value wire = event.to_wire();
    if (framing == Framing::MsgPack) return msgpack_encode(wire);
    const std::string text = json_encode(wire);
    return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace eb
