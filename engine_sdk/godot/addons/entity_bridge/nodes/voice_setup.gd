extends RefCounted
## Shared by BridgeVoice (AudioStreamPlayer) and BridgeVoice3D (AudioStreamPlayer3D): both have
## the same stream/play/stop/get_stream_playback API, so one function wires either to a
## BridgeSpeechPlayer fed by the character's entity.


static func setup(player: Node, character: Node, buffer_length: float) -> BridgeSpeechPlayer:
	var gen := AudioStreamGenerator.new()
	gen.mix_rate = AudioServer.get_mix_rate()
	gen.buffer_length = buffer_length
	player.stream = gen
	player.play()
	var speech := BridgeSpeechPlayer.new(int(gen.mix_rate), player.get_stream_playback())
	# A playing generator cannot be cleared: an interrupt restarts the player instead.
	speech.sink_reset = func() -> Object:
		player.stop()
		player.play()
		return player.get_stream_playback()
	if character != null and character.get("entity") != null:
		speech.attach(character.entity)
	else:
		push_error("%s: no BridgeCharacter (set character_path)" % player.name)
	return speech
