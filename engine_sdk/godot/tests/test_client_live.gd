extends "res://tests/test_case.gd"
## BridgeClient against the real bridge run-tests.sh started (tests/bridge.toml): hello in both
## framings, a full turn, error codes, several entities, malformed frames, bridge requests.


func _count_finals(log: Array, id: String) -> int:
	var n := 0
	for e in log:
		if e.get("id") == id and (e.get("status") == "success" or e.get("status") == "error"):
			n += 1
	return n


func _hello_checks(c: BridgeClient, framing: String) -> void:
	check(c.hello.get("characters") is Array and "echo" in c.hello["characters"], "%s hello lists the characters: %s" % [framing, c.hello.get("characters")])
	eq(c.hello.get("protocol"), 1, "%s hello protocol is an int" % framing)
	var limits: Dictionary = c.hello.get("limits", {})
	eq(limits.get("max_frame_bytes"), 1048576, "%s limits.max_frame_bytes" % framing)
	var out: Dictionary = c.hello.get("audio_out", {})
	eq(out.get("sample_rate"), 24000, "%s audio_out.sample_rate (default)" % framing)
	eq(out.get("chunk_ms"), 40, "%s audio_out.chunk_ms" % framing)


func test_hello_in_msgpack_framing() -> void:
	var c := await open_client("msgpack")
	if c == null:
		return
	_hello_checks(c, "msgpack")
	check(String(c.hello.get("session", "")) != "", "a session id")


func test_hello_in_json_framing_restores_ints() -> void:
	var frames: Array = []
	var c := await open_client("json", func(cl: BridgeClient) -> void:
		cl.frame_received.connect(func(e: Dictionary) -> void: frames.append(e)))
	if c == null:
		return
	_hello_checks(c, "json")
	# A turn in JSON framing: ints inside outputs are ints too.
	var npc := c.init_entity("json-npc", "echo")
	var turn: BridgeRequest = await finish(npc.say("Hi there"))
	eq(turn.status, "success", "json turn: " + turn.error_message)
	eq(turn.reply_payload().get("reply"), "You said: Hi there", "json reply")


func test_hello_with_custom_audio_format_is_echoed() -> void:
	var c := await open_client("msgpack", func(cl: BridgeClient) -> void:
		cl.audio_out = {"encoding": "pcm_s16le", "sample_rate": 48000, "chunk_ms": 20, "lead_ms": 100}
		cl.scope = "godot-save-1")
	if c == null:
		return
	eq(c.hello.get("audio_out", {}).get("sample_rate"), 48000, "audio_out.sample_rate in force")
	eq(c.hello.get("audio_out", {}).get("chunk_ms"), 20, "audio_out.chunk_ms in force")


func test_a_full_turn_streams_events_in_order_and_one_final_reply() -> void:
	var log: Array = []
	var c := await open_client("msgpack", func(cl: BridgeClient) -> void:
		cl.frame_received.connect(func(e: Dictionary) -> void: log.append(e)))
	if c == null:
		return
	var npc := c.init_entity("npc-1", "echo")
	var deltas: PackedStringArray = []
	var done_requests: Array = []
	npc.text.connect(func(d: String) -> void: deltas.append(d))
	npc.done.connect(func(r: BridgeRequest) -> void: done_requests.append(r.type))
	var turn: BridgeRequest = await finish(npc.say("Hello over there"))
	eq(turn.status, "success", "turn succeeded: " + turn.error_message)
	eq(npc.info.get("character"), "echo", "entity.init success payload kept")
	var reply: String = turn.reply_payload().get("reply", "")
	eq(reply, "You said: Hello over there", "echo reply")
	eq("".join(deltas), reply, "ai.text deltas add up to the reply")
	eq(turn.of_type("ai.text").size(), deltas.size(), "outputs collected on the request")
	# Order on the wire: pending, then every output, then the one final reply.
	var ours: Array = log.filter(func(e: Dictionary) -> bool: return e.get("id") == turn.id or e.get("ref") == turn.id)
	check(ours.size() >= 3, "pending, outputs, final (%d events)" % ours.size())
	if ours.size() >= 3:
		eq(ours[0].get("status"), "pending", "first comes pending")
		eq(ours[-1].get("status"), "success", "last comes the final reply")
		for e in ours.slice(1, ours.size() - 1):
			eq(e.get("type"), "ai.text", "outputs between pending and the final reply")
	await wait_until(func() -> bool: return false, 0.3)  # anything late would show now
	eq(_count_finals(log, turn.id), 1, "exactly one final reply")
	eq(c.pending_count(), 0, "nothing left waiting")
	check("entity.init" in done_requests and "user.utterance" in done_requests, "done signals: %s" % [done_requests])


