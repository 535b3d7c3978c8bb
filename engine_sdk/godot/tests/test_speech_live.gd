extends "res://tests/test_case.gd"
## Speech from the real bridge (espeak voice): what reaches the generator equals what the bridge
## sent, resampled or not; a real AudioStreamGenerator plays it headless with progress/done
## reports; an interrupt mid-speech flushes and tells the bridge what was heard; visemes.

const FakeSink := preload("res://tests/fake_sink.gd")


func _speaker(rate: int, framing: String = "msgpack") -> Array:
	var c := await open_client(framing, func(cl: BridgeClient) -> void:
		cl.audio_out = {"encoding": "pcm_s16le", "sample_rate": rate, "chunk_ms": 40, "lead_ms": 200})
	if c == null:
		return []
	return [c, c.init_entity("voice-%d" % rate, "speaker")]


func _received_pcm(entity: BridgeEntity) -> Array:
	var chunks: Array = []  # [speech, pcm]
	entity.audio.connect(func(s: String, _q: int, _t: int, pcm: PackedByteArray, _v: Array, _vol: Array) -> void: chunks.append([s, pcm]))
	return chunks


func test_generator_gets_exactly_the_bridges_samples_at_the_same_rate() -> void:
	await _same_rate("msgpack")


func test_speech_in_the_json_framing_arrives_as_bytes_too() -> void:
	await _same_rate("json")


func _same_rate(framing: String) -> void:
	var got := await _speaker(24000, framing)
	if got.is_empty():
		return
	var npc: BridgeEntity = got[1]
	var chunks := _received_pcm(npc)
	var sink := FakeSink.new(24000 * 30)
	var player := BridgeSpeechPlayer.new(24000, sink)
	player.attach(npc)
	var turn: BridgeRequest = await finish(npc.say("Hello!"), 30.0)
	eq(turn.status, "success", "turn: " + turn.error_message)
	var samples := 0
	var all := PackedByteArray()
	for ch in chunks:
		all.append_array(ch[1])
	samples = all.size() / 2
	check(chunks.size() > 10 and samples > 24000 * 0.5, "the bridge spoke (%d chunks, %d samples)" % [chunks.size(), samples])
	eq(sink.buffer.size(), samples, "frames pushed = samples the bridge sent")
	var same := sink.buffer.size() == samples
	for i in mini(samples, sink.buffer.size()):
		if sink.buffer[i].x != all.decode_s16(i * 2) / 32768.0:
			fail("frame %d differs: %f vs sample %d" % [i, sink.buffer[i].x, all.decode_s16(i * 2)])
			same = false
			break
	check(same, "every frame is the bridge's sample / 32768")


func test_resampled_to_48k_every_even_frame_is_a_bridge_sample() -> void:
	var got := await _speaker(24000)
	if got.is_empty():
		return
	var npc: BridgeEntity = got[1]
	var chunks := _received_pcm(npc)
	var sink := FakeSink.new(48000 * 30)
	var player := BridgeSpeechPlayer.new(48000, sink)
	player.attach(npc)
	await finish(npc.say("Hello!"), 30.0)
	var all := PackedByteArray()
	for ch in chunks:
		all.append_array(ch[1])
	var n := all.size() / 2
	eq(sink.buffer.size(), 2 * n, "twice the frames at twice the rate")
	var kept := true
	for i in mini(n, sink.buffer.size() / 2):
		if sink.buffer[2 * i].x != all.decode_s16(i * 2) / 32768.0:
			kept = false
			fail("even frame %d is not sample %d" % [2 * i, i])
			break
	check(kept, "content kept through resampling")


func _generator(rate: int) -> Array:
	var gen := AudioStreamGenerator.new()
	gen.mix_rate = rate
	gen.buffer_length = 0.5
	var asp := AudioStreamPlayer.new()
	asp.stream = gen
	tree.root.add_child(asp)
	await tree.process_frame
	asp.play()
	return [asp, asp.get_stream_playback()]


