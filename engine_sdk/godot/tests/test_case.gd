extends RefCounted
## Base of every test file: methods named `test_*` are run in file order, one result each.
##
## A test fails when any check fails; checks record the message and carry on, so one run
## shows every broken expectation. Waiting helpers always take a timeout: the runner's
## watchdog is only a last resort.

## Set by the runner: the SceneTree (for frames and timers) and the command-line options.
var tree: SceneTree
var options: Dictionary = {}
var failures: PackedStringArray = []
## A test sets this (with a reason) when it cannot run here; the runner counts it as not run
## and prints the reason, never as passed.
var not_run_reason: String = ""


func check(condition: bool, message: String) -> bool:
	if not condition:
		failures.append(message)
	return condition


func eq(actual: Variant, expected: Variant, message: String) -> bool:
	var same: bool = typeof(actual) == typeof(expected) and actual == expected
	if not same:
		failures.append("%s: expected %s (%s), got %s (%s)" % [
			message, _show(expected), type_string(typeof(expected)), _show(actual), type_string(typeof(actual))])
	return same


func near(actual: float, expected: float, tolerance: float, message: String) -> bool:
	var ok := absf(actual - expected) <= tolerance
	if not ok:
		failures.append("%s: expected %s +- %s, got %s" % [message, expected, tolerance, actual])
	return ok


func fail(message: String) -> void:
	failures.append(message)


func _show(v: Variant) -> String:
	var s := str(v)
	return s if s.length() <= 200 else s.substr(0, 200) + "..."


## Clients the waiting helpers poll every frame (what the EntityBridge autoload does in a game).
var clients: Array = []
## Called every frame while waiting (speech players, lip-sync drivers): Callable(delta_s).
var tickers: Array[Callable] = []


## Waits (processing frames, polling clients) until `condition.call()` is true; false on timeout.
func wait_until(condition: Callable, timeout_s: float) -> bool:
	var deadline := Time.get_ticks_msec() + int(timeout_s * 1000.0)
	var last := Time.get_ticks_usec()
	while true:
		for c in clients:
			c.poll()
		var now := Time.get_ticks_usec()
		for t in tickers:
			t.call(float(now - last) / 1e6)
		last = now
		if condition.call():
			return true
		if Time.get_ticks_msec() > deadline:
			return false
		await tree.process_frame
	return false


## Waits for a request's final reply; fails the test on timeout.
func finish(request: RefCounted, timeout_s: float = 20.0) -> RefCounted:
	var ok: bool = await wait_until(func() -> bool: return request.is_done(), timeout_s)
	check(ok, "no final reply to %s %s within %s s" % [request.type, request.id, timeout_s])
	return request


## A client connected to the test bridge (hello done); null (and a failure) if that fails.
func open_client(framing: String = "msgpack", setup: Callable = Callable()) -> BridgeClient:
	var c := BridgeClient.new()
	c.framing = framing
	c.client_name = "godot-tests"
	if setup.is_valid():
		setup.call(c)
	clients.append(c)
	c.connect_to_bridge(String(options.get("bridge", "")))
	var ok: bool = await wait_until(func() -> bool: return c.is_open() or c.state == BridgeClient.State.CLOSED, 10.0)
	if not check(ok and c.is_open(), "connected to %s (%s)" % [options.get("bridge", "?"), framing]):
		return null
	return c


func teardown() -> void:
	for c in clients:
		c.close()
	clients.clear()


func sleep(seconds: float) -> void:
	await tree.create_timer(seconds).timeout


## A directory inside the repository mount that both the chroot and the host see.
func scratch_dir() -> String:
	return String(options.get("scratch", "user://"))
