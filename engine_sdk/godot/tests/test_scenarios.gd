extends "res://tests/test_case.gd"
## The corpus's scripted exchanges (tests/conformance/scenarios/*.json) replayed against a bridge
## on tests/conformance/bridge.toml (run-tests.sh starts it: --scenario-bridge), frame by frame
## with the SDK's framing on a raw WebSocketPeer: each `send` goes out as written, each
## `expect` must match the next event that arrives (type, status, id/ref, code).


func _replay(path: String) -> void:
	var doc: Variant = JSON.parse_string(FileAccess.get_file_as_string(path))
	if not check(doc is Dictionary and doc.get("steps") is Array, "%s parses" % path):
		return
	var name: String = doc.get("name", path.get_file())
	var framing: String = doc.get("framing", "msgpack")
	var ws := WebSocketPeer.new()
	ws.inbound_buffer_size = 1 << 22
	ws.connect_to_url(String(options.get("scenario-bridge", "")))
	var open: bool = await wait_until(func() -> bool:
		ws.poll()
		return ws.get_ready_state() == WebSocketPeer.STATE_OPEN, 10.0)
	if not check(open, "%s: connected to %s" % [name, options.get("scenario-bridge", "?")]):
		return
	var inbox: Array = []
	var step_no := 0
	for step in doc["steps"]:
		step_no += 1
		if step.has("send"):
			# Through the SDK's own JSON reading (ints restored), then its encoder.
			var ev := BridgeFraming.decode(JSON.stringify(step["send"])).event
			var frame: Variant = BridgeFraming.encode(ev, framing)
			if frame is String:
				ws.send_text(frame)
			else:
				ws.send(frame)
			continue
		var want: Dictionary = step["expect"]
		var got_one: bool = await wait_until(func() -> bool:
			ws.poll()
			while ws.get_available_packet_count() > 0:
				var p := ws.get_packet()
				inbox.append(BridgeFraming.decode(p.get_string_from_utf8() if ws.was_string_packet() else p))
			return not inbox.is_empty(), 15.0)
		if not check(got_one, "%s step %d: nothing arrived for %s" % [name, step_no, want]):
			break
		var d: BridgeFraming.Decoded = inbox.pop_front()
		if not check(d.ok(), "%s step %d: undecodable frame: %s" % [name, step_no, d.error]):
			break
		var e := d.event
		var p: Dictionary = e["payload"] if e.get("payload") is Dictionary else {}
		var actual := {"type": e.get("type"), "status": e.get("status", "new") if e.get("status") != null else "new"}
		for key in ["id", "ref"]:
			if want.has(key):
				actual[key] = e.get(key, p.get(key))
		if want.has("code"):
			actual["code"] = p.get("code")
		var same := true
		for key in want:
			if actual.get(key) != want[key]:
				same = false
		if not check(same, "%s step %d: expected %s, got %s" % [name, step_no, want, actual]):
			break
	ws.close()
	check(inbox.is_empty(), "%s: no unexpected events left (%d)" % [name, inbox.size()])


func test_every_scenario_replays() -> void:
	var dir := "%s/tests/conformance/scenarios" % options.get("repo", "")
	var files := Array(DirAccess.get_files_at(dir)).filter(func(f: String) -> bool: return f.ends_with(".json"))
	check(files.size() >= 4, "scenarios found in %s (%d)" % [dir, files.size()])
	for f in files:
		await _replay(dir + "/" + f)
