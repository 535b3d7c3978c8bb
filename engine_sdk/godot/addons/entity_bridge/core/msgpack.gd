class_name BridgeMsgPack
extends RefCounted
## MessagePack codec for the EEP/1 binary framing.
##
## Godot has no MessagePack ([method @GlobalScope.var_to_bytes] is Godot's own Variant
## format), so this is a small codec written for the protocol: it writes what the bridge
## writes ([code]msgpack.packb(value, use_bin_type=True)[/code]: smallest int form, float64,
## str8/16/32, bin8/16/32, maps in insertion order) and reads every MessagePack form except
## extension types, which EEP/1 refuses.
## [br][br]
## Bytes become [PackedByteArray] (sliced in one bulk copy, never byte by byte); strings,
## arrays and maps become [String], [Array] and [Dictionary]. Unsigned 64-bit values above
## the largest [int] decode to a [BridgeMsgPack.UInt64] so that they re-encode unchanged.
## [br][br]
## GDScript has no exceptions: [method decode] returns a [BridgeMsgPack.Result] whose
## [code]error[/code] is empty on success. Hostile input (truncated data, lengths that point
## past the end, nesting deeper than [constant MAX_DEPTH]) is refused before anything is
## allocated from its length prefix.

## Maps and arrays nested deeper than this are refused (the bridge's own limit).
const MAX_DEPTH := 64

static var _spare_reader: _Reader = null


## An unsigned 64-bit integer above 2^63-1, kept as its bit pattern.
class UInt64 extends RefCounted:
	## The 64 bits as Godot's signed [int] (negative for every value this class holds).
	var bits: int

	func _init(p_bits: int) -> void:
		bits = p_bits

	## The value as a decimal string, e.g. "18446744073709551615".
	func to_decimal() -> String:
		# Split into the high 32 and low 32 bits and do schoolbook division by 10.
		var hi: int = (bits >> 32) & 0xffffffff
		var lo: int = bits & 0xffffffff
		var digits := ""
		while hi != 0 or lo != 0:
			var rem_hi: int = hi % 10
			hi = hi / 10
			var mid: int = (rem_hi << 32) | lo
			lo = mid / 10
			digits = str(mid % 10) + digits
		return digits if digits != "" else "0"

	func _to_string() -> String:
		return to_decimal()


## The outcome of [method BridgeMsgPack.decode].
class Result extends RefCounted:
	## The decoded value (null when [member error] is set).
	var value: Variant = null
	## Empty on success; otherwise what was wrong and where.
	var error: String = ""
	## A short category: "truncated", "reserved", "ext", "depth", "length", "trailing", "utf8", "key".
	var category: String = ""

	func ok() -> bool:
		return error == ""


## Decodes one MessagePack value filling all of [param data]. Trailing bytes are an error
## ("trailing"), as in the bridge. With [param string_keys] every map key must be a string
## (EEP/1 frames; category "key").
static func decode(data: PackedByteArray, string_keys: bool = false) -> Result:
	# One reader reused for every frame: creating a GDScript object costs microseconds, more
	# than decoding a small event. Decoding is synchronous and single-threaded per call site
	# (the client polls on the main thread), so reuse is safe; a nested call gets its own.
	var reader: _Reader = _spare_reader if _spare_reader != null else _Reader.new(data)
	_spare_reader = null
	reader.reset(data)
	reader.string_keys = string_keys
	var result := Result.new()
	var value: Variant = reader.read(0)
	if reader.error == "" and reader.pos != data.size():
		reader.fail("trailing", "%d bytes of extra data after the value" % (data.size() - reader.pos))
	if reader.error != "":
		result.error = reader.error
		result.category = reader.category
	else:
		result.value = value
	reader.buf = PackedByteArray()  # do not keep the frame alive
	_spare_reader = reader
	return result


## Encodes [param value]; returns an empty array and sets nothing on failure, so callers that
## need the reason use [method encode_checked].
static func encode(value: Variant) -> PackedByteArray:
	var writer := _Writer.new()
	writer.write(value, 0)
	if writer.error != "":
		return PackedByteArray()
	return writer.out


## Encodes [param value]; returns [code][bytes, error][/code], error empty on success.
static func encode_checked(value: Variant) -> Array:
	var writer := _Writer.new()
	writer.write(value, 0)
	if writer.error != "":
		return [PackedByteArray(), writer.error]
	return [writer.out, ""]