func test_errors_carry_the_protocols_codes() -> void:
	var errors: Array = []
	var c := await open_client()
	if c == null:
		return
	var ghost := c.init_entity("ghost-1", "no-such-character")
	ghost.error.connect(func(code: String, _m: String) -> void: errors.append(code))
	var init_req: BridgeRequest = await finish(c.request("entity.init", {"character": "no-such-character"}, "ghost-2"))
	eq(init_req.error_code, "unknown_character", "unknown character")
	check(init_req.error_message.contains("echo"), "message lists the configured characters: " + init_req.error_message)
	var unknown: BridgeRequest = await finish(c.request("user.utterance", {"kind": "verbal", "text": "hi"}, "never-created"))
	eq(unknown.error_code, "unknown_entity", "unknown entity")
	var bad_type: BridgeRequest = await finish(c.request("no.such.type", {}, "x"))
	eq(bad_type.error_code, "unknown_type", "unknown type")
	var broken := c.init_entity("broken-1", "broken")
	var failed: BridgeRequest = await finish(broken.say("hello?"))
	eq(failed.error_code, "backend_error", "a failing LLM gives backend_error")
	check(failed.error_message.contains("scripted failure"), "the provider's message: " + failed.error_message)
	var twice: BridgeRequest = await finish(c.request("entity.init", {"character": "echo"}, "broken-1"))
	eq(twice.error_code, "entity_exists", "a second init of a live entity")
	var bad_field: BridgeRequest = await finish(c.request("user.utterance", {"kind": "verbal", "text": 5}, "broken-1"))
	eq(bad_field.error_code, "bad_event", "a mistyped field")
	await wait_until(func() -> bool: return errors.size() > 0, 2.0)
	eq(errors, ["unknown_character"], "the entity's error signal")


func test_several_entities_at_once_keep_their_own_events() -> void:
	var c := await open_client()
	if c == null:
		return
	var names := ["multi-a", "multi-b", "multi-c", "multi-d"]
	var texts: Dictionary = {}
	var turns: Array = []
	for n in names:
		var e := c.init_entity(n, "echo")
		texts[n] = ""
		e.text.connect(func(d: String) -> void: texts[n] += d)
	for n in names:
		turns.append(c.get_entity(n).say("message for %s" % n))
	for t in turns:
		await finish(t)
	for i in names.size():
		var n: String = names[i]
		eq(turns[i].status, "success", "%s turn" % n)
		eq(texts[n], "You said: message for %s" % n, "%s got only its own deltas" % n)
		eq(turns[i].reply_payload().get("reply"), texts[n], "%s reply" % n)
	eq(c.pending_count(), 0, "all answered")


func test_random_and_truncated_frames_never_crash_the_client() -> void:
	var c := await open_client()
	if c == null:
		return
	var npc := c.init_entity("fuzz-1", "echo")
	await finish(npc.say("first"))
	var errors: Array = []
	c.protocol_error.connect(func(code: String, _m: String) -> void: errors.append(code))
	var rng := RandomNumberGenerator.new()
	rng.seed = 99
	var good: PackedByteArray = BridgeMsgPack.encode({"type": "ai.speech.audio", "id": "b9", "entity": "fuzz-1", "ref": "u9",
		"payload": {"speech": "sp-9", "seq": 0, "t": 0, "audio": PackedByteArray([1, 2, 3, 4]), "visemes": [[0, "sil", 1.0]], "volume": [0.1]}})
	var fed := 0
	for cut in good.size():
		c.receive_message(good.slice(0, cut))
		fed += 1
	for i in 500:
		var b := PackedByteArray()
		b.resize(rng.randi_range(0, 64))
		for j in b.size():
			b[j] = rng.randi_range(0, 255)
		c.receive_message(b)
		fed += 1
	# Well-formed frames with wrong field types reach the entity's signals without a script error.
	for junk in [{"type": "ai.speech.audio", "id": "j1", "entity": "fuzz-1", "payload": {"audio": "not bytes", "seq": "x", "visemes": 5}},
			{"type": "ai.text", "id": "j2", "entity": "fuzz-1", "payload": [1, 2]},
			{"type": 5, "id": "j3"}, {"type": "ai.countenance", "id": "j4", "entity": "fuzz-1", "payload": {"intensity": "high"}},
			{"type": "user.utterance", "id": "j5", "status": "success", "entity": "fuzz-1", "payload": null}]:
		c.receive_message(BridgeMsgPack.encode(junk))
		fed += 1
	c.receive_message("{not json")
	c.receive_message("[1, 2]")
	fed += 2
	check(errors.size() >= good.size(), "refused frames reported (%d of %d)" % [errors.size(), fed])
	# The connection still works.
	var after: BridgeRequest = await finish(npc.say("still there"))
	eq(after.reply_payload().get("reply"), "You said: still there", "a turn after the garbage")
	check(c.is_open(), "still connected")


