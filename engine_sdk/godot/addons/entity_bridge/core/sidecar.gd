class_name BridgeSidecar
extends RefCounted
## Starts the bridge as a sidecar process of the game: [code]entity-bridge serve --port 0
## --port-file F --exit-on-stdin-eof[/code], then waits for the port file that tells the URL.
##
## The bridge's stdin is a pipe held by the game ([method OS.execute_with_pipe]): when the game
## exits, or calls [method stop], the pipe closes and the bridge exits by itself, so no bridge
## outlives its game. Call [method poll] every frame until [signal ready] or [signal failed];
## failures say what went wrong (no such executable, the bridge exited with its own message,
## no port file within [member start_timeout_s]).

signal ready(url: String)
signal failed(message: String)

## Path of the entity-bridge executable (e.g. a venv's bin/entity-bridge, or a bundled build).
var executable: String = "entity-bridge"
## Bridge config file ("" = the bridge's default lookup).
var config_path: String = ""
## 0 lets the OS pick a free port.
var port: int = 0
## Where the bridge writes its URL (an absolute path; default: in the user data folder).
var port_file: String = ""
var extra_args: PackedStringArray = []
var start_timeout_s: float = 30.0

var pid: int = -1
var url: String = ""
var error: String = ""
var _stdio: FileAccess
var _stderr: FileAccess
var _deadline_ms: int = 0
var _waiting: bool = false


## The command line the sidecar runs (without the executable).
func arguments() -> PackedStringArray:
	var args := PackedStringArray(["serve", "--port", str(port), "--port-file", _port_file(), "--exit-on-stdin-eof"])
	if config_path != "":
		args.append_array(["--config", config_path])
	args.append_array(extra_args)
	return args


## Starts the process. Returns OK, or an error (see [member error]) when it could not start.
func start() -> Error:
	url = ""
	error = ""
	var pf := _port_file()
	if FileAccess.file_exists(pf):
		DirAccess.remove_absolute(pf)
	var info: Dictionary = OS.execute_with_pipe(executable, arguments(), false)
	if info.is_empty() or int(info.get("pid", -1)) <= 0:
		return _fail("cannot start the bridge: %s %s (is the path right and executable?)" % [executable, " ".join(arguments())])
	pid = int(info["pid"])
	_stdio = info.get("stdio")
	_stderr = info.get("stderr")
	_deadline_ms = Time.get_ticks_msec() + int(start_timeout_s * 1000.0)
	_waiting = true
	return OK


## Call every frame while starting: true once the URL is known (or after a failure).
func poll() -> bool:
	if not _waiting:
		return true
	var pf := _port_file()
	if FileAccess.file_exists(pf):
		var text := FileAccess.get_file_as_string(pf).strip_edges()
		if text.begins_with("ws://") or text.begins_with("wss://"):
			url = text.split("\n")[0]
			_waiting = false
			ready.emit(url)
			return true
	if not OS.is_process_running(pid):
		_fail("the bridge exited before writing %s: %s" % [pf, _stderr_text()])
		return true
	if Time.get_ticks_msec() > _deadline_ms:
		_fail("no port file %s after %d s; the bridge said: %s" % [pf, int(start_timeout_s), _stderr_text()])
		stop()
		return true
	return false


func is_running() -> bool:
	return pid > 0 and OS.is_process_running(pid)


## Closes the bridge's stdin (it exits on EOF). With [param force], kills it as well.
func stop(force: bool = false) -> void:
	if _stdio != null:
		_stdio.close()
		_stdio = null
	if force and is_running():
		OS.kill(pid)


func _port_file() -> String:
	if port_file == "":
		port_file = ProjectSettings.globalize_path("user://entity-bridge.port")
	return port_file


func _stderr_text() -> String:
	if _stderr == null:
		return "(no stderr)"
	var buf := _stderr.get_buffer(8192)
	var text := buf.get_string_from_utf8().strip_edges()
	return text.right(600) if text != "" else "(nothing on stderr)"


func _fail(message: String) -> Error:
	error = message
	_waiting = false
	failed.emit(message)
	return FAILED
