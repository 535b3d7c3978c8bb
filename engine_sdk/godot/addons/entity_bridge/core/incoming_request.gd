class_name BridgeIncomingRequest
extends RefCounted
## A request the bridge sends to the game (movement.perform, movement.scene.request,
## movement.actions.request), handed to the handler registered with
## [method BridgeClient.set_request_handler].
##
## Answer it exactly once: return a [Dictionary] from the handler (success with that payload),
## or call [method succeed] / [method fail] later (for actions that take time, e.g. after an
## animation). A second answer is ignored; an unanswered request fails with "timeout" after
## [member BridgeClient.handler_timeout_s].

var type: String
var id: String
var entity: String
var payload: Variant
var event: Dictionary
var answered: bool = false
var deadline_ms: int = 0
var _send: Callable


func _init(p_event: Dictionary, p_send: Callable) -> void:
	event = p_event
	type = str(p_event.get("type", ""))
	id = str(p_event.get("id", ""))
	entity = str(p_event.get("entity", ""))
	payload = p_event.get("payload")
	_send = p_send


## The actions of a movement.perform, e.g. [{name, args}].
func actions() -> Array:
	if payload is Dictionary and payload.get("actions") is Array:
		return payload["actions"]
	return []


## Replies success. For movement.perform an optional "feedback" text goes to the LLM.
func succeed(reply_payload: Dictionary = {}) -> void:
	_answer("success", reply_payload)


## Replies error; the message is read by the LLM ("the gate is locked"). The code is one of the
## protocol's codes (backend_error by default).
func fail(message: String, code: String = "backend_error") -> void:
	_answer("error", {"code": code, "message": message})


func _answer(status: String, reply_payload: Dictionary) -> void:
	if answered:
		return
	answered = true
	var wire := {"type": type, "id": id, "status": status, "payload": reply_payload}
	if entity != "":
		wire["entity"] = entity
	_send.call(wire)
