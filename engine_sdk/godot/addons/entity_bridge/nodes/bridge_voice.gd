@icon("res://addons/entity_bridge/icons/voice.svg")
class_name BridgeVoice
extends AudioStreamPlayer
## Plays a [BridgeCharacter]'s speech (non-positional). Audio from the bridge is resampled to
## the mix rate and fed to an [AudioStreamGenerator]; playback progress and the end of each
## segment are reported to the bridge. Use [BridgeVoice3D] for positional audio.

const _Setup := preload("res://addons/entity_bridge/nodes/voice_setup.gd")

@export var character_path: NodePath = NodePath("..")
## Seconds of audio the generator buffers (the bridge sends ~200 ms ahead).
@export var buffer_length: float = 0.5

var speech: BridgeSpeechPlayer


func _ready() -> void:
	speech = _Setup.setup(self, get_node_or_null(character_path), buffer_length)


func _process(_delta: float) -> void:
	if speech != null:
		speech.update()


## Drops the speech not yet heard; returns how many ms of the current segment were heard.
func flush_speech() -> int:
	return speech.flush() if speech != null else 0
