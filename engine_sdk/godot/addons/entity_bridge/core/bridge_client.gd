class_name BridgeClient
extends RefCounted
## A client of the Entity Bridge (protocol EEP/1) on Godot's [WebSocketPeer].
##
## No threads: call [method poll] once a frame (the [code]EntityBridge[/code] autoload does it
## from [code]_process[/code]); every received event is decoded and dispatched during that call,
## in arrival order, as signals of this client, of the [BridgeEntity] it is about, and of the
## [BridgeRequest] it answers. Reading every frame also keeps the bridge from dropping the game
## as a stalled client.
## [codeblock]
## var bridge := BridgeClient.new()
## bridge.connect_to_bridge("ws://127.0.0.1:8765")
## var npc := bridge.init_entity("npc-1", "mira")
## var turn := npc.say("Hello!")
## await turn.wait()          # (something must call bridge.poll() every frame meanwhile)
## [/codeblock]
## When the connection drops, waiting requests fail with [code]connection_lost[/code]; with
## [member auto_reconnect] the client connects again with exponential backoff, says hello, and
## creates every entity again with its character.

const _Framing := preload("res://addons/entity_bridge/core/framing.gd")
const _Request := preload("res://addons/entity_bridge/core/bridge_request.gd")
const _Entity := preload("res://addons/entity_bridge/core/bridge_entity.gd")
const _Incoming := preload("res://addons/entity_bridge/core/incoming_request.gd")

const PROTOCOL_VERSION := 1
## The bridge's requests to the game.
const BRIDGE_REQUESTS: Array[String] = ["movement.perform", "movement.scene.request", "movement.actions.request"]

## The hello succeeded; [param hello] is its success payload (characters, limits, audio formats).
signal connected(hello: Dictionary)
## The connection closed (code and reason of the close frame; 1006 when it just broke).
signal disconnected(code: int, reason: String)
## A reconnect is scheduled in [param delay_s] seconds.
signal reconnecting(attempt: int, delay_s: float)
## Every event the bridge sends that is not a reply to one of our requests, after routing.
signal event_received(event: Dictionary)
## A frame that could not be decoded, an `error` event, or a hello refused.
signal protocol_error(code: String, message: String)
## Every decoded event, before routing (for logs, recorders and tests).
signal frame_received(event: Dictionary)
## Every event the game sends (or queues until the hello succeeds), before encoding.
signal frame_sent(event: Dictionary)

enum State { DISCONNECTED, CONNECTING, HELLO, OPEN, CLOSED }

## "msgpack" (binary frames, default) or "json" (text frames, for debugging).
var framing: String = "msgpack"
var client_name: String = "entity-bridge-godot/0.1"
var token: String = ""
## session.hello's audio_out, e.g. {"sample_rate": 48000, "chunk_ms": 40}; empty = defaults.
var audio_out: Dictionary = {}
var audio_in: Dictionary = {}
var visemes: String = "ovr15"
var text_deltas: bool = true
var scope: String = ""
var auto_reconnect: bool = true
var backoff_min_s: float = 0.25
var backoff_max_s: float = 5.0
var connect_timeout_s: float = 10.0
## Default wait for a final reply; 0 = forever. Turns may take long with a slow LLM.
var request_timeout_s: float = 120.0
## How long a bridge request may stay unanswered before it fails with "timeout".
var handler_timeout_s: float = 30.0

var state: State = State.DISCONNECTED
var url: String = ""
## The hello's success payload of the current connection.
var hello: Dictionary = {}
var close_code: int = -1
var close_reason: String = ""
var reconnect_attempt: int = 0
## Counters for tools and tests: frames in/out, frames refused, connections made.
var stats: Dictionary = {"frames_in": 0, "frames_out": 0, "bad_frames": 0, "connections": 0}

var _ws: WebSocketPeer
var _next_id: int = 0
var _waiting: Dictionary = {}  # id -> BridgeRequest
var _entities: Dictionary = {}  # name -> BridgeEntity
var _handlers: Dictionary = {}  # type -> Callable
var _incoming: Array = []  # unanswered BridgeIncomingRequest
var _outbox: Array = []  # frames waiting for the hello to succeed
var _hello_request: BridgeRequest
var _connect_started_ms: int = 0
var _reconnect_at_ms: int = -1
var _user_closed: bool = false


## Starts connecting; the hello follows by itself. Returns the WebSocketPeer's error code.
func connect_to_bridge(p_url: String) -> Error:
	url = p_url
	_user_closed = false
	return _open()


