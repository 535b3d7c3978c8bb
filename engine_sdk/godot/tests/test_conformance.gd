extends "res://tests/test_case.gd"
## The shared corpus tests/conformance/ (format in its README.md): every golden frame decodes
## to its typed value, canonical ones re-encode byte-identically, the JSON form decodes to the
## same event (ints as ints, audio as bytes), and every bad frame is refused cleanly.

const MsgPack := preload("res://addons/entity_bridge/core/msgpack.gd")
const Framing := preload("res://addons/entity_bridge/core/framing.gd")
const Typed := preload("res://tests/typed_tree.gd")


func _load(name: String) -> Array:
	var path := "%s/tests/conformance/%s" % [options.get("repo", ""), name]
	var text := FileAccess.get_file_as_string(path)
	if text == "":
		fail("cannot read %s (pass --repo)" % path)
		return []
	var data: Variant = JSON.parse_string(text)
	if not (data is Dictionary and data.get("frames") is Array):
		fail("%s has no frames list" % path)
		return []
	eq(int(data.get("version", 0)), 1, "%s version" % name)
	return data["frames"]


## A Godot String cannot hold U+0000, so a frame whose text has one is refused (category
## "nul") instead of being cut short silently. The corpus has one such codec case.
func _unrepresentable(r: MsgPack.Result) -> bool:
	return not r.ok() and r.category == "nul"


func test_golden_frames_decode_to_their_typed_values() -> void:
	var frames := _load("frames.json")
	check(frames.size() >= 100, "corpus has frames (%d)" % frames.size())
	var decoded := 0
	var nul := 0
	for f in frames:
		var r := MsgPack.decode(String(f["msgpack"]).hex_decode(), true)
		if _unrepresentable(r):
			nul += 1
			continue
		if not check(r.ok(), "%s: decode failed: %s" % [f["name"], r.error]):
			continue
		var got := Typed.of(r.value)
		if Typed.same(got, f["value"]):
			decoded += 1
		else:
			fail("%s: decoded %s, expected %s" % [f["name"], JSON.stringify(got).left(300), JSON.stringify(f["value"]).left(300)])
	eq(decoded + nul, frames.size(), "frames decoded to their values")
	check(nul <= 1, "only the one U+0000 codec case is out of Godot's reach (%d)" % nul)


func test_canonical_frames_re_encode_byte_identically() -> void:
	var frames := _load("frames.json")
	var canonical := 0
	for f in frames:
		# Built from the decoded frame: its floats are the exact doubles, which Godot's decimal
		# parser cannot always reproduce from the corpus text (see typed_tree.gd).
		var decoded := MsgPack.decode(String(f["msgpack"]).hex_decode())
		if _unrepresentable(decoded):
			continue
		var bytes := MsgPack.encode(decoded.value)
		if not f["msgpack"].contains("cb") and not f["msgpack"].contains("ca"):
			check(MsgPack.encode(Typed.build(f["value"])) == bytes, "%s: built from the typed tree, encodes the same" % f["name"])
		if f["canonical"]:
			canonical += 1
			check(bytes.hex_encode() == f["msgpack"], "%s: re-encoded %s, expected %s" % [f["name"], bytes.hex_encode().left(80), String(f["msgpack"]).left(80)])
		else:
			# Decode-only input (e.g. a small int sent as int64): our canonical bytes decode to
			# the same typed value.
			var back := MsgPack.decode(bytes)
			check(back.ok() and Typed.same(Typed.of(back.value), f["value"]), "%s: canonical re-encoding keeps the value" % f["name"])
	check(canonical > 100, "canonical frames checked (%d)" % canonical)


func test_json_framing_decodes_to_the_same_event() -> void:
	var frames := _load("frames.json")
	var checked := 0
	for f in frames:
		if not f.has("json"):
			continue
		checked += 1
		var from_json := Framing.decode(String(f["json"]))
		var from_msgpack := Framing.decode(String(f["msgpack"]).hex_decode())
		if not check(from_json.ok() and from_msgpack.ok(), "%s: %s%s" % [f["name"], from_json.error, from_msgpack.error]):
			continue
		var a := Typed.of(from_json.event)
		var b := Typed.of(from_msgpack.event)
		check(Typed.same(a, b, true) and _ints_are_ints(from_json.event), "%s: JSON gives %s, MessagePack %s" % [f["name"], str(a).left(400), str(b).left(400)])
	check(checked > 50, "JSON frames checked (%d)" % checked)


