extends "res://tests/test_case.gd"
## The sidecar launcher and reconnect, against real bridges started from inside Godot.
##
## Godot runs in a chroot here, the bridge outside it: run-tests.sh passes --sidecar, a wrapper
## script visible in the chroot that execs `chroot /host <repo>/.venv/bin/entity-bridge "$@"`.
## So OS.execute_with_pipe starts the real bridge binary as Godot's child (same pid, stdin =
## Godot's pipe, the same port-file path on both sides). What this does not test: finding a
## bridge executable inside an exported game.

var _sidecars: Array = []


func _sidecar(port: int = 0, config: String = "") -> BridgeSidecar:
	var s := BridgeSidecar.new()
	s.executable = String(options.get("sidecar", ""))
	s.config_path = config if config != "" else String(options.get("bridge-config", ""))
	s.port = port
	s.port_file = "%s/sidecar-%d-%d.url" % [scratch_dir(), Time.get_ticks_usec(), _sidecars.size()]
	_sidecars.append(s)
	return s


func _started(s: BridgeSidecar) -> bool:
	if s.start() != OK:
		return false
	return await wait_until(func() -> bool: return s.poll(), s.start_timeout_s + 5.0) and s.url != ""


func teardown() -> void:
	super.teardown()
	for s in _sidecars:
		s.stop()
	for s in _sidecars:
		await wait_until(func() -> bool: return not s.is_running(), 5.0)
		s.stop(true)


func test_sidecar_starts_a_real_bridge_and_it_exits_with_its_pipe() -> void:
	if String(options.get("sidecar", "")) == "":
		fail("run-tests.sh passes --sidecar")
		return
	var s := _sidecar()
	var ok: bool = await _started(s)
	if not check(ok, "the sidecar came up: " + s.error):
		return
	check(s.url.begins_with("ws://127.0.0.1:"), "URL from the port file: " + s.url)
	options["bridge"] = s.url
	var c := await open_client()
	if c == null:
		return
	var npc := c.init_entity("side-1", "echo")
	var turn: BridgeRequest = await finish(npc.say("over the sidecar"))
	eq(turn.reply_payload().get("reply"), "You said: over the sidecar", "a turn on the sidecar bridge")
	c.close()
	s.stop()  # closes the bridge's stdin: --exit-on-stdin-eof
	var gone: bool = await wait_until(func() -> bool: return not s.is_running(), 10.0)
	check(gone, "the bridge exited when its stdin closed (pid %d)" % s.pid)


func test_sidecar_failures_are_clear() -> void:
	var missing := BridgeSidecar.new()
	missing.executable = "/nonexistent/entity-bridge"
	missing.port_file = scratch_dir() + "/missing.url"
	var err := missing.start()
	if err == OK:
		await wait_until(func() -> bool: return missing.poll(), 10.0)
	check(missing.error != "", "a missing executable fails")
	check(missing.error.contains("/nonexistent/entity-bridge") or missing.error.contains("exited"), "the error says what: " + missing.error)
	var bad := _sidecar(0, "/nonexistent/bridge.toml")
	var ok: bool = await _started(bad)
	check(not ok, "a bridge that cannot start does not look ready")
	check(bad.error.contains("exited before writing"), "error: " + bad.error)
	check(bad.error.contains("nonexistent"), "and carries the bridge's own message: " + bad.error)


func test_reconnect_after_a_bridge_restart_recreates_the_entities() -> void:
	var first := _sidecar()
	if not check(await _started(first), "first bridge: " + first.error):
		return
	var port := int(first.url.get_slice(":", 2).get_slice("/", 0))
	options["bridge"] = first.url
	var c := await open_client("msgpack", func(cl: BridgeClient) -> void:
		cl.backoff_min_s = 0.1
		cl.backoff_max_s = 0.5)
	if c == null:
		return
	var npc := c.init_entity("phoenix", "echo")
	await finish(npc.say("before"))
	var reinit: Array = []
	npc.reinitialized.connect(func(info: Dictionary) -> void: reinit.append(info))
	var drops: Array = []
	c.disconnected.connect(func(code: int, _r: String) -> void: drops.append(code))
	var waiting := npc.say("Tell me a story")  # may be lost with the bridge
	first.stop(true)
	var noticed: bool = await wait_until(func() -> bool: return not drops.is_empty(), 10.0)
	check(noticed, "the client noticed the bridge went away")
	check(waiting.is_done(), "a request in flight ended (%s %s)" % [waiting.status, waiting.error_code])
	await wait_until(func() -> bool: return not first.is_running(), 5.0)
	var second := _sidecar(port)
	if not check(await _started(second), "second bridge on port %d: %s" % [port, second.error]):
		return
	var back: bool = await wait_until(func() -> bool: return c.is_open() and not reinit.is_empty(), 20.0)
	check(back, "reconnected and the entity was created again (attempts: %d)" % c.reconnect_attempt)
	eq(c.stats["connections"], 2, "two hellos")
	var after: BridgeRequest = await finish(npc.say("after"))
	eq(after.reply_payload().get("reply"), "You said: after", "the same handle works on the new bridge")
