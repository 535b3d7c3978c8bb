extends "res://tests/test_case.gd"
## Microphone chunking: 20 ms s16le chunks at 16 kHz from stereo floats at the mix rate, pitch
## kept, push-to-talk and the energy gate; chunks the live bridge accepts as stt.audio.


static func _tone(hz: float, rate: int, n: int, from: int, amp: float) -> PackedVector2Array:
	var out := PackedVector2Array()
	out.resize(n)
	for i in n:
		var v := sin(TAU * hz * float(from + i) / rate) * amp
		out[i] = Vector2(v, v)
	return out


func test_chunks_are_20ms_at_16k_and_keep_the_pitch() -> void:
	var mic := BridgeMicChunker.new(44100, 16000)
	var pcm := PackedByteArray()
	var sizes: Array = []
	var seqs: Array = []
	mic.chunk.connect(func(b: PackedByteArray, s: int) -> void:
		pcm.append_array(b)
		sizes.append(b.size())
		seqs.append(s))
	var fed := 0
	for block in [512, 1024, 333, 2048, 735, 4096, 1000, 8000, 4256]:  # odd capture sizes, ~0.5 s
		mic.feed(_tone(440.0, 44100, block, fed, 0.5))
		fed += block
	var expected_chunks := int(floor(fed * 16000.0 / 44100.0)) / 320
	eq(sizes.size(), expected_chunks, "one chunk per 320 samples")
	check(sizes.all(func(s: int) -> bool: return s == 640), "every chunk is 640 bytes (20 ms of s16 at 16 kHz)")
	eq(seqs, range(sizes.size()), "seq counts from 0")
	var frames := PackedVector2Array()
	for i in pcm.size() / 2:
		var v := pcm.decode_s16(i * 2) / 32768.0
		frames.append(Vector2(v, v))
	var hz: float = preload("res://tests/test_speech.gd").pitch(frames, 16000)
	near(hz, 440.0, 1.0, "pitch after downsampling")


func test_push_to_talk_and_gate() -> void:
	var ptt := BridgeMicChunker.new(16000, 16000)
	ptt.mode = "push_to_talk"
	var sent := [0]
	ptt.chunk.connect(func(_b: PackedByteArray, _s: int) -> void: sent[0] += 1)
	ptt.feed(_tone(300.0, 16000, 3200, 0, 0.5))
	eq(sent[0], 0, "nothing while the key is up")
	ptt.talking = true
	ptt.feed(_tone(300.0, 16000, 3200, 0, 0.5))
	eq(sent[0], 10, "200 ms while the key is down = 10 chunks")
	var gate := BridgeMicChunker.new(16000, 16000)
	gate.mode = "gated"
	var changes: Array = []
	var gated := [0]
	gate.voice.connect(func(a: bool) -> void: changes.append(a))
	gate.chunk.connect(func(_b: PackedByteArray, _s: int) -> void: gated[0] += 1)
	gate.feed(_tone(300.0, 16000, 8000, 0, 0.001))  # 500 ms near silence
	eq(gated[0], 0, "silence is not sent")
	gate.feed(_tone(300.0, 16000, 8000, 0, 0.3))  # 500 ms of voice
	eq(changes, [true], "the gate opens on voice")
	gate.feed(_tone(300.0, 16000, 16000, 0, 0.001))  # 1 s of silence
	eq(changes, [true, false], "and closes after the hangover")
	eq(gated[0], 25 + 15, "voice plus 300 ms of hangover were sent")


func test_the_bridge_accepts_the_chunks_as_stt_audio() -> void:
	var c := await open_client()
	if c == null:
		return
	var npc := c.init_entity("mic-1", "listener")
	var errors: Array = []
	npc.error.connect(func(code: String, m: String) -> void: errors.append([code, m]))
	var activity: Array = []
	npc.voice_activity.connect(func(active: bool, t: int) -> void: activity.append([active, t]))
	var start: BridgeRequest = await finish(npc.request("stt.listen.start", {"mode": "push_to_talk"}), 90.0)
	if not eq(start.status, "success", "stt.listen.start: " + start.error_message):
		return
	var mic := BridgeMicChunker.new(48000, 16000)
	mic.chunk.connect(func(b: PackedByteArray, s: int) -> void: npc.send_audio(s, b))
	var sent := 0
	for block in 10:
		sent += mic.feed(_tone(300.0, 48000, 4800, block * 4800, 0.3))  # 1 s in 100 ms blocks
	eq(sent, 50, "1 s of audio = 50 chunks")
	var stop: BridgeRequest = await finish(npc.request("stt.listen.stop", null), 60.0)
	eq(stop.status, "success", "stt.listen.stop: " + stop.error_message)
	eq(errors, [], "no chunk refused (seq, size and format accepted)")
	await wait_until(func() -> bool: return not activity.is_empty(), 10.0)
	check(not activity.is_empty() and activity[-1][0] == false and activity[-1][1] >= 900,
		"the bridge heard about 1 s of push-to-talk audio: %s" % [activity])
	# A tone has no words: whether a (empty) transcript follows is the STT's business, not checked.
