extends "res://tests/test_case.gd"
## The speech player and resampler on their own: pitch after resampling, seamless chunks,
## playback clock, progress/done, underruns, flush; and a real AudioStreamGenerator headless.

const FakeSink := preload("res://tests/fake_sink.gd")


## A sine as PCM s16le: [param n] samples of [param hz] at [param rate], from sample [param from].
static func tone(hz: float, rate: int, n: int, from: int = 0, amp: float = 0.5) -> PackedByteArray:
	var b := PackedByteArray()
	b.resize(n * 2)
	for i in n:
		b.encode_s16(i * 2, int(round(sin(TAU * hz * float(from + i) / rate) * amp * 32767.0)))
	return b


## Frequency from upward zero crossings (linear interpolation between samples).
static func pitch(frames: PackedVector2Array, rate: int) -> float:
	var first := -1.0
	var last := -1.0
	var count := 0
	for i in range(1, frames.size()):
		var a := frames[i - 1].x
		var b := frames[i].x
		if a < 0.0 and b >= 0.0:
			var at := float(i - 1) + (-a) / (b - a)
			if first < 0.0:
				first = at
			last = at
			count += 1
	if count < 2:
		return 0.0
	return float(count - 1) * rate / (last - first)


func test_resampling_keeps_the_pitch_and_the_length() -> void:
	for out_rate in [44100, 48000, 16000, 24000]:
		var r := BridgeResampler.new(24000, out_rate)
		var out := PackedVector2Array()
		var n := 0
		for chunk in 25:  # 25 chunks of 40 ms = 1 s
			out.append_array(r.process(tone(440.0, 24000, 960, chunk * 960)))
			n += 960
		near(float(out.size()), n * float(out_rate) / 24000.0, 1.0, "%d Hz: output length" % out_rate)
		near(pitch(out, out_rate), 440.0, 0.5, "%d Hz: pitch of a 440 Hz tone" % out_rate)
		# No clicks where chunks join: the largest step stays that of the sine itself.
		var max_step := 0.0
		for i in range(1, out.size()):
			max_step = maxf(max_step, absf(out[i].x - out[i - 1].x))
			if out[i].x != out[i].y:
				fail("%d Hz: left and right differ at %d" % [out_rate, i])
				break
		var sine_step: float = TAU * 440.0 / out_rate * 0.5
		check(max_step <= sine_step * 1.05 + 1.0 / 32768.0, "%d Hz: largest step %f, the sine's %f" % [out_rate, max_step, sine_step])


func test_same_rate_is_exact_and_double_rate_keeps_every_sample() -> void:
	var pcm := tone(300.0, 24000, 960)
	var same := BridgeResampler.new(24000, 24000).process(pcm)
	eq(same.size(), 960, "same rate: one frame per sample")
	var exact := true
	for i in 960:
		if same[i].x != pcm.decode_s16(i * 2) / 32768.0:
			exact = false
	check(exact, "same rate: every frame is the sample / 32768")
	var double := BridgeResampler.new(24000, 48000).process(pcm)
	var kept := true
	for i in 959:
		if double[2 * i].x != pcm.decode_s16(i * 2) / 32768.0:
			kept = false
	check(kept, "48 kHz: every even frame is an input sample")


func test_player_clock_progress_done_and_underruns() -> void:
	var sink := FakeSink.new(4800)  # 100 ms at 48 kHz
	var player := BridgeSpeechPlayer.new(48000, sink)
	var reports: Array = []
	var done: Array = []
	var underruns: Array = []
	player.progress.connect(func(s: String, ms: int) -> void: reports.append([s, ms]))
	player.segment_done.connect(func(s: String) -> void: done.append(s))
	player.underrun.connect(func(n: int) -> void: underruns.append(n))
	player.start_segment("sp-1", 24000)
	for c in 10:  # 400 ms of audio
		player.push_chunk("sp-1", tone(220.0, 24000, 960, c * 960))
	eq(sink.buffer.size(), 4800, "the sink is filled up to its capacity")
	eq(player.played_ms("sp-1"), 0, "nothing heard yet")
	player.end_segment("sp-1")
	for step in 100:  # the mixer pulls 10 ms at a time
		sink.consume(480)
		player.update()
		if not done.is_empty():
			break
	eq(done, ["sp-1"], "playback.done once the segment was heard to the end")
	eq(sink.heard.size(), 19200, "every frame of 400 ms at 48 kHz was played")
	check(reports.size() >= 2, "progress reported while playing: %s" % [reports])
	if not reports.is_empty():
		eq(reports[-1], ["sp-1", 400], "the last progress is the whole segment")
		var increasing := true
		for i in range(1, reports.size()):
			if reports[i][1] < reports[i - 1][1]:
				increasing = false
		check(increasing, "progress only grows: %s" % [reports])
	eq(underruns.size(), 0, "no underrun while audio kept coming")
	# A segment whose audio stops coming before its end: the buffer runs dry -> one underrun.
	player.start_segment("sp-2", 24000)
	player.push_chunk("sp-2", tone(220.0, 24000, 960))
	for step in 20:
		sink.consume(480)
		player.update()
	eq(player.underruns, 1, "a starved segment counts one underrun, not one per frame")
	player.push_chunk("sp-2", tone(220.0, 24000, 960))
	player.end_segment("sp-2")
	for step in 20:
		sink.consume(480)
		player.update()
	check("sp-2" in done, "the starved segment still finishes")


