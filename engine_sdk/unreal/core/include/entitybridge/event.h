// One EEP/1 event (the envelope plus its payload) and its two framings.
//
// Only the fields the schemas mark as binary are bytes (`audio` of stt.audio, stt.transcribe
// and ai.speech.audio): in MessagePack they are `bin`, in JSON base64 text, and decoding a
// JSON frame turns exactly those back into bytes, so a text field that looks like base64 is
// never mangled (the bridge's rule, bridge/protocol/codec.py).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "entitybridge/value.h"

namespace eb {

enum class Framing : uint8_t { MsgPack, Json };

struct Event {
    std::string type;
    std::string id;
    std::string entity;  // "" = absent (the protocol requires 1..128 characters when present)
    std::string status = "new";
    std::string ref;  // "" = absent
    Value payload;  // Nil = null

    bool is_final() const { return status == "success" || status == "error"; }
    bool is_error() const { return status == "error"; }
    // The {code, message} of an error reply or an `error` event; "" when absent.
    std::string error_code() const { return payload.str_or("code"); }
    std::string error_message() const { return payload.str_or("message"); }

    Value to_wire() const;
    // False (with a reason) when the map has no string `type` or `id`, or mistyped fields.
    static bool from_wire(const Value& wire, Event& out, std::string* error = nullptr);
};

// True when payload field `field` of events of `type` is bytes (`audio` of the three types).
bool is_binary_field(const std::string& type, const std::string& field);

// A whole frame: `binary` says which WebSocket message kind carried it.
bool decode_frame(const uint8_t* data, size_t size, bool binary, Event& out, std::string* error = nullptr);
// MessagePack bytes, or JSON text (as bytes) for Framing::Json.
std::vector<uint8_t> encode_frame(const Event& event, Framing framing);

}  // namespace eb
