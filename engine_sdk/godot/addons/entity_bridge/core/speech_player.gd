class_name BridgeSpeechPlayer
extends RefCounted
## Plays an entity's speech: chunks from the bridge, resampled to the output's mix rate, fed
## to an [AudioStreamGeneratorPlayback] (or anything with the same two methods,
## [code]get_frames_available()[/code] and [code]push_buffer(PackedVector2Array)[/code]).
##
## It keeps the playback clock of each segment (frames pushed minus frames still buffered),
## reports [code]playback.progress[/code] every [member progress_interval_ms] and
## [code]playback.done[/code] when a segment has been heard to the end, counts underruns (the
## buffer ran dry in the middle of a segment) and flushes everything on interrupt. No scene
## tree needed: [BridgeVoice] wraps it for an AudioStreamPlayer, tests drive it directly.

const _Resampler := preload("res://addons/entity_bridge/core/resampler.gd")

signal segment_started(speech: String)
signal progress(speech: String, played_ms: int)
signal segment_done(speech: String)
## The buffer ran dry while a segment still had audio to come.
signal underrun(total: int)

## The output rate (the generator's mix_rate).
var target_rate: int
var sink: Object
## Frames the sink holds when empty (its buffer length x rate), read on [method set_sink].
var sink_capacity: int = 0
var progress_interval_ms: int = 250
## Returns a fresh, empty sink; used by [method flush] when the sink cannot be cleared while
## it plays (AudioStreamGeneratorPlayback.clear_buffer() refuses then). [BridgeVoice] sets it
## to restart its AudioStreamPlayer. Without it, up to one buffer of cut speech still plays.
var sink_reset: Callable
var underruns: int = 0
## Frames handed to the sink since it was set, and the ones waiting for room.
var frames_pushed: int = 0
var _queue: Array[PackedVector2Array] = []
var _queued_frames: int = 0
var _segments: Array = []  # {speech, rate, resampler, start, frames, ended, last_report}
var _flushed: Dictionary = {}  # speech ids cut by an interrupt: late chunks are dropped
var _starving: bool = false
var _entity: RefCounted


func _init(p_target_rate: int = 48000, p_sink: Object = null) -> void:
	target_rate = p_target_rate
	if p_sink != null:
		set_sink(p_sink)


func set_sink(p_sink: Object) -> void:
	sink = p_sink
	sink_capacity = int(sink.get_frames_available())
	frames_pushed = 0


## Follows a [BridgeEntity]: plays its speech and reports progress and done to the bridge.
func attach(entity: RefCounted) -> void:
	_entity = entity
	entity.speech_started.connect(func(speech: String, _t: String, rate: int) -> void: start_segment(speech, rate))
	entity.audio.connect(func(speech: String, _seq: int, _at: int, pcm: PackedByteArray, _v: Array, _vol: Array) -> void: push_chunk(speech, pcm))
	entity.speech_ended.connect(func(speech: String, _d: int) -> void: end_segment(speech))
	# The bridge cut the segment (barge-in from the microphone, a newer turn): stop it now.
	entity.speech_interrupted.connect(func(speech: String, _p: int, _h: String) -> void:
		if _segment(speech) != null:
			flush()
		_flushed[speech] = true)
	progress.connect(func(speech: String, ms: int) -> void: entity.report_progress(speech, ms))
	segment_done.connect(func(speech: String) -> void: entity.report_done(speech))


func start_segment(speech: String, sample_rate: int) -> void:
	var start: int = frames_pushed + _queued_frames
	_segments.append({"speech": speech, "rate": sample_rate, "resampler": _Resampler.new(sample_rate, target_rate),
		"start": start, "frames": 0, "ended": false, "last_report": -1, "started": false})


## Decodes, resamples and queues one chunk, then fills the sink as far as it has room.
func push_chunk(speech: String, pcm: PackedByteArray) -> void:
	if _flushed.has(speech):
		return
	var seg: Variant = _segment(speech)
	if seg == null:
		start_segment(speech, 24000)
		seg = _segments[-1]
	var frames: PackedVector2Array = seg["resampler"].process(pcm)
	seg["frames"] += frames.size()
	_queue.append(frames)
	_queued_frames += frames.size()
	pump()