class _Reader extends RefCounted:
	var buf: PackedByteArray
	var size: int
	var pos: int = 0
	var error: String = ""
	var category: String = ""
	var string_keys: bool = false

	func _init(data: PackedByteArray) -> void:
		reset(data)

	func reset(data: PackedByteArray) -> void:
		buf = data
		size = data.size()
		pos = 0
		error = ""
		category = ""
		string_keys = false

	func fail(p_category: String, message: String) -> void:
		if error == "":
			category = p_category
			error = "%s at byte %d" % [message, pos]

	func need(n: int) -> bool:
		if pos + n > size:
			fail("truncated" if n <= 9 else "length", "need %d bytes, %d left" % [n, size - pos])
			return false
		return true

	func be(n: int) -> int:
		# Big-endian unsigned read of 1, 2 or 4 bytes (caller checked the length).
		var v: int = 0
		for i in n:
			v = (v << 8) | buf[pos + i]
		pos += n
		return v

	func be64() -> int:
		var part := buf.slice(pos, pos + 8)
		part.reverse()
		pos += 8
		return part.decode_s64(0)

	func read(depth: int) -> Variant:
		if pos >= size:
			fail("truncated", "no data for a value")
			return null
		var b: int = buf[pos]
		pos += 1
		if b <= 0x7f:
			return b
		if b >= 0xe0:
			return b - 256
		if b >= 0xa0 and b <= 0xbf:
			return read_str(b & 0x1f)
		if b >= 0x90 and b <= 0x9f:
			return read_array(b & 0x0f, depth)
		if b >= 0x80 and b <= 0x8f:
			return read_map(b & 0x0f, depth)
		match b:
			0xc0:
				return null
			0xc2:
				return false
			0xc3:
				return true
			0xcc:
				return be(1) if need(1) else null
			0xcd:
				return be(2) if need(2) else null
			0xce:
				return be(4) if need(4) else null
			0xcf:
				if not need(8):
					return null
				var u: int = be64()
				return u if u >= 0 else UInt64.new(u)
			0xd0:
				if not need(1):
					return null
				var v8: int = be(1)
				return v8 - 0x100 if v8 >= 0x80 else v8
			0xd1:
				if not need(2):
					return null
				var v16: int = be(2)
				return v16 - 0x10000 if v16 >= 0x8000 else v16
			0xd2:
				if not need(4):
					return null
				var v32: int = be(4)
				return v32 - 0x100000000 if v32 >= 0x80000000 else v32
			0xd3:
				return be64() if need(8) else null
			0xca:
				if not need(4):
					return null
				var f32 := buf.slice(pos, pos + 4)
				f32.reverse()
				pos += 4
				return f32.decode_float(0)
			0xcb:
				if not need(8):
					return null
				var f64 := buf.slice(pos, pos + 8)
				f64.reverse()
				pos += 8
				return f64.decode_double(0)
			0xd9:
				return read_str(be(1)) if need(1) else null
			0xda:
				return read_str(be(2)) if need(2) else null
			0xdb:
				return read_str(be(4)) if need(4) else null
			0xc4:
				return read_bin(be(1)) if need(1) else null
			0xc5:
				return read_bin(be(2)) if need(2) else null
			0xc6:
				return read_bin(be(4)) if need(4) else null
			0xdc:
				return read_array(be(2), depth) if need(2) else null
			0xdd:
				return read_array(be(4), depth) if need(4) else null
			0xde:
				return read_map(be(2), depth) if need(2) else null
			0xdf:
				return read_map(be(4), depth) if need(4) else null
			0xc1:
				pos -= 1
				fail("reserved", "reserved byte 0xc1")
				return null
		# 0xc7-0xc9 ext 8/16/32, 0xd4-0xd8 fixext: EEP/1 refuses extension types.
		pos -= 1
		fail("ext", "MessagePack extension type 0x%02x is not allowed in EEP/1" % b)
		return null

	func read_str(n: int) -> Variant:
		if error != "" or not need(n):
			return null
		var raw := buf.slice(pos, pos + n)
		if raw.has(0):
			# Godot's String cannot hold U+0000: refuse rather than silently cut the text.
			fail("nul", "a string with U+0000 (Godot strings cannot hold it)")
			return null
		var s := raw.get_string_from_utf8()
		# Godot replaces invalid UTF-8 with U+FFFD (and logs it); the bridge refuses such a
		# frame, and so does this codec: only valid UTF-8 re-encodes to the same bytes.
		if s.to_utf8_buffer() != raw:
			fail("utf8", "invalid UTF-8 in a string of %d bytes" % n)
			return null
		pos += n
		return s

	func read_bin(n: int) -> Variant:
		if error != "" or not need(n):
			return null
		var b := buf.slice(pos, pos + n)
		pos += n
		return b

	func read_array(n: int, depth: int) -> Variant:
		if error != "":
			return null
		if depth >= MAX_DEPTH:
			fail("depth", "nesting deeper than %d" % MAX_DEPTH)
			return null
		# Every element takes at least one byte: refuse a count the data cannot hold before
		# allocating anything for it.
		if n > size - pos:
			fail("length", "array of %d items in %d bytes" % [n, size - pos])
			return null
		var out: Array = []
		out.resize(n)
		for i in n:
			out[i] = read(depth + 1)
			if error != "":
				return null
		return out

	func read_map(n: int, depth: int) -> Variant:
		if error != "":
			return null
		if depth >= MAX_DEPTH:
			fail("depth", "nesting deeper than %d" % MAX_DEPTH)
			return null
		if n * 2 > size - pos:
			fail("length", "map of %d pairs in %d bytes" % [n, size - pos])
			return null
		var out: Dictionary = {}
		for i in n:
			var key_at := pos
			var key: Variant = read(depth + 1)
			if error != "":
				return null
			if string_keys and not key is String:
				pos = key_at
				fail("key", "map key of type %s (EEP/1 keys are strings)" % type_string(typeof(key)))
				return null
			var value: Variant = read(depth + 1)
			if error != "":
				return null
			out[key] = value
		return out