func test_requests_fail_cleanly_when_the_client_closes() -> void:
	var c := await open_client()
	if c == null:
		return
	var npc := c.init_entity("close-1", "talker")
	var turn := npc.say("Tell me a long story about the old war, please.")
	await wait_until(func() -> bool: return turn.status == "pending", 10.0)
	c.close()
	eq(turn.status, "error", "a waiting request ends when the client closes")
	eq(turn.error_code, BridgeRequest.CONNECTION_LOST, "with connection_lost")
	var late := npc.say("after close")
	eq(late.error_code, BridgeRequest.CONNECTION_LOST, "a request on a closed client fails at once")
	eq(c.state, BridgeClient.State.CLOSED, "closed for good (no reconnect after close())")


func test_a_bridge_request_is_answered_by_the_registered_handler() -> void:
	# The handler path, end to end through the client's routing and encoder: a movement.perform
	# frame as the bridge sends it, answered on the wire by the game's handler.
	var c := BridgeClient.new()
	var sent: Array = []
	c.frame_sent.connect(func(w: Dictionary) -> void: sent.append(w))
	var seen: Array = []
	c.set_request_handler("movement.perform", func(req: BridgeIncomingRequest) -> Variant:
		seen.append(req.actions())
		if req.actions()[0]["name"] == "open_gate":
			return {"feedback": "the %s gate is open" % req.actions()[0]["args"]["gate"]}
		req.fail("no such action")
		return null)
	var perform := {"type": "movement.perform", "id": "b150", "entity": "guard", "ref": "u7",
		"payload": {"actions": [{"name": "open_gate", "args": {"gate": "north"}}]}}
	c.receive_message(BridgeMsgPack.encode(perform))
	eq(seen, [[{"name": "open_gate", "args": {"gate": "north"}}]], "handler saw the actions")
	eq(sent, [{"type": "movement.perform", "id": "b150", "status": "success", "payload": {"feedback": "the north gate is open"}, "entity": "guard"}], "success reply")
	sent.clear()
	perform["id"] = "b151"
	perform["payload"] = {"actions": [{"name": "fly", "args": {}}]}
	c.receive_message(BridgeMsgPack.encode(perform))
	eq(sent, [{"type": "movement.perform", "id": "b151", "status": "error", "payload": {"code": "backend_error", "message": "no such action"}, "entity": "guard"}], "error reply")
	sent.clear()
	c.receive_message(BridgeMsgPack.encode({"type": "movement.scene.request", "id": "b160", "entity": "guard", "payload": null}))
	eq(sent.size(), 1, "an unhandled request is still answered once")
	if sent.size() == 1:
		eq(sent[0]["status"], "error", "unhandled -> error")
		eq(sent[0]["payload"]["code"], "backend_unavailable", "unhandled -> backend_unavailable")
	# A handler that answers later (after an animation).
	sent.clear()
	var held: Array = []
	c.set_request_handler("movement.actions.request", func(req: BridgeIncomingRequest) -> Variant:
		held.append(req)
		return null)
	c.receive_message(BridgeMsgPack.encode({"type": "movement.actions.request", "id": "b161", "entity": "guard", "payload": null}))
	eq(sent.size(), 0, "not answered yet")
	held[0].succeed({"actions": [{"name": "draw_sword", "description": "Draw the sword."}]})
	held[0].succeed({"actions": []})
	eq(sent.size(), 1, "answered exactly once")


