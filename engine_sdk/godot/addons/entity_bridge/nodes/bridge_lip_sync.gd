@icon("res://addons/entity_bridge/icons/lipsync.svg")
class_name BridgeLipSync
extends Node
## Moves a face with a [BridgeCharacter]'s speech: viseme keyframes and countenance, timed by
## the [BridgeVoice]'s playback clock, smoothed, applied to the blend shapes of a
## [MeshInstance3D] and/or the frame of a 2D mouth [AnimatedSprite2D] through a
## [BridgeLipSyncMapping].

@export var character_path: NodePath = NodePath("..")
## The BridgeVoice / BridgeVoice3D whose clock times the mouth.
@export var voice_path: NodePath
@export var mesh_path: NodePath
@export var sprite_path: NodePath
@export var mapping: BridgeLipSyncMapping
@export var smoothing_s: float = 0.04

var driver := BridgeLipSyncDriver.new()
var _voice: Node
var _mesh: MeshInstance3D
var _sprite: AnimatedSprite2D


func _ready() -> void:
	if mapping == null:
		mapping = BridgeLipSyncMapping.new()
	driver.smoothing_s = smoothing_s
	var character := get_node_or_null(character_path)
	if character != null and character.get("entity") != null:
		driver.attach(character.entity)
	_voice = get_node_or_null(voice_path)
	_mesh = get_node_or_null(mesh_path) as MeshInstance3D
	_sprite = get_node_or_null(sprite_path) as AnimatedSprite2D


func _process(delta: float) -> void:
	var speech := ""
	var t := 0
	if _voice != null and _voice.get("speech") != null:
		speech = _voice.speech.current_speech()
		t = _voice.speech.played_ms(speech) if speech != "" else 0
	driver.update(delta, speech, t)
	if _mesh != null:
		driver.apply_to_mesh(_mesh, mapping)
	if _sprite != null:
		driver.apply_to_sprite(_sprite, mapping)
