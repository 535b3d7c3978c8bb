extends "res://tests/test_case.gd"
## The MessagePack codec on its own: canonical forms at every width boundary, round trips,
## and hostile input refused without a crash, a hang or a large allocation.

const MsgPack := preload("res://addons/entity_bridge/core/msgpack.gd")


func _hex(v: Variant) -> String:
	return MsgPack.encode(v).hex_encode()


func test_ints_use_the_smallest_form() -> void:
	var cases := {
		0: "00", 127: "7f", 128: "cc80", 255: "ccff", 256: "cd0100", 65535: "cdffff",
		65536: "ce00010000", 4294967295: "ceffffffff", 4294967296: "cf0000000100000000",
		9223372036854775807: "cf7fffffffffffffff", -1: "ff", -32: "e0", -33: "d0df",
		-128: "d080", -129: "d1ff7f", -32768: "d18000", -32769: "d2ffff7fff",
		-2147483648: "d280000000", -2147483649: "d3ffffffff7fffffff",
	}
	for value in cases:
		eq(_hex(value), cases[value], "encode %d" % value)
		var back := MsgPack.decode(String(cases[value]).hex_decode())
		eq(back.value, value, "decode %s" % cases[value])
	# int64 min has no literal in GDScript: build it.
	var int_min: int = -9223372036854775807 - 1
	eq(_hex(int_min), "d38000000000000000", "encode int64 min")


func test_uint64_above_int_range_survives_a_round_trip() -> void:
	var bytes := "cfffffffffffffffff".hex_decode()
	var r := MsgPack.decode(bytes)
	check(r.ok(), "decodes: " + r.error)
	check(r.value is MsgPack.UInt64, "kept as UInt64, not a wrapped negative int")
	eq(r.value.to_decimal(), "18446744073709551615", "decimal")
	eq(MsgPack.encode(r.value).hex_encode(), "cfffffffffffffffff", "re-encodes unchanged")
	var two63 := MsgPack.decode("cf8000000000000000".hex_decode())
	eq(two63.value.to_decimal(), "9223372036854775808", "2^63")


func test_floats_strings_bins_and_containers() -> void:
	eq(_hex(1.5), "cb3ff8000000000000", "float64")
	eq(_hex(-0.0), "cb8000000000000000", "negative zero")
	var f32 := MsgPack.decode("ca3fc00000".hex_decode())
	eq(f32.value, 1.5, "float32 decodes to the same double")
	eq(_hex(""), "a0", "empty fixstr")
	eq(_hex("a".repeat(31)).substr(0, 2), "bf", "fixstr 31")
	eq(_hex("a".repeat(32)).substr(0, 4), "d920", "str8")
	eq(_hex("a".repeat(256)).substr(0, 6), "da0100", "str16")
	eq(_hex("a".repeat(65536)).substr(0, 10), "db00010000", "str32")
	eq(_hex("é"), "a2c3a9", "utf-8")
	eq(_hex(PackedByteArray()), "c400", "empty bin8")
	var b300 := PackedByteArray()
	b300.resize(300)
	eq(_hex(b300).substr(0, 6), "c5012c", "bin16")
	eq(_hex([]), "90", "fixarray")
	var a16: Array = []
	a16.resize(16)
	eq(_hex(a16).substr(0, 6), "dc0010", "array16")
	eq(_hex({}), "80", "fixmap")
	var m16: Dictionary = {}
	for i in 16:
		m16["k%d" % i] = i
	eq(_hex(m16).substr(0, 6), "de0010", "map16")
	eq(_hex({"b": 1, "a": 2}), "82a16201a16102", "keys in insertion order, not sorted")
	eq(_hex(null), "c0", "nil")
	eq(_hex([true, false]), "92c3c2", "bools")


func test_round_trip_of_an_event() -> void:
	var audio := PackedByteArray()
	for i in 1920:
		audio.append(i % 256)
	var event := {"type": "ai.speech.audio", "id": "b1", "entity": "npc", "ref": "u1",
		"payload": {"speech": "sp-1", "seq": 3, "t": 120, "audio": audio,
			"visemes": [[0, "sil", 1.0], [12, "O", 0.7]], "volume": [0.0, 0.5]}}
	var bytes := MsgPack.encode(event)
	var r := MsgPack.decode(bytes)
	check(r.ok(), r.error)
	eq(r.value, event, "round trip")
	check(r.value["payload"]["audio"] is PackedByteArray, "bin stays bytes")
	eq(MsgPack.encode(r.value), bytes, "re-encodes byte-identically")


func test_objects_and_unsupported_values_are_refused_by_the_encoder() -> void:
	var out := MsgPack.encode_checked({"x": Vector2(1, 2)})
	eq(out[0].size(), 0, "no bytes")
	check(String(out[1]).contains("Vector2"), "error names the type: " + String(out[1]))
	eq(MsgPack.encode(RefCounted.new()).size(), 0, "an object is refused")


func test_malformed_input_is_refused_with_a_category() -> void:
	var cases := {
		"": "truncated", "cd01": "truncated", "a5616263": "truncated", "c1": "reserved",
		"d401ff": "ext", "c70101ff": "ext", "c7": "ext", "dbffffffff61": "length",
		"c6ffffffff": "length", "ddffffffff": "length", "dfffffffff": "length",
		"82a16101": "length", "82a16101a162": "truncated", "0001": "trailing", "a2c328": "utf8",
	}
	for hex in cases:
		var r := MsgPack.decode(String(hex).hex_decode())
		check(not r.ok(), "%s refused" % hex)
		eq(r.category, cases[hex], "category of %s (%s)" % [hex, r.error])


func test_nesting_is_capped_at_64_levels() -> void:
	var ok64 := PackedByteArray()
	for i in 63:
		ok64.append(0x91)
	ok64.append(0x90)
	check(MsgPack.decode(ok64).ok(), "64 nested arrays decode")
	var deep := PackedByteArray()
	for i in 100000:
		deep.append(0x91)
	deep.append(0x90)
	var t0 := Time.get_ticks_msec()
	var r := MsgPack.decode(deep)
	eq(r.category, "depth", "100000 levels refused: " + r.error)
	check(Time.get_ticks_msec() - t0 < 1000, "refused quickly")


func test_random_and_truncated_bytes_never_crash() -> void:
	var rng := RandomNumberGenerator.new()
	rng.seed = 1234
	var decoded := 0
	var refused := 0
	for i in 3000:
		var n := rng.randi_range(0, 40)
		var b := PackedByteArray()
		b.resize(n)
		for j in n:
			b[j] = rng.randi_range(0, 255)
		var r := MsgPack.decode(b)
		if r.ok():
			decoded += 1
		else:
			refused += 1
			check(r.error != "" and r.category != "", "an error says why")
	eq(decoded + refused, 3000, "every input answered")
	check(refused > 1000, "most random input is refused (%d)" % refused)
	var frame := MsgPack.encode({"type": "ai.text", "id": "b1", "entity": "n", "payload": {"delta": "hello", "n": [1, 2.5, PackedByteArray([1, 2])]}})
	for cut in frame.size():
		var r2 := MsgPack.decode(frame.slice(0, cut))
		check(not r2.ok(), "prefix of %d bytes refused" % cut)