## Call once a frame: drives the socket, dispatches received events, times out requests and
## schedules reconnects. Returns the number of events dispatched.
func poll() -> int:
	var now := Time.get_ticks_msec()
	if state == State.DISCONNECTED:
		if _reconnect_at_ms >= 0 and now >= _reconnect_at_ms:
			_reconnect_at_ms = -1
			_open()
		return 0
	if state == State.CLOSED or _ws == null:
		return 0
	_ws.poll()
	var ws_state := _ws.get_ready_state()
	var dispatched := 0
	if state == State.CONNECTING:
		if ws_state == WebSocketPeer.STATE_OPEN:
			_send_hello()
		elif ws_state == WebSocketPeer.STATE_CLOSED or now - _connect_started_ms > int(connect_timeout_s * 1000.0):
			_on_closed()
			return 0
	if state == State.HELLO or state == State.OPEN:
		while _ws.get_available_packet_count() > 0:
			var packet := _ws.get_packet()
			var message: Variant = packet.get_string_from_utf8() if _ws.was_string_packet() else packet
			receive_message(message)
			dispatched += 1
			if _ws == null:
				return dispatched
		if _ws.get_ready_state() == WebSocketPeer.STATE_CLOSED:
			_on_closed()
			return dispatched
	_expire(now)
	return dispatched


## Closes the connection for good (no reconnect). Waiting requests fail with connection_lost.
func close(code: int = 1000, reason: String = "") -> void:
	_user_closed = true
	_reconnect_at_ms = -1
	if _ws != null and _ws.get_ready_state() != WebSocketPeer.STATE_CLOSED:
		_ws.close(code, reason)
		# Give the close frame a chance to leave before the peer is dropped.
		_ws.poll()
	_on_closed(code, reason)


func is_open() -> bool:
	return state == State.OPEN


## Sends a request and returns its handle; the reply completes it. timeout_s < 0 uses
## [member request_timeout_s]. Requests made before the hello succeeded are sent right after it.
func request(type: String, payload: Variant = null, entity: String = "", timeout_s: float = -1.0) -> BridgeRequest:
	var req: BridgeRequest = _Request.new(new_id(), type, entity, payload)
	var t := request_timeout_s if timeout_s < 0.0 else timeout_s
	if t > 0.0:
		req.deadline_ms = Time.get_ticks_msec() + int(t * 1000.0)
	_waiting[req.id] = req
	if state == State.CLOSED:
		_waiting.erase(req.id)
		req._fail_locally(BridgeRequest.CONNECTION_LOST, "the client is closed")
		return req
	_send_wire(_wire(type, req.id, entity, payload))
	return req


## Sends an event without tracking a reply (stt.audio). Returns its id.
func send_event(type: String, payload: Variant = null, entity: String = "") -> String:
	var id := new_id()
	_send_wire(_wire(type, id, entity, payload))
	return id


## Creates an entity played by [param character] (a configured name or an inline map).
## The returned handle is usable at once; [member BridgeEntity.info] fills in on success.
func init_entity(entity_name: String, character: Variant) -> BridgeEntity:
	var handle: BridgeEntity = _entities.get(entity_name)
	if handle == null:
		handle = _Entity.new(self, entity_name, character)
		_entities[entity_name] = handle
	handle.character = character
	var req := request("entity.init", {"character": character}, entity_name)
	req.completed.connect(func(r: BridgeRequest) -> void:
		if not r.is_error():
			handle.info = r.reply_payload())
	return handle


## Drops a removed entity's handle (it is not re-created after a reconnect).
func _forget_entity(entity_name: String) -> void:
	_entities.erase(entity_name)


## The handle of a live entity, or null.
func get_entity(entity_name: String) -> BridgeEntity:
	return _entities.get(entity_name)


func entity_names() -> PackedStringArray:
	return PackedStringArray(_entities.keys())


## Registers how the game answers one of the bridge's requests ([constant BRIDGE_REQUESTS]).
## The handler receives a [BridgeIncomingRequest]; it returns a Dictionary (success payload),
## or null and answers later with its succeed()/fail().
func set_request_handler(type: String, handler: Callable) -> void:
	_handlers[type] = handler


## Requests still waiting for their final reply.
func pending_count() -> int:
	return _waiting.size()


func new_id() -> String:
	_next_id += 1
	return "g%d" % _next_id


