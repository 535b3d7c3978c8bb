@tool
extends EditorPlugin
## Registers the EntityBridge autoload (the connection every BridgeCharacter uses) and the
## project settings it reads. The node types (BridgeCharacter, BridgeVoice, BridgeVoice3D,
## BridgeLipSync, BridgeMicrophone) are global classes: they show in the Create Node dialog.

const AUTOLOAD := "EntityBridge"
const AUTOLOAD_PATH := "res://addons/entity_bridge/nodes/entity_bridge_autoload.gd"
const SETTINGS := {
	"entity_bridge/connection/url": ["ws://127.0.0.1:8765", TYPE_STRING],
	"entity_bridge/connection/framing": ["msgpack", TYPE_STRING],
	"entity_bridge/connection/auto_connect": [true, TYPE_BOOL],
	"entity_bridge/sidecar/launch": [false, TYPE_BOOL],
	"entity_bridge/sidecar/executable": ["entity-bridge", TYPE_STRING],
	"entity_bridge/sidecar/config": ["", TYPE_STRING],
}


func _enable_plugin() -> void:
	add_autoload_singleton(AUTOLOAD, AUTOLOAD_PATH)
	for key in SETTINGS:
		if not ProjectSettings.has_setting(key):
			ProjectSettings.set_setting(key, SETTINGS[key][0])
		ProjectSettings.set_initial_value(key, SETTINGS[key][0])
		ProjectSettings.add_property_info({"name": key, "type": SETTINGS[key][1]})
	ProjectSettings.save()


func _disable_plugin() -> void:
	remove_autoload_singleton(AUTOLOAD)
