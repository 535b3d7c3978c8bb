extends RefCounted
## The conformance corpus's typed trees (tests/conformance/README.md) <-> Godot values.

const _MsgPack := preload("res://addons/entity_bridge/core/msgpack.gd")


## The typed tree of a decoded value, e.g. 5 -> ["int", "5"].
static func of(value: Variant) -> Array:
	match typeof(value):
		TYPE_NIL:
			return ["nil"]
		TYPE_BOOL:
			return ["bool", value]
		TYPE_INT:
			return ["int", str(value)]
		TYPE_FLOAT:
			return ["float", value]
		TYPE_STRING:
			return ["str", value]
		TYPE_PACKED_BYTE_ARRAY:
			return ["bin", (value as PackedByteArray).hex_encode()]
		TYPE_ARRAY:
			var items: Array = []
			for item in value:
				items.append(of(item))
			return ["array", items]
		TYPE_DICTIONARY:
			var pairs: Array = []
			for key in value:
				pairs.append([of(key), of(value[key])])
			return ["map", pairs]
		TYPE_OBJECT:
			if value is _MsgPack.UInt64:
				return ["int", value.to_decimal()]
	return ["unsupported", type_string(typeof(value))]


## The Godot value a typed tree describes (ints above 2^63-1 as BridgeMsgPack.UInt64).
static func build(tree: Array) -> Variant:
	var kind: String = tree[0]
	match kind:
		"nil":
			return null
		"bool":
			return bool(tree[1])
		"int":
			return parse_int(String(tree[1]))
		"float":
			return float(tree[1])
		"str":
			return String(tree[1])
		"bin":
			return String(tree[1]).hex_decode()
		"array":
			var items: Array = []
			for item in tree[1]:
				items.append(build(item))
			return items
		"map":
			var out: Dictionary = {}
			for pair in tree[1]:
				out[build(pair[0])] = build(pair[1])
			return out
	push_error("unknown typed tree kind " + kind)
	return null


## Decimal string -> int, or UInt64 above the int range (String.to_int clamps those).
static func parse_int(text: String) -> Variant:
	var negative := text.begins_with("-")
	var digits := text.substr(1) if negative else text
	var value: int = 0
	for ch in digits:
		value = value * 10 + (ch.unicode_at(0) - 48)  # wraps past 2^63: the uint64 bit pattern
	if negative:
		return -value
	if value < 0 or (digits.length() >= 19 and value < 0):
		return _MsgPack.UInt64.new(value)
	return value


## Typed trees compared exactly (kinds, values, order). Floats compare by value; where the
## corpus's decimal text is beyond what Godot's number parser reads exactly (it flushes values
## near 2.2e-308 to zero and can be one ulp off near 3.4e38), within 1e-15 relative, or both
## below 1e-300 with the same sign. [param loose_numbers] also lets an int equal a float of
## the same value (the JSON framing cannot tell them apart outside the integer fields).
static func same(a: Variant, b: Variant, loose_numbers: bool = false) -> bool:
	if loose_numbers and a is Array and b is Array and a.size() == 2 and b.size() == 2 \
			and a[0] in ["int", "float"] and b[0] in ["int", "float"] and a[0] != b[0]:
		return _num(a) == _num(b)
	if typeof(a) != typeof(b):
		return false
	if a is Array:
		if a.size() != b.size():
			return false
		if a.size() == 2 and a[0] is String and a[0] == "float" and b[0] is String and b[0] == "float":
			return same_float(float(a[1]), float(b[1]))
		for i in a.size():
			if not same(a[i], b[i], loose_numbers):
				return false
		return true
	return a == b


static func _num(t: Array) -> float:
	return float(String(t[1]).to_int()) if t[0] == "int" else float(t[1])


static func same_float(x: float, y: float) -> bool:
	if x == y:
		return true
	if is_nan(x) and is_nan(y):
		return true
	if absf(x) < 1e-300 and absf(y) < 1e-300 and signf(x) * signf(y) >= 0.0:
		return true
	return absf(x - y) <= 1e-15 * maxf(absf(x), absf(y))