func test_a_real_generator_plays_the_speech_with_progress_and_done_reports() -> void:
	var got := await _speaker(24000)
	if got.is_empty():
		return
	var c: BridgeClient = got[0]
	var npc: BridgeEntity = got[1]
	var sent: Array = []
	c.frame_sent.connect(func(w: Dictionary) -> void: sent.append(w))
	var gen := await _generator(44100)
	var player := BridgeSpeechPlayer.new(44100, gen[1])
	player.attach(npc)
	tickers.append(func(_d: float) -> void: player.update())
	var speeches: Array = []
	npc.speech_started.connect(func(s: String, _t: String, _r: int) -> void: speeches.append(s))
	var done: Array = []
	player.segment_done.connect(func(s: String) -> void: done.append(s))
	var turn: BridgeRequest = await finish(npc.say("Hello!"), 30.0)
	eq(turn.status, "success", "turn")
	var all_done: bool = await wait_until(func() -> bool: return done.size() == speeches.size() and not player.is_playing(), 15.0)
	check(all_done, "every segment was played to the end (%s of %s)" % [done, speeches])
	eq(done, speeches, "playback.done in segment order")
	var done_sent: Array = sent.filter(func(w: Dictionary) -> bool: return w["type"] == "playback.done").map(func(w: Dictionary) -> String: return w["payload"]["speech"])
	eq(done_sent, speeches, "playback.done sent to the bridge for each segment")
	var progress: Array = sent.filter(func(w: Dictionary) -> bool: return w["type"] == "playback.progress")
	check(progress.size() >= speeches.size(), "playback.progress sent (%d)" % progress.size())
	await wait_until(func() -> bool: return c.pending_count() == 0, 5.0)
	eq(c.pending_count(), 0, "the bridge accepted every report")
	print("    (underruns during live playback: %d)" % player.underruns)
	gen[0].queue_free()


func test_interrupt_mid_speech_flushes_and_reports_what_was_heard() -> void:
	var got := await _speaker(24000)
	if got.is_empty():
		return
	var c: BridgeClient = got[0]
	var npc := c.init_entity("talker-1", "talker")
	var gen := await _generator(48000)
	var asp: AudioStreamPlayer = gen[0]
	var player := BridgeSpeechPlayer.new(48000, gen[1])
	# What BridgeVoice does: a playing generator cannot be cleared, so restart the player.
	player.sink_reset = func() -> Object:
		asp.stop()
		asp.play()
		return asp.get_stream_playback()
	player.attach(npc)
	tickers.append(func(_d: float) -> void: player.update())
	var interrupted: Array = []
	npc.speech_interrupted.connect(func(s: String, ms: int, _h: String) -> void: interrupted.append([s, ms]))
	var turn := npc.say("Tell me everything about the old war and the siege of the northern keep.")
	var playing: bool = await wait_until(func() -> bool: return player.current_speech() != "" and player.played_ms(player.current_speech()) >= 300, 20.0)
	if not check(playing, "speech started playing"):
		gen[0].queue_free()
		return
	var speech := player.current_speech()
	var heard := player.flush()
	check(heard >= 300 and heard < 2000, "heard about 300 ms before the interrupt (%d)" % heard)
	var pb: AudioStreamGeneratorPlayback = player.sink
	check(pb != gen[1], "a fresh playback after the flush")
	eq(pb.get_frames_available(), player.sink_capacity, "the generator's buffer is empty after the flush")
	var stop: BridgeRequest = await finish(npc.interrupt(heard))
	eq(stop.reply_payload().get("interrupted"), true, "a turn was running")
	await finish(turn)
	eq(turn.error_code, "cancelled", "the turn ends cancelled")
	eq(interrupted, [[speech, heard]], "ai.speech.interrupted names the segment and what we heard")
	await wait_until(func() -> bool: return false, 0.3)
	eq(pb.get_frames_available(), player.sink_capacity, "nothing of the cut reply reaches the generator afterwards")
	gen[0].queue_free()


func test_viseme_keyframes_from_the_bridge_drive_the_weights() -> void:
	var got := await _speaker(24000)
	if got.is_empty():
		return
	var npc: BridgeEntity = got[1]
	var driver := BridgeLipSyncDriver.new()
	driver.attach(npc)
	var frames: Array = []  # [speech, keyframe]
	npc.visemes.connect(func(s: String, _t: int, k: Array) -> void:
		for kf in k:
			frames.append([s, kf]))
	var emotions: Array = []
	npc.countenance.connect(func(e: String, i: float, x: String, _s: String, _t: int) -> void: emotions.append([e, x]))
	await finish(npc.say("Hello!"), 30.0)
	check(frames.size() > 10, "visemes came with the audio (%d keyframes)" % frames.size())
	var checked := 0
	for i in frames.size():
		var speech: String = frames[i][0]
		var kf: Array = frames[i][1]
		# The weight just after a keyframe, unless the next keyframe starts at the same ms.
		if i + 1 < frames.size() and frames[i + 1][0] == speech and frames[i + 1][1][0] == kf[0]:
			continue
		var w: Dictionary = driver.weights_at(speech, int(kf[0]))
		checked += 1
		if not is_equal_approx(float(w[kf[1]]), clampf(float(kf[2]), 0.0, 1.0)):
			fail("at %d ms of %s: %s should be %s, got %s" % [kf[0], speech, kf[1], kf[2], w[kf[1]]])
			break
	check(checked > 10, "weights checked at %d keyframe times" % checked)
	eq(emotions.size() > 0 and emotions[0] == ["happy", "smile_big"], true, "countenance [happy] with the character's expression: %s" % [emotions])
