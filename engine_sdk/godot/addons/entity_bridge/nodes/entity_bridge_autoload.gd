class_name BridgeAutoload
extends Node
## The EntityBridge autoload: owns the game's one [BridgeClient], polls it every frame, and
## (optionally) launches the bridge as a sidecar first. Every [BridgeCharacter] finds it at
## /root/EntityBridge. Settings come from Project Settings > entity_bridge/*, or from the
## exported properties when the node is placed by hand.

signal connected(hello: Dictionary)
signal disconnected(code: int, reason: String)
## The sidecar or the connection could not be started.
signal failed(message: String)

@export var url: String = "ws://127.0.0.1:8765"
@export_enum("msgpack", "json") var framing: String = "msgpack"
@export var auto_connect: bool = true
@export var launch_sidecar: bool = false
@export var sidecar_executable: String = "entity-bridge"
@export_file var sidecar_config: String = ""

var client: BridgeClient = BridgeClient.new()
var sidecar: BridgeSidecar


func _init() -> void:
	url = ProjectSettings.get_setting("entity_bridge/connection/url", url)
	framing = ProjectSettings.get_setting("entity_bridge/connection/framing", framing)
	auto_connect = ProjectSettings.get_setting("entity_bridge/connection/auto_connect", auto_connect)
	launch_sidecar = ProjectSettings.get_setting("entity_bridge/sidecar/launch", launch_sidecar)
	sidecar_executable = ProjectSettings.get_setting("entity_bridge/sidecar/executable", sidecar_executable)
	sidecar_config = ProjectSettings.get_setting("entity_bridge/sidecar/config", sidecar_config)
	# `godot ... -- --entity-bridge-url ws://...` points a build at another bridge (tools, tests).
	var args := OS.get_cmdline_user_args()
	var at := args.find("--entity-bridge-url")
	if at >= 0 and at + 1 < args.size():
		url = args[at + 1]
		launch_sidecar = false
	client.connected.connect(func(h: Dictionary) -> void: connected.emit(h))
	client.disconnected.connect(func(c: int, r: String) -> void: disconnected.emit(c, r))


func _ready() -> void:
	if auto_connect:
		start()


## Connects (after starting the sidecar when [member launch_sidecar] is on).
func start() -> void:
	client.framing = framing
	# Ask for speech at the mix rate when the bridge offers it: no resampling in GDScript.
	var mix := int(AudioServer.get_mix_rate())
	if client.audio_out.is_empty() and mix in [8000, 16000, 22050, 24000, 44100, 48000]:
		client.audio_out = {"encoding": "pcm_s16le", "sample_rate": mix}
	if launch_sidecar:
		sidecar = BridgeSidecar.new()
		sidecar.executable = sidecar_executable
		sidecar.config_path = ProjectSettings.globalize_path(sidecar_config) if sidecar_config != "" else ""
		sidecar.ready.connect(func(u: String) -> void:
			url = u
			client.connect_to_bridge(u))
		sidecar.failed.connect(func(m: String) -> void:
			push_error("entity_bridge: " + m)
			failed.emit(m))
		sidecar.start()
	else:
		client.connect_to_bridge(url)


func _process(_delta: float) -> void:
	if sidecar != null and sidecar.url == "" and sidecar.error == "":
		sidecar.poll()
	client.poll()


func _exit_tree() -> void:
	client.close(1000, "game closing")
	if sidecar != null:
		sidecar.stop()