## Feeds one received WebSocket message (PackedByteArray = binary, String = text) through
## decoding and dispatch. [method poll] calls it; tests and replays may call it directly.
## Never fails: a frame that cannot be decoded is counted and reported by [signal protocol_error].
func receive_message(message: Variant) -> void:
	stats["frames_in"] += 1
	var decoded: _Framing.Decoded = _Framing.decode(message)
	if not decoded.ok():
		stats["bad_frames"] += 1
		protocol_error.emit("bad_frame", decoded.error)
		return
	var e: Dictionary = decoded.event
	if not (e.get("type") is String and e.get("id") is String):
		stats["bad_frames"] += 1
		protocol_error.emit("bad_event", "an event without a string type and id: %s" % str(e).left(200))
		return
	if not e.has("payload"):
		e["payload"] = null
	frame_received.emit(e)
	_route(e)


func _route(e: Dictionary) -> void:
	var type: String = e["type"]
	var id: String = e["id"]
	var status: Variant = e.get("status", "new")
	if status == null:
		status = "new"
	var entity_name: Variant = e.get("entity")
	var handle: BridgeEntity = _entities.get(entity_name) if entity_name is String else null
	if status != "new":
		var req: BridgeRequest = _waiting.get(id)
		if req != null and (req.type == type or type == "error"):
			if status == "pending":
				req.status = "pending"
				return
			_waiting.erase(id)
			if req == _hello_request:
				_on_hello_reply(e)
			req._finish(e)
			if handle != null:
				if req.is_error():
					handle.error.emit(req.error_code, req.error_message)
				handle.done.emit(req)
			return
	if type == "error":
		var p: Dictionary = e["payload"] if e["payload"] is Dictionary else {}
		var ref: Variant = p.get("ref")
		protocol_error.emit(str(p.get("code", "")), str(p.get("message", "")))
		# An error event about one of our frames: no other reply will come for it.
		if ref is String and _waiting.has(ref):
			var failed: BridgeRequest = _waiting[ref]
			_waiting.erase(ref)
			failed._finish({"type": failed.type, "id": failed.id, "status": "error", "payload": p})
			var owner: BridgeEntity = _entities.get(failed.entity)
			if owner != null:
				owner.error.emit(failed.error_code, failed.error_message)
				owner.done.emit(failed)
		event_received.emit(e)
		return
	if status == "new" and type in BRIDGE_REQUESTS:
		_on_bridge_request(e)
		event_received.emit(e)
		return
	var ref_id: Variant = e.get("ref")
	if ref_id is String:
		var owner_req: BridgeRequest = _waiting.get(ref_id)
		if owner_req != null:
			owner_req.events.append(e)
	if handle != null:
		handle._dispatch(e)
	event_received.emit(e)


func _on_bridge_request(e: Dictionary) -> void:
	var incoming: BridgeIncomingRequest = _Incoming.new(e, _send_wire)
	incoming.deadline_ms = Time.get_ticks_msec() + int(handler_timeout_s * 1000.0)
	var handler: Variant = _handlers.get(incoming.type)
	if handler == null or not (handler as Callable).is_valid():
		incoming.fail("this game registered no handler for %s" % incoming.type, "backend_unavailable")
		return
	var result: Variant = (handler as Callable).call(incoming)
	if incoming.answered:
		return
	if result is Dictionary:
		incoming.succeed(result)
	else:
		_incoming.append(incoming)  # answered later, or failed by _expire


func _expire(now: int) -> void:
	if not _waiting.is_empty():
		var late: Array = []
		for req in _waiting.values():
			if req.deadline_ms > 0 and now > req.deadline_ms:
				late.append(req)
		for req in late:
			_waiting.erase(req.id)
			req._fail_locally(BridgeRequest.CLIENT_TIMEOUT, "no reply to %s %s within the client's timeout" % [req.type, req.id])
	if not _incoming.is_empty():
		var still: Array = []
		for inc in _incoming:
			if inc.answered:
				continue
			if now > inc.deadline_ms:
				inc.fail("the game did not answer %s within %d s" % [inc.type, int(handler_timeout_s)], "timeout")
			else:
				still.append(inc)
		_incoming = still


func _wire(type: String, id: String, entity: String, payload: Variant) -> Dictionary:
	var wire := {"type": type, "id": id, "payload": payload}
	if entity != "":
		wire["entity"] = entity
	return wire


