class_name BridgeLipSyncDriver
extends RefCounted
## Turns the bridge's viseme keyframes and countenance into smoothed weights, and applies them
## to a [MeshInstance3D]'s blend shapes or a 2D mouth [AnimatedSprite2D].
##
## A keyframe [code][t, name, weight][/code] sets viseme [code]name[/code] to
## [code]weight[/code] from [code]t[/code] ms of its segment until the next keyframe (the others
## go to 0). [method weights_at] gives those target weights at a time; [method update] moves the
## current weights toward them with a time constant of [member smoothing_s], so mouths do not
## snap. Time comes from the speech player's clock of the segment being heard.

const _Mapping := preload("res://addons/entity_bridge/core/lip_sync_mapping.gd")

## Time constant of the exponential approach toward the targets (0 = snap).
var smoothing_s: float = 0.04
## Current weights, viseme -> 0..1, and emotion -> 0..1.
var visemes: Dictionary = {}
var emotions: Dictionary = {}
var _tracks: Dictionary = {}  # speech -> Array of [t, name, weight], sorted by t
var _emotion_target: Dictionary = {}
var _scheduled: Array = []  # countenance tied to a point of a segment: [speech, t, emotion, intensity, expression]
var expression: String = ""


func _init() -> void:
	for v in _Mapping.VISEMES:
		visemes[v] = 0.0
	for e in _Mapping.EMOTIONS:
		emotions[e] = 0.0
		_emotion_target[e] = 0.0


## Follows a [BridgeEntity]'s visemes and countenance.
func attach(entity: RefCounted) -> void:
	entity.visemes.connect(add_keyframes)
	entity.countenance.connect(func(emotion: String, intensity: float, expr: String, speech: String, t: int) -> void:
		if speech != "" and t >= 0:
			_scheduled.append([speech, t, emotion, intensity, expr])
		else:
			set_emotion(emotion, intensity, expr))


func add_keyframes(speech: String, _chunk_t: int, keyframes: Array) -> void:
	var track: Array = _tracks.get(speech, [])
	for k in keyframes:
		if k is Array and k.size() >= 3 and (k[0] is int or k[0] is float) and k[1] is String and visemes.has(k[1]):
			track.append([int(k[0]), String(k[1]), clampf(float(k[2]), 0.0, 1.0)])
	track.sort_custom(func(a: Array, b: Array) -> bool: return a[0] < b[0])
	_tracks[speech] = track


func forget(speech: String) -> void:
	_tracks.erase(speech)


## Target viseme weights at [param t_ms] of a segment (all 0 but the active keyframe's viseme;
## "sil" at 1 before the first keyframe and for unknown segments).
func weights_at(speech: String, t_ms: int) -> Dictionary:
	var out: Dictionary = {}
	for v in _Mapping.VISEMES:
		out[v] = 0.0
	var track: Array = _tracks.get(speech, [])
	var active: Array = []
	# Binary search for the last keyframe at or before t.
	var lo := 0
	var hi := track.size() - 1
	while lo <= hi:
		var mid := (lo + hi) >> 1
		if track[mid][0] <= t_ms:
			active = track[mid]
			lo = mid + 1
		else:
			hi = mid - 1
	if active.is_empty():
		out["sil"] = 1.0
	else:
		out[active[1]] = active[2]
	return out


func set_emotion(emotion: String, intensity: float, expr: String = "") -> void:
	for e in _emotion_target:
		_emotion_target[e] = 0.0
	if _emotion_target.has(emotion) and emotion != "neutral":
		_emotion_target[emotion] = clampf(intensity, 0.0, 1.0)
	expression = expr


## Advances the smoothing by [param delta_s] toward the targets at the playback time
## [param t_ms] of [param speech] ("" = silent: the mouth closes).
func update(delta_s: float, speech: String, t_ms: int) -> void:
	var target: Dictionary = weights_at(speech, t_ms) if speech != "" else {"sil": 1.0}
	for i in range(_scheduled.size() - 1, -1, -1):
		var s: Array = _scheduled[i]
		if s[0] == speech and t_ms >= s[1]:
			set_emotion(s[2], s[3], s[4])
			_scheduled.remove_at(i)
	var a: float = 1.0 if smoothing_s <= 0.0 else 1.0 - exp(-delta_s / smoothing_s)
	for v in visemes:
		visemes[v] += (float(target.get(v, 0.0)) - visemes[v]) * a
	for e in emotions:
		emotions[e] += (_emotion_target[e] - emotions[e]) * a


## The viseme with the largest current weight.
func dominant_viseme() -> String:
	var best := "sil"
	var w := -1.0
	for v in visemes:
		if visemes[v] > w:
			w = visemes[v]
			best = v
	return best


## Writes the current weights to a MeshInstance3D's blend shapes named by [param mapping].
## Returns how many shapes were set.
func apply_to_mesh(mesh: MeshInstance3D, mapping: Resource) -> int:
	# Several names may share a shape (an expression preset, a rig's merged shapes): the
	# largest weight wins, so a 0 written later cannot hide it.
	var shapes: Dictionary = {}
	for v in visemes:
		_add_weight(shapes, str(mapping.viseme_shapes.get(v, "")), visemes[v])
	for e in emotions:
		var shape := str(mapping.emotion_shapes.get(e, ""))
		if expression != "" and mapping.expression_shapes.has(expression) and _emotion_target.get(e, 0.0) > 0.0:
			shape = str(mapping.expression_shapes[expression])
		_add_weight(shapes, shape, emotions[e])
	var n := 0
	for shape in shapes:
		n += _set_shape(mesh, shape, shapes[shape])
	return n


static func _add_weight(shapes: Dictionary, shape: String, weight: float) -> void:
	if shape != "":
		shapes[shape] = maxf(float(shapes.get(shape, 0.0)), weight)


## Shows the frame of the dominant viseme on a 2D mouth. Returns the frame index.
func apply_to_sprite(sprite: AnimatedSprite2D, mapping: Resource) -> int:
	var frame := int(mapping.sprite_frames.get(dominant_viseme(), 0))
	sprite.frame = frame
	return frame


func _set_shape(mesh: MeshInstance3D, shape: String, weight: float) -> int:
	if shape == "":
		return 0
	var idx := mesh.find_blend_shape_by_name(shape)
	if idx < 0:
		return 0
	mesh.set_blend_shape_value(idx, weight)
	return 1
