extends SceneTree
## Benchmarks of the GDScript hot paths (run by engine_sdk/godot/bench.sh, headless):
## events decoded and dispatched per second through BridgeClient.receive_message (the path
## every received frame takes), and the cost of one 40 ms speech chunk end to end
## (decode + dispatch + resample + push into a real AudioStreamGenerator playback).

const FakeSink := preload("res://tests/fake_sink.gd")


func _initialize() -> void:
	_run()


## This process's CPU time in seconds (utime + stime from /proc/self/stat, 10 ms ticks), or -1
## without /proc (bench.sh mounts it in the chroot). The machine is shared, so wall time swings
## with the load; CPU time is the steadier figure.
static func cpu_s() -> float:
	var f := FileAccess.open("/proc/self/stat", FileAccess.READ)
	if f == null:
		return -1.0
	var fields := f.get_line().split(") ")[1].split(" ")  # /proc files report size 0: read a line
	return (fields[11].to_float() + fields[12].to_float()) / 100.0


func _frames(kind: String, n: int) -> Array:
	var out: Array = []
	for i in n:
		var e: Dictionary
		match kind:
			"text":
				e = {"type": "ai.text", "id": "b%d" % i, "entity": "npc", "ref": "u1", "payload": {"delta": " word%d" % i}}
			"countenance":
				e = {"type": "ai.countenance", "id": "b%d" % i, "entity": "npc", "ref": "u1", "payload": {"emotion": "happy", "intensity": 0.8, "expression": "smile", "speech": "sp-1", "t": i * 40}}
			"audio":
				e = _audio_event(i, 24000)
		out.append(BridgeMsgPack.encode(e))
	return out


func _audio_event(i: int, rate: int) -> Dictionary:
	var pcm := PackedByteArray()
	pcm.resize(rate * 40 / 1000 * 2)
	for s in pcm.size() / 2:
		pcm.encode_s16(s * 2, int(sin(TAU * 220.0 * float(i * 960 + s) / rate) * 12000.0))
	return {"type": "ai.speech.audio", "id": "b%d" % i, "entity": "npc", "ref": "u1",
		"payload": {"speech": "sp-1", "seq": i, "t": i * 40, "audio": pcm,
			"visemes": [[i * 40, "aa", 0.7], [i * 40 + 20, "O", 0.5]], "volume": [0.2, 0.4, 0.5, 0.3]}}


func _client() -> Array:
	var c := BridgeClient.new()
	var npc := c.init_entity("npc", "echo")  # offline: the handle routes what receive_message feeds
	var counter := [0]
	npc.event.connect(func(_e: Dictionary) -> void: counter[0] += 1)
	return [c, npc, counter]


func _rate(kind: String, framing: String, n: int) -> Array:
	var frames := _frames(kind, n)
	if framing == "json":
		frames = frames.map(func(b: PackedByteArray) -> String: return BridgeFraming.encode(BridgeMsgPack.decode(b).value, "json"))
	var got := _client()
	var c0 := cpu_s()
	var t0 := Time.get_ticks_usec()
	for f in frames:
		got[0].receive_message(f)
	var us := Time.get_ticks_usec() - t0
	var cpu := cpu_s() - c0
	if got[2][0] != n:
		push_error("dispatched %d of %d" % [got[2][0], n])
	return [n / (us / 1e6), n / cpu if cpu > 0.0 else -1.0]


func _chunk_cost(out_rate: int, n: int) -> Array:
	var frames: Array = []
	for i in n:
		frames.append(BridgeMsgPack.encode(_audio_event(i, 24000)))
	var gen := AudioStreamGenerator.new()
	gen.mix_rate = out_rate
	gen.buffer_length = 30.0  # room for the whole run: the push never waits for the mixer
	var asp := AudioStreamPlayer.new()
	asp.stream = gen
	root.add_child(asp)
	await process_frame
	asp.play()
	var got := _client()
	var player := BridgeSpeechPlayer.new(out_rate, asp.get_stream_playback())
	player.attach(got[1])
	player.start_segment("sp-1", 24000)
	var c0 := cpu_s()
	var t0 := Time.get_ticks_usec()
	for f in frames:
		got[0].receive_message(f)
	var us := Time.get_ticks_usec() - t0
	var cpu := cpu_s() - c0
	var pushed := player.frames_pushed
	asp.queue_free()
	return [us / float(n), pushed, cpu * 1e6 / float(n)]


func _run() -> void:
	await process_frame
	print("bench: Godot %s, %d cores, CPU time %s" % [Engine.get_version_info()["string"], OS.get_processor_count(), "from /proc" if cpu_s() >= 0.0 else "unavailable"])
	for framing in ["msgpack", "json"]:
		for kind in ["text", "countenance", "audio"]:
			var best := 0.0
			var best_cpu := 0.0
			for rep in 3:
				var r: Array = _rate(kind, framing, 5000 if kind != "audio" else 1500)
				best = maxf(best, r[0])
				best_cpu = maxf(best_cpu, r[1])
			print("bench: %-8s %-12s decoded+dispatched: %8.0f events/s of wall time, %8.0f per CPU-second (best of 3)" % [framing, kind, best, best_cpu])
	for out_rate in [24000, 44100, 48000]:
		var best_us := 1e12
		var best_cpu := 1e12
		var pushed := 0
		for rep in 3:
			var r: Array = await _chunk_cost(out_rate, 250)
			best_us = minf(best_us, r[0])
			best_cpu = minf(best_cpu, r[2])
			pushed = r[1]
		print("bench: one 40 ms chunk (24 kHz) -> %d Hz generator: %6.0f us wall, %6.0f us CPU (decode+dispatch+resample+push; %d frames pushed for 250 chunks; best of 3)" % [out_rate, best_us, best_cpu, pushed])
	# Parts of the chunk cost, for the same 24 kHz -> 48 kHz chunk.
	var frame: PackedByteArray = BridgeMsgPack.encode(_audio_event(0, 24000))
	var t0 := Time.get_ticks_usec()
	for i in 500:
		BridgeFraming.decode(frame)
	var dec := (Time.get_ticks_usec() - t0) / 500.0
	var pcm: PackedByteArray = _audio_event(0, 24000)["payload"]["audio"]
	var r48 := BridgeResampler.new(24000, 48000)
	t0 = Time.get_ticks_usec()
	for i in 500:
		r48.process(pcm)
	var res := (Time.get_ticks_usec() - t0) / 500.0
	print("bench: parts: msgpack decode of the chunk %.0f us, resample 960 -> 1920 frames %.0f us" % [dec, res])
	quit(0)