func end_segment(speech: String) -> void:
	var seg: Variant = _segment(speech)
	if seg != null and not seg["ended"]:
		seg["ended"] = true
		var tail: PackedVector2Array = seg["resampler"].finish()
		if not tail.is_empty():
			seg["frames"] += tail.size()
			_queue.append(tail)
			_queued_frames += tail.size()
			pump()


## Moves queued frames into the sink (as many as fit) and updates clocks and reports.
## Call every frame ([BridgeVoice] does it in _process).
func update() -> void:
	pump()
	var played := played_frames()
	var buffered := frames_pushed - played
	var active := false
	var finished: Array = []
	for seg in _segments:
		var seg_played: int = clampi(played - int(seg["start"]), 0, int(seg["frames"]))
		var ms: int = seg_played * 1000 / target_rate
		if seg_played > 0 and not seg["started"]:
			seg["started"] = true
			segment_started.emit(seg["speech"])
		if seg["ended"] and seg_played >= int(seg["frames"]):
			finished.append(seg)
			continue
		if seg_played > 0 or seg["frames"] > 0:
			active = true
		if seg_played > 0 and (seg["last_report"] < 0 or ms - int(seg["last_report"]) >= progress_interval_ms):
			seg["last_report"] = ms
			progress.emit(seg["speech"], ms)
	for seg in finished:
		_segments.erase(seg)
		progress.emit(seg["speech"], int(seg["frames"]) * 1000 / target_rate)
		segment_done.emit(seg["speech"])
	var dry := active and buffered <= 0 and _queued_frames == 0
	if dry and not _starving:
		underruns += 1
		underrun.emit(underruns)
	_starving = dry


func pump() -> void:
	if sink == null:
		return
	while not _queue.is_empty():
		var room: int = int(sink.get_frames_available())
		if room <= 0:
			return
		var head: PackedVector2Array = _queue[0]
		if head.size() <= room:
			sink.push_buffer(head)
			_queue.pop_front()
			frames_pushed += head.size()
			_queued_frames -= head.size()
		else:
			sink.push_buffer(head.slice(0, room))
			_queue[0] = head.slice(room)
			frames_pushed += room
			_queued_frames -= room


## Frames the listener has heard: pushed minus what the sink still holds.
func played_frames() -> int:
	if sink == null:
		return 0
	return frames_pushed - maxi(0, sink_capacity - int(sink.get_frames_available()))


## What the listener heard of a segment so far, in ms (-1 for an unknown segment).
func played_ms(speech: String) -> int:
	var seg: Variant = _segment(speech)
	if seg == null:
		return -1
	return clampi(played_frames() - int(seg["start"]), 0, int(seg["frames"])) * 1000 / target_rate


## The segment being heard now ("" when silent).
func current_speech() -> String:
	var played := played_frames()
	for seg in _segments:
		if played < int(seg["start"]) + int(seg["frames"]) or not seg["ended"]:
			return seg["speech"]
	return ""


func is_playing() -> bool:
	return not _segments.is_empty()


## Drops everything not yet heard (interrupt / barge-in) and returns how much of the current
## segment was heard, in ms. Later chunks of the cut segments are ignored.
func flush() -> int:
	var speech := current_speech()
	var heard := played_ms(speech) if speech != "" else 0
	var played := played_frames()
	for seg in _segments:
		_flushed[seg["speech"]] = true
	_segments.clear()
	_queue.clear()
	_queued_frames = 0
	if sink_reset.is_valid():
		set_sink(sink_reset.call())
	elif sink != null and sink.has_method("clear_buffer") and not (sink.has_method("is_playing") and sink.is_playing()):
		sink.clear_buffer()
		frames_pushed = played  # the sink is empty now: heard == pushed
	_starving = false
	return maxi(heard, 0)


func _segment(speech: String) -> Variant:
	for seg in _segments:
		if seg["speech"] == speech:
			return seg
	return null