func test_flush_drops_what_was_not_heard() -> void:
	var sink := FakeSink.new(9600)
	var player := BridgeSpeechPlayer.new(24000, sink)
	player.start_segment("sp-1", 24000)
	for c in 20:
		player.push_chunk("sp-1", tone(220.0, 24000, 960, c * 960))
	sink.consume(2400)  # 100 ms heard
	player.update()
	var heard := player.flush()
	eq(heard, 100, "flush reports what was heard")
	eq(sink.buffer.size(), 0, "the sink's buffer is cleared")
	check(not player.is_playing(), "nothing left to play")
	player.push_chunk("sp-1", tone(220.0, 24000, 960))
	eq(sink.buffer.size(), 0, "late chunks of the cut segment are dropped")
	player.start_segment("sp-2", 24000)
	player.push_chunk("sp-2", tone(220.0, 24000, 960))
	eq(sink.buffer.size(), 960, "the next segment plays")
	sink.consume(960)
	player.update()
	eq(player.played_ms("sp-2"), 40, "its clock starts at 0")


func test_audio_stream_generator_headless() -> void:
	var gen := AudioStreamGenerator.new()
	gen.mix_rate = 48000
	gen.buffer_length = 0.25
	var asp := AudioStreamPlayer.new()
	asp.stream = gen
	tree.root.add_child(asp)
	await tree.process_frame
	asp.play()
	var pb: Variant = asp.get_stream_playback()
	if not check(pb is AudioStreamGeneratorPlayback, "a generator playback exists headless (%s)" % [pb]):
		asp.queue_free()
		return
	var player := BridgeSpeechPlayer.new(48000, pb)
	var capacity := player.sink_capacity
	check(capacity >= 11000, "the generator's buffer holds ~0.25 s (%d frames)" % capacity)
	player.start_segment("sp-1", 24000)
	player.push_chunk("sp-1", tone(440.0, 24000, 960))
	player.end_segment("sp-1")
	eq(player.frames_pushed, 1920, "a 40 ms chunk at 24 kHz becomes 1920 frames at 48 kHz")
	eq(capacity - pb.get_frames_available(), 1920, "the generator holds them")
	await sleep(0.3)
	var consumed: int = 1920 - (capacity - pb.get_frames_available())
	print("    (headless mixer consumed %d of 1920 frames in 0.3 s: the dummy audio driver %s)" % [consumed, "mixes" if consumed > 0 else "does not mix"])
	player.update()
	if consumed == 1920:
		eq(player.played_ms("sp-1"), -1, "segment finished and forgotten once played")
	asp.queue_free()


func test_an_interruption_from_the_bridge_stops_the_segment() -> void:
	var sink := FakeSink.new(24000)
	var player := BridgeSpeechPlayer.new(24000, sink)
	var offline := BridgeClient.new()  # not connected: its reports wait in the outbox
	var npc := offline.init_entity("npc", "x")
	player.attach(npc)
	var reports: Array = []
	player.progress.connect(func(s: String, ms: int) -> void: reports.append(ms))
	npc.speech_started.emit("sp-1", "Hello there", 24000)
	for c in 5:
		npc.audio.emit("sp-1", c, c * 40, tone(220.0, 24000, 960, c * 960), [], [])
	sink.consume(960)
	player.update()
	npc.speech_interrupted.emit("sp-1", 40, "Hello")  # e.g. the player spoke over it
	eq(sink.buffer.size(), 0, "what was not heard is dropped")
	check(not player.is_playing(), "nothing left playing")
	npc.audio.emit("sp-1", 5, 200, tone(220.0, 24000, 960), [], [])
	eq(sink.buffer.size(), 0, "a late chunk of the cut segment is ignored")
