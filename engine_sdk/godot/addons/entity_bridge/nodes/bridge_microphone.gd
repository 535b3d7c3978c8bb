@icon("res://addons/entity_bridge/icons/microphone.svg")
class_name BridgeMicrophone
extends Node
## The player's microphone for a [BridgeCharacter]: an [AudioEffectCapture] on a muted bus fed
## by an [AudioStreamMicrophone], cut into 20 ms [code]stt.audio[/code] chunks. Push-to-talk:
## hold [member push_to_talk_action] (or call [method start_talking]/[method stop_talking]);
## VAD: [method start_talking] once, the bridge finds the speech.
## Needs Project Settings > Audio > Driver > Enable Input.

@export var character_path: NodePath = NodePath("..")
@export var bus_name: String = "EntityBridgeMic"
@export_enum("push_to_talk", "vad") var mode: String = "push_to_talk"
## An input action held to talk (push_to_talk mode); empty = call start/stop yourself.
@export var push_to_talk_action: String = ""

var chunker: BridgeMicChunker
var capture: AudioEffectCapture
var _mic_player: AudioStreamPlayer
var _character: Node
var _listening: bool = false


func _ready() -> void:
	_character = get_node_or_null(character_path)
	var idx := AudioServer.get_bus_index(bus_name)
	if idx < 0:
		AudioServer.add_bus()
		idx = AudioServer.bus_count - 1
		AudioServer.set_bus_name(idx, bus_name)
		AudioServer.set_bus_mute(idx, true)  # capture only: the player does not hear themselves
		AudioServer.add_bus_effect(idx, AudioEffectCapture.new())
	capture = AudioServer.get_bus_effect(idx, 0) as AudioEffectCapture
	var rate := 16000
	if _character != null and _character.get("bridge") != null:
		rate = int(_character.bridge.client.hello.get("audio_in", {}).get("sample_rate", 16000))
	chunker = BridgeMicChunker.new(int(AudioServer.get_mix_rate()), rate)
	chunker.mode = mode
	chunker.chunk.connect(func(pcm: PackedByteArray, seq: int) -> void:
		if _character != null and _character.entity != null:
			_character.entity.send_audio(seq, pcm))
	_mic_player = AudioStreamPlayer.new()
	_mic_player.stream = AudioStreamMicrophone.new()
	_mic_player.bus = bus_name
	add_child(_mic_player)


func start_talking() -> void:
	if _listening:
		return
	_listening = true
	chunker.talking = true
	chunker.seq = 0
	if not _mic_player.playing:
		_mic_player.play()
	capture.clear_buffer()
	_character.entity.request("stt.listen.start", {"mode": mode})


func stop_talking() -> void:
	if not _listening:
		return
	_listening = false
	chunker.talking = false
	_character.entity.request("stt.listen.stop", null)


func _process(_delta: float) -> void:
	if push_to_talk_action != "" and InputMap.has_action(push_to_talk_action):
		if Input.is_action_pressed(push_to_talk_action):
			start_talking()
		else:
			stop_talking()
	if capture != null and _listening:
		var n := capture.get_frames_available()
		if n > 0:
			chunker.feed(capture.get_buffer(n))
