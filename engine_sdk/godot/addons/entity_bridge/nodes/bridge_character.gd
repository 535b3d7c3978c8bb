@icon("res://addons/entity_bridge/icons/character.svg")
class_name BridgeCharacter
extends Node
## An AI character in the scene: one entity on the bridge, played by a configured character.
##
## Put it on the character's scene, set [member character], add a [BridgeVoice] (or
## [BridgeVoice3D]) and a [BridgeLipSync] as children, then call [method say]. The entity is
## created when the node enters the tree (before its children are ready) and removed when it
## leaves. Its events arrive as the signals of [member entity] ([BridgeEntity]); the common
## ones are repeated here for the editor's signal panel.

signal text(delta: String)
signal action(text: String, kind: String)
signal countenance(emotion: String, intensity: float, expression: String)
signal transcript(text: String, final: bool)
## A turn finished: the final reply's payload (reply, spoken, actions, emotion, interrupted).
signal replied(payload: Dictionary)
signal error(code: String, message: String)

## The entity's id on the connection (default: this node's name).
@export var entity_id: String = ""
## A character name from the bridge's config.
@export var character: String = "mira"
## Or an inline character (name, persona, voice, modules); used when not empty.
@export var inline_character: Dictionary = {}
## The EntityBridge node (default: the autoload at /root/EntityBridge).
@export var bridge_path: NodePath

var entity: BridgeEntity
var bridge: Node


func _enter_tree() -> void:
	if entity != null:
		return
	bridge = get_node_or_null(bridge_path) if not bridge_path.is_empty() else get_node_or_null("/root/EntityBridge")
	if bridge == null:
		push_error("BridgeCharacter %s: no EntityBridge node (enable the Entity Bridge plugin)" % name)
		return
	var id := entity_id if entity_id != "" else String(name)
	entity = bridge.client.init_entity(id, inline_character if not inline_character.is_empty() else character)
	entity.text.connect(func(d: String) -> void: text.emit(d))
	entity.action.connect(func(t: String, k: String) -> void: action.emit(t, k))
	entity.countenance.connect(func(e: String, i: float, x: String, _s: String, _t: int) -> void: countenance.emit(e, i, x))
	entity.transcript.connect(func(t: String, f: bool) -> void: transcript.emit(t, f))
	entity.error.connect(func(c: String, m: String) -> void: error.emit(c, m))
	entity.done.connect(func(r: BridgeRequest) -> void:
		if not r.is_error() and r.type in ["user.utterance", "tts.say", "world.event"]:
			replied.emit(r.reply_payload()))


func _exit_tree() -> void:
	# Leaving the tree ends the character on the bridge too (entering again creates it anew).
	if entity != null and bridge != null and bridge.client.state != BridgeClient.State.CLOSED:
		entity.remove()
	entity = null


## The player says something (a turn). Await [code](...).wait()[/code] for the final reply.
func say(text_: String, kind: String = "verbal") -> BridgeRequest:
	return entity.say(text_, kind)


## Speak a scripted line, no LLM.
func speak(text_: String) -> BridgeRequest:
	return entity.speak(text_)


## Barge-in: stops playback at once (through the voice child, if any) and the bridge's turn,
## telling it how much was heard.
func interrupt() -> BridgeRequest:
	for child in get_children():
		if child.has_method("flush_speech"):
			return entity.interrupt(child.flush_speech())
	return entity.interrupt()
