extends SceneTree
## Headless test runner: `godot --headless --path engine_sdk/godot --script res://tests/run.gd
## -- [--only NAME] [--bridge ws://...] [--repo DIR] [--scratch DIR] [--sidecar FILE]`.
##
## Runs every `test_*` method of every `res://tests/test_*.gd` (or of the files whose name
## contains --only), prints one PASS/FAIL line per test and a closing
## `runner: N passed, N failed` line (run-tests.sh prints it as `godot: ...`), and exits with the number of failures (capped at 100),
## so the exit code is non-zero exactly when something failed. A watchdog ends the run with a
## failure if one test hangs.

const TEST_TIMEOUT_S := 60.0

var _options: Dictionary = {}
var _current: String = ""
var _test_started_ms: int = 0
var _done: bool = false


func _initialize() -> void:
	_options = _parse_args(OS.get_cmdline_user_args())
	_run()


func _process(_delta: float) -> bool:
	# _test_started_ms also moves when a file starts, so a runner stopped by a script error
	# between tests is caught too.
	if not _done and Time.get_ticks_msec() - _test_started_ms > int(TEST_TIMEOUT_S * 1000.0):
		print("FAIL %s: hung for more than %d s (watchdog)" % [_current, TEST_TIMEOUT_S])
		print("runner: watchdog stopped the run")
		_done = true
		quit(100)
	return false


func _parse_args(args: PackedStringArray) -> Dictionary:
	var out: Dictionary = {}
	var i := 0
	while i < args.size():
		var a := args[i]
		if a.begins_with("--") and i + 1 < args.size() and not args[i + 1].begins_with("--"):
			out[a.substr(2)] = args[i + 1]
			i += 2
		elif a.begins_with("--"):
			out[a.substr(2)] = "true"
			i += 1
		else:
			i += 1
	return out


func _test_files() -> PackedStringArray:
	var files: PackedStringArray = []
	for name in DirAccess.get_files_at("res://tests"):
		if name.begins_with("test_") and name.ends_with(".gd") and name != "test_case.gd":
			if not _options.has("only") or name.contains(String(_options["only"])):
				files.append("res://tests/" + name)
	files.sort()
	return files


func _run() -> void:
	var passed := 0
	var failed := 0
	var not_run := 0
	for path in _test_files():
		print("START " + path)
		_test_started_ms = Time.get_ticks_msec()
		var script: GDScript = load(path)
		if script == null or not script.can_instantiate():
			print("FAIL %s: does not compile" % path)
			failed += 1
			continue
		var names: PackedStringArray = []
		for method in script.get_script_method_list():
			var mname: String = method["name"]
			if mname.begins_with("test_") and not names.has(mname):
				names.append(mname)
		names.sort()
		for mname in names:
			_current = "%s::%s" % [path.get_file().get_basename(), mname]
			print("START " + _current)
			var case: RefCounted = script.new()
			if case == null:
				print("FAIL %s: the test file cannot be instantiated" % _current)
				failed += 1
				continue
			case.tree = self
			case.options = _options.duplicate()  # a test may point its own copy elsewhere
			_test_started_ms = Time.get_ticks_msec()
			await case.call(mname)
			if case.has_method("teardown"):
				await case.call("teardown")
			var ms := Time.get_ticks_msec() - _test_started_ms
			if case.not_run_reason != "":
				not_run += 1
				print("NOT RUN %s: %s" % [_current, case.not_run_reason])
			elif case.failures.is_empty():
				passed += 1
				print("PASS %s (%d ms)" % [_current, ms])
			else:
				failed += 1
				print("FAIL %s (%d ms)" % [_current, ms])
				for f in case.failures:
					print("    - " + f)
	_current = ""
	_done = true
	if not_run > 0:
		print("runner: %d not run (see NOT RUN lines; they are not counted as passed)" % not_run)
	print("runner: %d passed, %d failed" % [passed, failed])
	quit(mini(failed, 100))