func _send_wire(wire: Dictionary) -> void:
	frame_sent.emit(wire)
	if state != State.OPEN and wire.get("type") != "session.hello":
		_outbox.append(wire)
		return
	_transmit(wire)


func _transmit(wire: Dictionary) -> void:
	if _ws == null or _ws.get_ready_state() != WebSocketPeer.STATE_OPEN:
		return
	var frame: Variant = _Framing.encode(wire, framing)
	var err: Error
	if frame is String:
		err = _ws.send_text(frame)
	elif (frame as PackedByteArray).is_empty():
		push_error("entity_bridge: cannot encode %s %s" % [wire.get("type"), wire.get("id")])
		return
	else:
		err = _ws.send(frame, WebSocketPeer.WRITE_MODE_BINARY)
	if err == OK:
		stats["frames_out"] += 1


func _open() -> Error:
	_ws = WebSocketPeer.new()
	# Room for a burst of speech frames between two polls (the bridge allows 1 MiB frames).
	_ws.inbound_buffer_size = 1 << 22
	_ws.outbound_buffer_size = 1 << 21
	_ws.max_queued_packets = 8192
	state = State.CONNECTING
	_connect_started_ms = Time.get_ticks_msec()
	var err := _ws.connect_to_url(url)
	if err != OK:
		_on_closed(-1, "connect_to_url failed: %s" % error_string(err))
	return err


func _send_hello() -> void:
	state = State.HELLO
	var p := {"protocol": PROTOCOL_VERSION, "client": client_name, "visemes": visemes, "text_deltas": text_deltas}
	if token != "":
		p["token"] = token
	if not audio_out.is_empty():
		p["audio_out"] = audio_out
	if not audio_in.is_empty():
		p["audio_in"] = audio_in
	if scope != "":
		p["scope"] = scope
	_hello_request = _Request.new(new_id(), "session.hello", "", p)
	_hello_request.deadline_ms = Time.get_ticks_msec() + int(connect_timeout_s * 1000.0)
	_waiting[_hello_request.id] = _hello_request
	_transmit(_wire("session.hello", _hello_request.id, "", p))


func _on_hello_reply(e: Dictionary) -> void:
	if e.get("status") != "success":
		var p: Dictionary = e["payload"] if e.get("payload") is Dictionary else {}
		protocol_error.emit(str(p.get("code", "")), "hello refused: %s" % str(p.get("message", "")))
		# A refused hello (version, token) will be refused again: do not retry.
		_user_closed = true
		return
	hello = e["payload"] if e.get("payload") is Dictionary else {}
	state = State.OPEN
	stats["connections"] += 1
	var again: bool = reconnect_attempt > 0 or int(stats["connections"]) > 1
	reconnect_attempt = 0
	# Entities of the previous connection first, then whatever was asked while connecting.
	var queued := _outbox
	_outbox = []
	if again:
		for handle in _entities.values():
			var h: BridgeEntity = handle
			var already := false
			for w in queued:
				if w.get("type") == "entity.init" and w.get("entity") == h.name:
					already = true
			if already:
				continue
			var req := request("entity.init", {"character": h.character}, h.name)
			req.completed.connect(func(r: BridgeRequest) -> void:
				if not r.is_error():
					h.info = r.reply_payload()
					h.reinitialized.emit(h.info))
	for w in queued:
		_transmit(w)
	connected.emit(hello)


func _on_closed(code: int = -2, reason: String = "") -> void:
	if _ws != null:
		close_code = _ws.get_close_code() if code == -2 else code
		close_reason = _ws.get_close_reason() if code == -2 else reason
	_ws = null
	var was_open := state == State.OPEN or state == State.HELLO
	_hello_request = null
	_outbox.clear()
	var lost := _waiting.values()
	_waiting.clear()
	for req in lost:
		req._fail_locally(BridgeRequest.CONNECTION_LOST, "the connection closed (code %d) before the reply" % close_code)
	_incoming.clear()
	if _user_closed or not auto_reconnect:
		state = State.CLOSED
	else:
		state = State.DISCONNECTED
		var delay := minf(backoff_max_s, backoff_min_s * pow(2.0, float(reconnect_attempt)))
		delay *= randf_range(0.8, 1.2)  # spread reconnects of many games after a bridge restart
		reconnect_attempt += 1
		_reconnect_at_ms = Time.get_ticks_msec() + int(delay * 1000.0)
		reconnecting.emit(reconnect_attempt, delay)
	if was_open:
		disconnected.emit(close_code, close_reason)