func test_movement_perform_from_the_live_bridge() -> void:
	var c := await open_client()
	if c == null:
		return
	var performed: Array = []
	c.set_request_handler("movement.perform", func(req: BridgeIncomingRequest) -> Variant:
		performed.append(req.actions())
		return {"feedback": "The gate is open."})
	var keeper := c.init_entity("keeper-1", "gatekeeper")
	var reg: BridgeRequest = await finish(keeper.register_actions([{"name": "open_gate", "description": "Open the gate",
		"params": {"gate": {"type": "string"}}}]))
	eq(reg.status, "success", "movement.actions accepted: " + reg.error_message)
	var turn: BridgeRequest = await finish(keeper.say("Open the north gate!"))
	eq(turn.status, "success", "turn: " + turn.error_message)
	if performed.is_empty():
		fail("the bridge finished the turn without sending movement.perform (it supports it since 9c6c9a5)")
		return
	eq(performed[0], [{"name": "open_gate", "args": {"gate": "north"}}], "the bridge asked for open_gate(north)")
	eq(turn.reply_payload().get("performed"), [{"name": "open_gate", "args": {"gate": "north"}, "status": "success", "feedback": "The gate is open."}],
		"the handler's feedback reached the turn's result")
	# A handler that fails (later, as after an animation): the LLM reads its message.
	c.set_request_handler("movement.perform", func(req: BridgeIncomingRequest) -> Variant:
		req.fail.call_deferred("the gate is stuck")
		return null)
	var stuck: BridgeRequest = await finish(keeper.say("Open it again!"))
	eq(stuck.reply_payload().get("performed"), [{"name": "open_gate", "args": {"gate": "north"}, "status": "error", "message": "the gate is stuck"}],
		"the handler's error reached the turn's result")


func test_a_request_times_out_on_the_client_side() -> void:
	var c := await open_client()
	if c == null:
		return
	var npc := c.init_entity("slow-1", "talker")
	await finish(c.request("entity.init", {"character": "echo"}, "probe-timeout"))
	var turn := npc.request("user.utterance", {"kind": "verbal", "text": "Tell me a long story."}, 0.3)
	await finish(turn, 5.0)
	eq(turn.error_code, BridgeRequest.CLIENT_TIMEOUT, "no final reply within 0.3 s -> client_timeout")
	eq(c.pending_count(), 0, "the timed-out request is no longer waiting")
	await finish(npc.interrupt())


func test_visemes_none_leaves_them_out() -> void:
	var c := await open_client("msgpack", func(cl: BridgeClient) -> void: cl.visemes = "none")
	if c == null:
		return
	var npc := c.init_entity("novis-1", "speaker")
	var turn: BridgeRequest = await finish(npc.speak("Good evening."), 30.0)
	var chunks := turn.of_type("ai.speech.audio")
	check(chunks.size() > 5, "speech came (%d chunks)" % chunks.size())
	check(chunks.all(func(e: Dictionary) -> bool: return not e["payload"].has("visemes") or e["payload"]["visemes"].is_empty()), "no viseme keyframes")


func test_reconnect_backoff_grows_and_is_capped() -> void:
	var c := BridgeClient.new()
	clients.append(c)
	c.backoff_min_s = 0.05
	c.backoff_max_s = 0.2
	var delays: Array = []
	c.reconnecting.connect(func(_n: int, d: float) -> void: delays.append(d))
	c.connect_to_bridge("ws://127.0.0.1:9")  # nothing listens on the discard port
	await wait_until(func() -> bool: return delays.size() >= 5, 10.0)
	check(delays.size() >= 5, "kept retrying (%d attempts)" % delays.size())
	if delays.size() >= 5:
		check(delays[0] <= 0.05 * 1.2 + 1e-6 and delays[1] > delays[0] * 1.3, "doubles from the minimum: %s" % [delays])
		check(delays.slice(3).all(func(d: float) -> bool: return d <= 0.2 * 1.2 + 1e-6), "capped at the maximum (+-20%% jitter): %s" % [delays])
	c.close()
	eq(c.state, BridgeClient.State.CLOSED, "close() stops the retries")
