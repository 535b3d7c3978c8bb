class_name BridgeMicChunker
extends RefCounted
## Microphone frames (stereo floats at the mix rate, as [method AudioEffectCapture.get_buffer]
## returns them) -> 20 ms [code]stt.audio[/code] chunks of PCM s16le mono at the hello's
## audio_in rate (16 kHz by default).
##
## Modes: "push_to_talk" (send only while [member talking] is true), "vad" (stream everything:
## the bridge's own VAD finds the speech) and "gated" (a simple energy gate here, with a
## hangover, for games that want less traffic while nobody speaks).

signal chunk(pcm: PackedByteArray, seq: int)
## The energy gate opened or closed ("gated" mode).
signal voice(active: bool)

var in_rate: int
var out_rate: int
var chunk_ms: int = 20
var mode: String = "vad"
var talking: bool = false
## RMS (0..1) above which a 20 ms frame counts as voice in "gated" mode.
var gate_threshold: float = 0.02
var gate_hangover_ms: int = 300
var seq: int = 0
var _step: float
var _pos: float = 0.0
var _prev: float = 0.0
var _pending := PackedFloat32Array()
var _gate_open: bool = false
var _since_voice_ms: int = 0


func _init(p_in_rate: int = 48000, p_out_rate: int = 16000) -> void:
	in_rate = p_in_rate
	out_rate = p_out_rate
	_step = float(in_rate) / float(out_rate)


## Feeds captured frames; emits every complete chunk. Returns how many were emitted.
func feed(frames: PackedVector2Array) -> int:
	var n := frames.size()
	if n == 0:
		return 0
	var last := float(n - 1)
	var count: int = 0 if _pos > last else int(floor((last - _pos) / _step)) + 1
	var start := _pending.size()
	_pending.resize(start + count)
	var p := _pos
	for k in count:
		var i := int(floor(p))
		var frac := p - i
		var a: float = _prev if i < 0 else (frames[i].x + frames[i].y) * 0.5
		var b: float = (frames[i + 1].x + frames[i + 1].y) * 0.5 if i + 1 < n else a
		_pending[start + k] = a + (b - a) * frac
		p += _step
	_pos = p - n
	_prev = (frames[n - 1].x + frames[n - 1].y) * 0.5
	var per_chunk := out_rate * chunk_ms / 1000
	var emitted := 0
	while _pending.size() >= per_chunk:
		var samples := _pending.slice(0, per_chunk)
		_pending = _pending.slice(per_chunk)
		if _should_send(samples):
			chunk.emit(_to_pcm(samples), seq)
			seq += 1
			emitted += 1
	return emitted


func _should_send(samples: PackedFloat32Array) -> bool:
	match mode:
		"push_to_talk":
			return talking
		"gated":
			var sum := 0.0
			for v in samples:
				sum += v * v
			var loud := sqrt(sum / samples.size()) >= gate_threshold
			if loud:
				_since_voice_ms = 0
				if not _gate_open:
					_gate_open = true
					voice.emit(true)
			else:
				_since_voice_ms += chunk_ms
				if _gate_open and _since_voice_ms > gate_hangover_ms:
					_gate_open = false
					voice.emit(false)
			return _gate_open
	return true


static func _to_pcm(samples: PackedFloat32Array) -> PackedByteArray:
	var out := PackedByteArray()
	out.resize(samples.size() * 2)
	for i in samples.size():
		out.encode_s16(i * 2, int(clampf(samples[i], -1.0, 1.0) * 32767.0))
	return out
