class_name BridgeFraming
extends RefCounted
## Turns EEP/1 events ([Dictionary]) into WebSocket messages and back, in either framing.
##
## [b]msgpack[/b] (binary messages, the default): [BridgeMsgPack]; audio stays
## [PackedByteArray] end to end.
## [br][b]json[/b] (text messages, for debugging): Godot's [JSON] parser returns every number
## as a [float], so after parsing, the fields that the protocol defines as integers are cast
## back to [int] (see [constant INT_FIELDS], which the tests check against every integer
## field in [code]schemas/events/[/code]); the binary fields ([constant BINARY_FIELDS]) are
## base64 on the wire and [PackedByteArray] here, as in the msgpack framing.

const _MsgPack := preload("res://addons/entity_bridge/core/msgpack.gd")

## Payload fields that carry bytes (base64 strings in the JSON framing).
const BINARY_FIELDS: Array[String] = ["audio"]

## Every payload field that the schemas define as an integer. A JSON number under one of
## these keys, at any depth of a payload, comes back as [int] when it is a whole number.
const INT_FIELDS: Dictionary = {
	"protocol": true, "seq": true, "t": true, "duration_ms": true, "played_ms": true,
	"sample_rate": true, "chunk_ms": true, "lead_ms": true, "max_frame_bytes": true,
	"max_text_chars": true, "max_entities": true, "events_per_second": true,
	"event_burst": true, "start_ms": true, "end_ms": true, "at": true, "cleared": true,
	"limit": true, "turns": true, "before": true, "ahead": true,
}

## True for a field the protocol defines as an integer: one of [constant INT_FIELDS], or any
## key ending in "_ms" ("times and durations are integer milliseconds", docs/protocol.md), so
## timing fields added later come back as ints too.
static func is_int_field(key: Variant) -> bool:
	return key is String and (INT_FIELDS.has(key) or (key as String).ends_with("_ms"))


## The outcome of a decode: the event, or an error (code "bad_frame" and a message).
class Decoded extends RefCounted:
	var event: Dictionary = {}
	var error: String = ""
	## Why it was refused: the codec's category, "json", "not_map" or "base64".
	var category: String = ""

	func ok() -> bool:
		return error == ""


## Encodes one event. Returns a [PackedByteArray] (msgpack) or a [String] (json); an empty
## PackedByteArray when the event holds something that cannot be sent.
static func encode(event: Dictionary, framing: String) -> Variant:
	if framing == "json":
		return JSON.stringify(_to_json_value(event), "", false, true)
	return _MsgPack.encode(event)


## Decodes one received message (PackedByteArray = binary, String = text).
static func decode(message: Variant) -> Decoded:
	var out := Decoded.new()
	var value: Variant
	if message is PackedByteArray:
		var result: _MsgPack.Result = _MsgPack.decode(message, true)
		if not result.ok():
			out.error = "cannot decode MessagePack frame: " + result.error
			out.category = result.category
			return out
		value = result.value
	elif message is String:
		var json := JSON.new()
		if json.parse(message) != OK:
			out.error = "cannot decode JSON frame: %s (line %d)" % [json.get_error_message(), json.get_error_line()]
			out.category = "json"
			return out
		value = json.data
		if value is Dictionary:
			var err := _fix_json_event(value)
			if err != "":
				out.error = err
				out.category = "base64"
				return out
	else:
		out.error = "a frame is a PackedByteArray or a String, not %s" % type_string(typeof(message))
		return out
	if not value is Dictionary:
		out.error = "a frame holds a map, not %s" % type_string(typeof(value))
		out.category = "not_map"
		return out
	out.event = value
	return out


## Restores ints and bytes in a parsed JSON event (in place). Returns an error message or "".
static func _fix_json_event(event: Dictionary) -> String:
	var payload: Variant = event.get("payload")
	if not payload is Dictionary:
		return ""
	_fix_ints(payload, 0)
	for name in BINARY_FIELDS:
		var v: Variant = payload.get(name)
		if v is String:
			var raw := Marshalls.base64_to_raw(v)
			if raw.is_empty() and not (v as String).is_empty():
				return "field payload.%s is not valid base64" % name
			payload[name] = raw
	return ""


static func _fix_ints(value: Variant, depth: int) -> void:
	if depth > 64:
		return
	if value is Dictionary:
		for key in value:
			var item: Variant = value[key]
			if item is float and is_int_field(key) and is_finite(item) and item == floorf(item):
				value[key] = int(item)
			elif key == "visemes" and item is Array:
				for frame in item:
					# Viseme keyframes are [t, name, weight]: t is integer milliseconds.
					if frame is Array and frame.size() > 0 and frame[0] is float and frame[0] == floorf(frame[0]):
						frame[0] = int(frame[0])
			elif item is Dictionary or item is Array:
				_fix_ints(item, depth + 1)
	elif value is Array:
		for item in value:
			if item is Dictionary or item is Array:
				_fix_ints(item, depth + 1)


static func _to_json_value(value: Variant) -> Variant:
	if value is PackedByteArray:
		return Marshalls.raw_to_base64(value)
	if value is Dictionary:
		var out: Dictionary = {}
		for key in value:
			out[key] = _to_json_value(value[key])
		return out
	if value is Array:
		var arr: Array = []
		for item in value:
			arr.append(_to_json_value(item))
		return arr
	return value
