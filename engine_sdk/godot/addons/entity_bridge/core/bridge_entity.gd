class_name BridgeEntity
extends RefCounted
## One entity (an AI character in the scene) on a [BridgeClient] connection: the requests
## about it, and its events as typed signals, in the order the bridge produced them.
##
## Get one from [method BridgeClient.init_entity]. After a reconnect the client creates the
## entity again on the new connection with the same character ([signal reinitialized]).

signal text(delta: String)
signal action(text: String, kind: String)
signal speech_started(speech: String, text: String, sample_rate: int)
## One chunk of speech: PCM s16le mono at the segment's sample rate, with its visemes
## ([t, name, weight] keyframes, t from the segment's start) and per-10 ms volume.
signal audio(speech: String, seq: int, t: int, pcm: PackedByteArray, visemes: Array, volume: Array)
signal visemes(speech: String, t: int, keyframes: Array)
signal speech_ended(speech: String, duration_ms: int)
signal speech_interrupted(speech: String, played_ms: int, heard_text: String)
signal countenance(emotion: String, intensity: float, expression: String, speech: String, t: int)
signal status(payload: Dictionary)
signal transcript(text: String, final: bool)
## Voice activity in this entity's microphone stream (stt.speech.started / stopped).
signal voice_activity(active: bool, t: int)
## An error about this entity: a failed request (code, message) or an error event.
signal error(code: String, message: String)
## A request about this entity got its final reply (success or error).
signal done(request: BridgeRequest)
## Every event about this entity, raw, after the typed signal.
signal event(event: Dictionary)
## The client created the entity again after a reconnect.
signal reinitialized(info: Dictionary)

var name: String
## What entity.init named: a configured character's name or an inline character map.
var character: Variant
## entity.init's success payload (character, display_name, modules).
var info: Dictionary = {}
var _client: WeakRef


func _init(client: RefCounted, p_name: String, p_character: Variant) -> void:
	_client = weakref(client)
	name = p_name
	character = p_character


func client() -> RefCounted:
	return _client.get_ref()


## A player utterance (kind: verbal, nonverbal, combined, nonverbal_delayed): a turn.
func say(text_: String, kind: String = "verbal", speaker: String = "") -> BridgeRequest:
	var p := {"kind": kind, "text": text_}
	if speaker != "":
		p["speaker"] = speaker
	return request("user.utterance", p)


## tts.say: speak this line as is, no LLM.
func speak(text_: String) -> BridgeRequest:
	return request("tts.say", {"text": text_})


## Something happened in the world; respond = true makes the character react now (a turn).
func world_event(text_: String, actor: String = "", respond: bool = false) -> BridgeRequest:
	var p := {"text": text_, "respond": respond}
	if actor != "":
		p["actor"] = actor
	return request("world.event", p)


## Stops the running turn; played_ms (when >= 0) is how much of the current speech was heard.
func interrupt(played_ms: int = -1) -> BridgeRequest:
	return request("entity.interrupt", {"played_ms": played_ms} if played_ms >= 0 else {})


## Registers the actions the character can perform (the bridge may then send movement.perform).
func register_actions(actions: Array) -> BridgeRequest:
	return request("movement.actions", {"actions": actions})


func remove() -> BridgeRequest:
	var req := request("entity.remove", {})
	var c := client()
	if c != null:
		c._forget_entity(name)
	return req


## Reports what the player heard of a segment (the speech player calls this).
func report_progress(speech: String, played_ms: int) -> BridgeRequest:
	return request("playback.progress", {"speech": speech, "played_ms": played_ms})


func report_done(speech: String) -> BridgeRequest:
	return request("playback.done", {"speech": speech})


## One microphone chunk (stt.audio): not answered when it succeeds, so it is not tracked;
## a failure arrives as [signal error].
func send_audio(seq: int, pcm: PackedByteArray) -> String:
	var c := client()
	return "" if c == null else c.send_event("stt.audio", {"seq": seq, "audio": pcm}, name)


func request(type: String, payload: Variant = null, timeout_s: float = -1.0) -> BridgeRequest:
	var c := client()
	if c == null:  # the client was freed: fail like a closed connection, never crash
		var req := BridgeRequest.new("", type, name, payload)
		req._fail_locally(BridgeRequest.CONNECTION_LOST, "the entity's client no longer exists")
		return req
	return c.request(type, payload, name, timeout_s)


func _dispatch(e: Dictionary) -> void:
	var p: Dictionary = e["payload"] if e.get("payload") is Dictionary else {}
	var t: String = str(e.get("type", ""))
	var st: String = str(e.get("status", "new"))
	if st == "error":
		error.emit(_s(p, "code", ""), _s(p, "message", ""))
		event.emit(e)
		return
	match t:
		"ai.text":
			text.emit(_s(p, "delta", ""))
		"ai.action":
			action.emit(_s(p, "text", ""), _s(p, "kind", ""))
		"ai.speech.start":
			speech_started.emit(_s(p, "speech", ""), _s(p, "text", ""), _i(p, "sample_rate", 24000))
		"ai.speech.audio":
			var pcm: Variant = p.get("audio")
			var vis: Array = p["visemes"] if p.get("visemes") is Array else []
			var vol: Array = p["volume"] if p.get("volume") is Array else []
			var speech := _s(p, "speech", "")
			var at := _i(p, "t", 0)
			audio.emit(speech, _i(p, "seq", 0), at, pcm if pcm is PackedByteArray else PackedByteArray(), vis, vol)
			if not vis.is_empty():
				visemes.emit(speech, at, vis)
		"ai.speech.end":
			speech_ended.emit(_s(p, "speech", ""), _i(p, "duration_ms", 0))
		"ai.speech.interrupted":
			speech_interrupted.emit(_s(p, "speech", ""), _i(p, "played_ms", 0), _s(p, "heard_text", ""))
		"ai.countenance":
			countenance.emit(_s(p, "emotion", "neutral"), _f(p, "intensity", 1.0),
				_s(p, "expression", ""), _s(p, "speech", ""), _i(p, "t", -1))
		"ai.status":
			status.emit(p)
		"stt.transcript":
			transcript.emit(_s(p, "text", ""), _b(p, "final", false))
		"stt.speech.started":
			voice_activity.emit(true, _i(p, "t", 0))
		"stt.speech.stopped":
			voice_activity.emit(false, _i(p, "t", 0))
		"error":
			error.emit(_s(p, "code", ""), _s(p, "message", ""))
	event.emit(e)


# Typed reads that never raise on a malformed payload (a wrong type gives the default).
static func _s(p: Dictionary, key: String, d: String) -> String:
	var v: Variant = p.get(key)
	return v if v is String else d


static func _i(p: Dictionary, key: String, d: int) -> int:
	var v: Variant = p.get(key)
	return int(v) if (v is int or v is float) and is_finite(float(v)) else d


static func _f(p: Dictionary, key: String, d: float) -> float:
	var v: Variant = p.get(key)
	return float(v) if v is int or v is float else d


static func _b(p: Dictionary, key: String, d: bool) -> bool:
	var v: Variant = p.get(key)
	return v if v is bool else d
