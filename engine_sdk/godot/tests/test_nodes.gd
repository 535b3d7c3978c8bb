extends "res://tests/test_case.gd"
## The user-facing nodes in a scene: the EntityBridge autoload (connected to the test bridge
## by --entity-bridge-url), a BridgeCharacter with a BridgeVoice and a BridgeLipSync on a
## mesh, against the live bridge; the demo scene loads.

const _LipTest := preload("res://tests/test_lipsync.gd")


func _autoload() -> Node:
	return tree.root.get_node_or_null("EntityBridge")


func test_the_autoload_connects_to_the_bridge() -> void:
	var eb := _autoload()
	if not check(eb != null, "the EntityBridge autoload is in the tree"):
		return
	var ok: bool = await wait_until(func() -> bool: return eb.client.is_open(), 10.0)
	check(ok, "the autoload's client said hello to %s" % eb.url)
	eq(eb.url, String(options.get("bridge", "")), "--entity-bridge-url overrides the project setting")


func test_a_character_with_voice_and_lip_sync_speaks_and_moves_its_mouth() -> void:
	var eb := _autoload()
	if eb == null or not await wait_until(func() -> bool: return eb.client.is_open(), 10.0):
		fail("no connected autoload")
		return
	var scene := Node3D.new()
	var npc := BridgeCharacter.new()
	npc.name = "NodeNpc"
	npc.character = "speaker"
	var voice := BridgeVoice.new()
	voice.name = "Voice"
	var mapping := BridgeLipSyncMapping.new()
	var mesh: MeshInstance3D = _LipTest.new()._mesh_with_shapes(mapping.viseme_shapes.values() + ["mouthSmile"])
	mesh.name = "Face"
	var lips := BridgeLipSync.new()
	lips.name = "LipSync"
	lips.voice_path = NodePath("../Voice")
	lips.mesh_path = NodePath("../../Face")
	npc.add_child(voice)
	npc.add_child(lips)
	scene.add_child(mesh)
	scene.add_child(npc)
	tree.root.add_child(scene)
	var replies: Array = []
	npc.replied.connect(func(p: Dictionary) -> void: replies.append(p))
	var done: Array = []
	voice.speech.segment_done.connect(func(s: String) -> void: done.append(s))
	var peak := {}
	var smile := [0.0]
	tickers.append(func(_d: float) -> void:
		for v in mapping.viseme_shapes:
			var idx := mesh.find_blend_shape_by_name(mapping.viseme_shapes[v])
			peak[v] = maxf(float(peak.get(v, 0.0)), mesh.get_blend_shape_value(idx))
		smile[0] = maxf(smile[0], mesh.get_blend_shape_value(mesh.find_blend_shape_by_name("mouthSmile"))))
	var turn := npc.say("Hello!")
	await finish(turn, 30.0)
	eq(turn.status, "success", "turn: " + turn.error_message)
	eq(replies.size(), 1, "replied once")
	var played: bool = await wait_until(func() -> bool: return not voice.speech.is_playing() and not done.is_empty(), 20.0)
	check(played, "the voice played every segment (%s)" % [done])
	var moving := 0
	for v in peak:
		if v != "sil" and peak[v] > 0.2:
			moving += 1
	check(moving >= 3, "the mouth took at least 3 viseme shapes while speaking: %s" % [peak])
	check(smile[0] > 0.2, "the [happy] countenance reached mouthSmile (%f)" % smile[0])
	var removed := [false]
	eb.client.frame_sent.connect(func(w: Dictionary) -> void:
		if w["type"] == "entity.remove" and w.get("entity") == "NodeNpc":
			removed[0] = true)
	tickers.clear()
	scene.queue_free()
	await wait_until(func() -> bool: return removed[0], 2.0)
	check(removed[0], "leaving the tree removes the entity on the bridge")


