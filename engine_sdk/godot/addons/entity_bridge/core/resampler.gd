class_name BridgeResampler
extends RefCounted
## Streaming PCM s16le mono -> stereo float frames at another rate (linear interpolation).
##
## Keeps its fractional position and the last sample between chunks, so 40 ms chunks join
## without clicks, and the output length over a whole segment is input * out/in (to within a
## frame). PackedByteArray has no bulk s16 -> float conversion, so one loop does decoding,
## interpolation and stereo duplication together, writing into a preallocated array.

var in_rate: int
var out_rate: int
var _step: float
var _pos: float = 0.0  # next output position, in input samples from the current chunk's start
var _prev: float = 0.0  # last input sample of the previous chunk (position -1)


func _init(p_in_rate: int, p_out_rate: int) -> void:
	in_rate = p_in_rate
	out_rate = p_out_rate
	_step = float(in_rate) / float(out_rate)


## Forgets the position and history (a new segment).
func reset() -> void:
	_pos = 0.0
	_prev = 0.0


## The frames still owed at the end of a segment (the positions between its last sample and
## where the next chunk would have started), holding the last sample. Resets the state.
func finish() -> PackedVector2Array:
	var out := PackedVector2Array()
	if _pos < 0.0:
		var count := int(ceil(-_pos / _step - 1e-9))
		out.resize(count)
		out.fill(Vector2(_prev, _prev))
	reset()
	return out


## Converts one chunk; returns the frames it completes.
func process(pcm: PackedByteArray) -> PackedVector2Array:
	var n: int = pcm.size() >> 1
	var out := PackedVector2Array()
	if n == 0:
		return out
	if in_rate == out_rate:
		out.resize(n)
		for i in n:
			var v: float = pcm.decode_s16(i << 1) / 32768.0
			out[i] = Vector2(v, v)
		_prev = pcm.decode_s16((n - 1) << 1) / 32768.0
		return out
	var last: float = float(n - 1)
	var count: int = 0 if _pos > last else int(floor((last - _pos) / _step)) + 1
	out.resize(count)
	var p: float = _pos
	var prev: float = _prev
	for k in count:
		var i: int = int(floor(p))
		var frac: float = p - i
		var a: float = prev if i < 0 else pcm.decode_s16(i << 1) / 32768.0
		var b: float = pcm.decode_s16((i + 1) << 1) / 32768.0 if i + 1 < n else a
		var v: float = a + (b - a) * frac
		out[k] = Vector2(v, v)
		p += _step
	_pos = p - n
	_prev = pcm.decode_s16((n - 1) << 1) / 32768.0
	return out
