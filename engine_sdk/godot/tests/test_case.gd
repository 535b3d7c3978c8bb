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


## Waits (processing frames, so clients poll) until `condition.call()` is true; false on timeout.
func wait_until(condition: Callable, timeout_s: float) -> bool:
	var deadline := Time.get_ticks_msec() + int(timeout_s * 1000.0)
	while not condition.call():
		if Time.get_ticks_msec() > deadline:
			return false
		await tree.process_frame
	return true


func sleep(seconds: float) -> void:
	await tree.create_timer(seconds).timeout


## A directory inside the repository mount that both the chroot and the host see.
func scratch_dir() -> String:
	return String(options.get("scratch", "user://"))