func test_the_demo_scene_loads() -> void:
	var packed: PackedScene = load("res://demo/demo.tscn")
	if not check(packed != null, "demo.tscn loads"):
		return
	var demo := packed.instantiate()
	check(demo.get_node_or_null("Innkeeper") is BridgeCharacter, "the innkeeper is a BridgeCharacter")
	check(demo.get_node_or_null("Innkeeper/Voice") is BridgeVoice, "with a BridgeVoice")
	check(demo.get_node_or_null("Innkeeper/LipSync") is BridgeLipSync, "and a BridgeLipSync")
	check(demo.get_node_or_null("Innkeeper/Microphone") is BridgeMicrophone, "and a BridgeMicrophone")
	tree.root.add_child(demo)
	await wait_until(func() -> bool: return false, 0.3)
	check((demo.get_node("Mouth") as AnimatedSprite2D).sprite_frames.get_frame_count("default") == 9, "the demo drew its 9 mouth frames")
	demo.queue_free()
	await tree.process_frame


func test_the_microphone_node_captures_its_bus_and_streams_it() -> void:
	# No input device headless: a tone played on the microphone's bus stands in for the voice,
	# so the real path runs (AudioEffectCapture -> chunker -> stt.audio -> the bridge's listener).
	var eb := _autoload()
	if eb == null or not await wait_until(func() -> bool: return eb.client.is_open(), 10.0):
		fail("no connected autoload")
		return
	var npc := BridgeCharacter.new()
	npc.name = "MicNpc"
	npc.character = "listener"
	var mic := BridgeMicrophone.new()
	mic.name = "Microphone"
	npc.add_child(mic)
	tree.root.add_child(npc)
	await finish(eb.client.request("scene.loaded", null), 10.0)  # the entity.init before it is done
	check(mic.capture is AudioEffectCapture, "the microphone bus has a capture effect")
	var bus := AudioServer.get_bus_index(mic.bus_name)
	check(bus >= 0 and AudioServer.is_bus_mute(bus), "on a muted bus of its own")
	var sent: Array = []
	eb.client.frame_sent.connect(func(w: Dictionary) -> void:
		if w.get("entity") == "MicNpc":
			sent.append(w["type"]))
	var errors: Array = []
	npc.entity.error.connect(func(code: String, m: String) -> void: errors.append([code, m]))
	var activity: Array = []
	npc.entity.voice_activity.connect(func(a: bool, t: int) -> void: activity.append([a, t]))
	mic.start_talking()
	var tone := AudioStreamGenerator.new()
	tone.mix_rate = AudioServer.get_mix_rate()
	tone.buffer_length = 1.0
	var src := AudioStreamPlayer.new()
	src.stream = tone
	src.bus = mic.bus_name
	tree.root.add_child(src)
	await tree.process_frame
	src.play()
	var pb: AudioStreamGeneratorPlayback = src.get_stream_playback()
	var frames := PackedVector2Array()
	var rate := tone.mix_rate
	for i in int(rate * 0.8):
		var v := sin(TAU * 300.0 * i / rate) * 0.3
		frames.append(Vector2(v, v))
	pb.push_buffer(frames)
	await wait_until(func() -> bool: return sent.count("stt.audio") >= 25, 10.0)
	check(sent.count("stt.audio") >= 25, "the captured tone went out as stt.audio chunks (%d)" % sent.count("stt.audio"))
	mic.stop_talking()
	await wait_until(func() -> bool: return not activity.is_empty(), 30.0)
	eq(errors, [], "the bridge accepted every chunk and the listen requests")
	check(sent.has("stt.listen.start") and sent.has("stt.listen.stop"), "push-to-talk start and stop were sent: %s" % [sent.filter(func(t: String) -> bool: return t != "stt.audio")])
	check(not activity.is_empty() and activity[-1][0] == false and activity[-1][1] >= 400, "the bridge heard the captured audio: %s" % [activity])
	src.queue_free()
	npc.queue_free()
	await tree.process_frame
