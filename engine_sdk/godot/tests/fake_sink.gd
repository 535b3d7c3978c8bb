extends RefCounted
## Stands in for AudioStreamGeneratorPlayback in tests: same methods the speech player uses,
## plus consume(n), which plays n frames the way the audio mixer would, and a record of
## everything played so it can be read back.

var capacity: int
var buffer := PackedVector2Array()
var heard := PackedVector2Array()
var skips: int = 0


func _init(p_capacity: int) -> void:
	capacity = p_capacity


func get_frames_available() -> int:
	return capacity - buffer.size()


func push_buffer(frames: PackedVector2Array) -> bool:
	if frames.size() > get_frames_available():
		return false
	buffer.append_array(frames)
	return true


func clear_buffer() -> void:
	buffer = PackedVector2Array()


func get_skips() -> int:
	return skips


## The mixer pulls n frames.
func consume(n: int) -> void:
	var take := mini(n, buffer.size())
	heard.append_array(buffer.slice(0, take))
	buffer = buffer.slice(take)
	if take < n:
		skips += 1
