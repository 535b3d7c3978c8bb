class_name BridgeRequest
extends RefCounted
## One request sent to the bridge, completed by its final reply (exactly one per request).
##
## [codeblock]
## var turn := npc.say("Hello!")
## await turn.wait()
## if turn.is_error():
##     push_warning("%s: %s" % [turn.error_code, turn.error_message])
## else:
##     print(turn.reply_payload()["reply"])
## [/codeblock]
## Outputs the request caused (events whose [code]ref[/code] is this id) are collected in
## [member events], in arrival order, before [signal completed] fires.

## Emitted once, when the final reply (or a client-side failure) arrives.
signal completed(request: BridgeRequest)

## Client-side error codes (never sent by the bridge): the connection closed before the reply,
## or no reply came within the request's timeout.
const CONNECTION_LOST := "connection_lost"
const CLIENT_TIMEOUT := "client_timeout"

var id: String
var type: String
var entity: String
var payload: Variant
## "new" until the bridge answers; "pending" once it started the work; then "success" or "error".
var status: String = "new"
## The final reply event (empty for client-side failures).
var reply: Dictionary = {}
## Every output of this request (events with ref = id), in order.
var events: Array[Dictionary] = []
var error_code: String = ""
var error_message: String = ""
## Time.get_ticks_msec() after which the client gives up waiting (0 = never).
var deadline_ms: int = 0


func _init(p_id: String, p_type: String, p_entity: String, p_payload: Variant) -> void:
	id = p_id
	type = p_type
	entity = p_entity
	payload = p_payload


func is_done() -> bool:
	return status == "success" or status == "error"


func is_error() -> bool:
	return status == "error"


## Awaitable: returns at once when already done, else after [signal completed].
func wait() -> BridgeRequest:
	if not is_done():
		await completed
	return self


## The final reply's payload as a Dictionary (empty when it had none).
func reply_payload() -> Dictionary:
	var p: Variant = reply.get("payload")
	return p if p is Dictionary else {}


## The outputs of one type, e.g. of_type("ai.speech.audio").
func of_type(event_type: String) -> Array[Dictionary]:
	var out: Array[Dictionary] = []
	for e in events:
		if e.get("type") == event_type:
			out.append(e)
	return out


func _finish(final: Dictionary) -> void:
	if is_done():
		return
	reply = final
	status = "error" if final.get("status") == "error" else "success"
	if status == "error":
		var p: Variant = final.get("payload")
		if p is Dictionary:
			error_code = str(p.get("code", ""))
			error_message = str(p.get("message", ""))
	completed.emit(self)


func _fail_locally(code: String, message: String) -> void:
	if is_done():
		return
	status = "error"
	error_code = code
	error_message = message
	completed.emit(self)