func test_our_json_encoding_round_trips() -> void:
	var frames := _load("frames.json")
	for f in frames:
		if not f.has("json"):
			continue
		var event := Framing.decode(String(f["msgpack"]).hex_decode()).event
		var text: Variant = Framing.encode(event, "json")
		var back := Framing.decode(text)
		check(back.ok() and Typed.same(Typed.of(back.event), Typed.of(event), true) and _ints_are_ints(back.event), "%s: our JSON text %s decodes back" % [f["name"], str(text).left(120)])


func test_bad_frames_are_refused_cleanly() -> void:
	var frames := _load("frames_bad.json")
	check(frames.size() > 50, "bad frames (%d)" % frames.size())
	var refused := 0
	for f in frames:
		var t0 := Time.get_ticks_msec()
		var r := Framing.decode(String(f["msgpack"]).hex_decode())
		var ms := Time.get_ticks_msec() - t0
		if check(not r.ok() and r.error != "", "%s (%s): was accepted as %s" % [f["name"], f["error"], str(r.event).left(100)]):
			refused += 1
		check(ms < 500, "%s refused in %d ms" % [f["name"], ms])
	eq(refused, frames.size(), "bad frames refused")


func test_int_fix_up_list_covers_every_integer_field_of_the_schemas() -> void:
	var dir := "%s/schemas/events" % options.get("repo", "")
	var files := DirAccess.get_files_at(dir)
	check(files.size() > 20, "schemas found in %s (%d)" % [dir, files.size()])
	var found: Dictionary = {}
	for name in files:
		if name.ends_with(".json"):
			_collect_int_fields(JSON.parse_string(FileAccess.get_file_as_string(dir + "/" + name)), "", found)
	check(found.size() > 5, "integer fields found (%d)" % found.size())
	for field in found:
		check(Framing.is_int_field(field), "integer field '%s' (%s) is fixed up after JSON parsing" % [field, found[field]])


func _collect_int_fields(schema: Variant, where: String, found: Dictionary) -> void:
	if schema is Dictionary:
		var props: Variant = schema.get("properties")
		if props is Dictionary:
			for key in props:
				var sub: Variant = props[key]
				var ty: Variant = sub.get("type") if sub is Dictionary else null
				if (ty is String and ty == "integer") or (ty is Array and "integer" in ty):
					found[key] = where
		for key in schema:
			_collect_int_fields(schema[key], where + "/" + str(key), found)
	elif schema is Array:
		for item in schema:
			_collect_int_fields(item, where, found)


## Every INT_FIELDS value in a decoded JSON event is an int (the fix-up worked).
func _ints_are_ints(value: Variant) -> bool:
	if value is Dictionary:
		for key in value:
			var v: Variant = value[key]
			if Framing.is_int_field(key) and (v is float):
				fail("JSON field %s is still a float (%s)" % [key, v])
				return false
			if not _ints_are_ints(v):
				return false
	elif value is Array:
		for item in value:
			if not _ints_are_ints(item):
				return false
	return true


func test_json_ints_come_back_as_ints_at_any_depth() -> void:
	var d := Framing.decode('{"type":"user.utterance","id":"u1","status":"success","payload":{"reply":"hi","timing":{"total_ms":120,"new_field_ms":7,"ratio":1.0},"visemes":[[40,"aa",1]]}}')
	check(d.ok(), d.error)
	var timing: Dictionary = d.event["payload"]["timing"]
	eq(timing["total_ms"], 120, "a nested *_ms field is an int")
	eq(timing["new_field_ms"], 7, "any *_ms field (times are integer ms)")
	eq(timing["ratio"], 1.0, "other numbers stay floats")
	eq(d.event["payload"]["visemes"][0][0], 40, "viseme keyframe times are ints")