class _Writer extends RefCounted:
	var out := PackedByteArray()
	var error: String = ""
	var _scratch := PackedByteArray()

	func _init() -> void:
		_scratch.resize(8)

	func put_be(v: int, n: int) -> void:
		var shift: int = (n - 1) * 8
		while shift >= 0:
			out.append((v >> shift) & 0xff)
			shift -= 8

	func put_be64(v: int) -> void:
		_scratch.encode_s64(0, v)
		_scratch.reverse()
		out.append_array(_scratch)
		_scratch.reverse()

	func write(value: Variant, depth: int) -> void:
		if error != "":
			return
		if depth > MAX_DEPTH:
			error = "nesting deeper than %d" % MAX_DEPTH
			return
		match typeof(value):
			TYPE_NIL:
				out.append(0xc0)
			TYPE_BOOL:
				out.append(0xc3 if value else 0xc2)
			TYPE_INT:
				write_int(value)
			TYPE_FLOAT:
				out.append(0xcb)
				_scratch.encode_double(0, value)
				_scratch.reverse()
				out.append_array(_scratch)
				_scratch.reverse()
			TYPE_STRING, TYPE_STRING_NAME:
				write_str(String(value).to_utf8_buffer())
			TYPE_PACKED_BYTE_ARRAY:
				write_bin(value)
			TYPE_ARRAY, TYPE_PACKED_INT32_ARRAY, TYPE_PACKED_INT64_ARRAY, TYPE_PACKED_FLOAT32_ARRAY, \
			TYPE_PACKED_FLOAT64_ARRAY, TYPE_PACKED_STRING_ARRAY:
				var n: int = value.size()
				if n <= 15:
					out.append(0x90 | n)
				elif n <= 0xffff:
					out.append(0xdc)
					put_be(n, 2)
				else:
					out.append(0xdd)
					put_be(n, 4)
				for item in value:
					write(item, depth + 1)
			TYPE_DICTIONARY:
				var d: Dictionary = value
				var m: int = d.size()
				if m <= 15:
					out.append(0x80 | m)
				elif m <= 0xffff:
					out.append(0xde)
					put_be(m, 2)
				else:
					out.append(0xdf)
					put_be(m, 4)
				for key in d:
					write(key, depth + 1)
					write(d[key], depth + 1)
			TYPE_OBJECT:
				if value is UInt64:
					out.append(0xcf)
					put_be64(value.bits)
				else:
					error = "cannot encode an Object (%s) as MessagePack" % str(value)
			_:
				error = "cannot encode a %s as MessagePack" % type_string(typeof(value))

	func write_int(v: int) -> void:
		if v >= 0:
			if v <= 0x7f:
				out.append(v)
			elif v <= 0xff:
				out.append(0xcc)
				out.append(v)
			elif v <= 0xffff:
				out.append(0xcd)
				put_be(v, 2)
			elif v <= 0xffffffff:
				out.append(0xce)
				put_be(v, 4)
			else:
				out.append(0xcf)
				put_be64(v)
		else:
			if v >= -32:
				out.append(v & 0xff)
			elif v >= -0x80:
				out.append(0xd0)
				out.append(v & 0xff)
			elif v >= -0x8000:
				out.append(0xd1)
				put_be(v & 0xffff, 2)
			elif v >= -0x80000000:
				out.append(0xd2)
				put_be(v & 0xffffffff, 4)
			else:
				out.append(0xd3)
				put_be64(v)

	func write_str(b: PackedByteArray) -> void:
		var n := b.size()
		if n <= 31:
			out.append(0xa0 | n)
		elif n <= 0xff:
			out.append(0xd9)
			out.append(n)
		elif n <= 0xffff:
			out.append(0xda)
			put_be(n, 2)
		else:
			out.append(0xdb)
			put_be(n, 4)
		out.append_array(b)

	func write_bin(b: PackedByteArray) -> void:
		var n := b.size()
		if n <= 0xff:
			out.append(0xc4)
			out.append(n)
		elif n <= 0xffff:
			out.append(0xc5)
			put_be(n, 2)
		else:
			out.append(0xc6)
			put_be(n, 4)
		out.append_array(b)
