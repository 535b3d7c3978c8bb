"""Harmony Link's JSON event API translated onto EEP/1 events: the sans-I/O core.

Harmony Link plugins (VNGE, VTube Studio, ProjectP's Unity connector) open one WebSocket per
entity and exchange JSON text frames of exactly four keys (`event_id`, `event_type`,
`status`, `payload`); see /work/shared/harmony-link-wire.md and docs/harmony-link.md. This
module turns their events into the EEP/1 `Event`s our entities and turns already handle,
and the EEP/1 events a turn emits back into theirs, so a Harmony Link entity is one of our
entities driven by the same turn machinery. It does no I/O: the socket glue
(`bridge.server.harmony_link`) receives frames, performs the `Step`s returned here (start an
entity, submit a request, write a WAV file) and sends the frames.

Speech is whole-utterance in their API: the PCM chunks of each segment (one sentence or
clause) are collected and go out as one AI_SPEECH when the segment ends.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.media.pcm import SUPPORTED_INPUT_RATES
from bridge.config import CharacterConfig, HarmonyLinkConfig
from bridge.media.pcm import encode_wav
from bridge.protocol.envelope import Event

#: The VTS plugin's websockets client refuses frames over 1 MiB (its default max_size).
MAX_FRAME_BYTES = 1024 * 1024
#: Status strings the plugins compare with (Events-API.md's "DONE" is not what they read).
NEW, PENDING, SUCCESS, ERROR = "NEW", "PENDING", "SUCCESS", "ERROR"
ENVELOPE_KEYS = ("event_id", "event_type", "status", "payload")
UTTERANCE_KINDS = {
    "UTTERANCE_VERBAL": "verbal",
    "UTTERANCE_NONVERBAL": "nonverbal",
    "UTTERANCE_COMBINED": "combined",
    "UTTERANCE_NONVERBAL_DELAYED": "nonverbal_delayed",
}
#: Events a plugin may send before INIT_ENTITY succeeded.
BEFORE_INIT = {"INIT_ENTITY"}


class HarmonyLinkError(Exception):
    """A plugin event we cannot take: answered with an ERROR event, the socket stays open."""

    def __init__(self, message: str, event_id: str = "", event_type: str = "ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.event_id = event_id
        self.event_type = event_type


@dataclass(slots=True)
class HLEvent:
    """One Harmony Link event; `to_text()` always writes exactly the four keys."""

    event_id: str
    event_type: str
    status: str
    payload: Any = None

    def to_text(self) -> str:
        return json.dumps(
            {"event_id": self.event_id, "event_type": self.event_type, "status": self.status, "payload": self.payload},
            ensure_ascii=False,
        )


def parse_event(data: str | bytes) -> HLEvent:
    """One received frame as an event; raises HarmonyLinkError with a readable message.

    Extra keys in what a plugin sends are ignored (their own decoder is strict, ours need
    not be); `status` defaults to NEW and `payload` to null as the asyncapi document allows.
    """
    if isinstance(data, bytes):
        raise HarmonyLinkError("Harmony Link events are JSON in WebSocket text frames; got a binary frame")
    try:
        wire = json.loads(data)
    except ValueError as exc:
        raise HarmonyLinkError(f"not JSON: {exc}") from None
    if not isinstance(wire, dict):
        raise HarmonyLinkError(f"an event is a JSON object with {', '.join(ENVELOPE_KEYS)}; got a {type(wire).__name__}")
    event_id, event_type, status = wire.get("event_id"), wire.get("event_type"), wire.get("status", NEW)
    if not isinstance(event_id, str):
        raise HarmonyLinkError("event_id must be a string", "", event_type if isinstance(event_type, str) else "ERROR")
    if not isinstance(event_type, str) or not event_type:
        raise HarmonyLinkError("event_type must be a non-empty string", event_id)
    if not isinstance(status, str):
        raise HarmonyLinkError("status must be a string such as NEW", event_id, event_type)
    return HLEvent(event_id, event_type, status, wire.get("payload"))


def error_event(exc: HarmonyLinkError) -> HLEvent:
    return HLEvent(exc.event_id, exc.event_type, ERROR, {"message": exc.message})


# ------------------------------------------------------------------- steps for the glue


@dataclass
class Send:
    """Send this event to the plugin (after writing `write`, when set, to disk).

    `answer`, when set, is handed to the entity's `EngineRequests` once the event is out:
    the answer to our own request that the plugin will not give (PERFORM_ACTIONS).
    """

    event: HLEvent
    write: tuple[Path, bytes] | None = None
    answer: Event | None = None


@dataclass
class InitEntity:
    """Create our entity for this plugin socket, then send `Translator.init_succeeded()`."""

    entity_id: str
    character: CharacterConfig
    event_id: str


@dataclass
class Submit:
    """Hand an EEP/1 request to the entity (a turn, playback.done, the microphone...)."""

    request: Event


@dataclass
class DeleteFile:
    """Remove an audio file the bridge wrote, now that the plugin played it."""

    path: Path


@dataclass
class Answer:
    """An answer to one of our own EEP/1 requests to the engine (`EngineRequests.answer`)."""

    event: Event


@dataclass
class Listen:
    """Start our microphone listener for this entity (`stt.listen.start` as `request`).

    `sample_rate` is the plugin's microphone rate; `respond` is False in result_mode
    "return" (the plugin sends the transcript back as USER_UTTERANCE itself); `pull_bytes`
    set means pull mode: the glue asks the plugin for that many bytes at a time.
    """

    request: Event
    sample_rate: int
    respond: bool
    pull_bytes: int | None


@dataclass
class MicrophoneData:
    """The plugin's answer to one of our STT_FETCH_MICROPHONE requests."""

    event_id: str
    audio: bytes  # mono
    raw_bytes: int  # what it was on the plugin's side: where the next pull starts


Step = Send | InitEntity | Submit | DeleteFile | Listen | MicrophoneData | Answer


@dataclass
class _Collecting:
    text: str
    sample_rate: int
    chunks: list[bytes] = field(default_factory=list)


@dataclass
class _Origin:
    """Which plugin event an EEP request came from, to answer under its id and type."""

    event_id: str
    event_type: str


class Translator:
    """The state of one plugin socket (one entity): requests in, events out."""

    def __init__(self, settings: HarmonyLinkConfig, characters: dict[str, CharacterConfig]) -> None:
        self.settings = settings
        self.characters = characters
        self.entity_id: str | None = None
        self.character: CharacterConfig | None = None
        self.output_type = settings.output_type
        self.working_dir = Path(settings.working_dir)
        self._ids = 0
        self._origins: dict[str, _Origin] = {}
        self._collecting: dict[str, _Collecting] = {}
        self._files: dict[str, str] = {}  # audio_file path -> our speech id
        self.token = uuid.uuid4().hex[:8]  # keeps file names of two bridges apart
        self.listening = False
        self.transcripts_to_plugin = True  # False in result_mode "process": we answer ourselves
        self.mic_rate = 16000
        self.mic_channels = 1
        self._fetches: set[str] = set()
        self._voiced: set[str] = set()  # requests whose turn sent speech audio
        self._actions: dict[str, dict[str, Any]] = {}
        self._scene_requests: list[str] = []  # our movement.scene.request ids, oldest first

    # ------------------------------------------------------------ plugin -> bridge

    def hello(self) -> dict[str, Any]:
        """The EEP/1 session settings of a Harmony Link entity: unpaced, no visemes.

        `lead_ms` 0 means the speaker does not pace audio in real time: a whole segment is
        wanted as fast as the voice makes it, since it goes out in one piece anyway.
        """
        return {
            "audio_out": {"encoding": "pcm_s16le", "sample_rate": self.settings.sample_rate, "chunk_ms": 200, "lead_ms": 0},
            "audio_in": {"encoding": "pcm_s16le", "sample_rate": 16000},
            "visemes": "none",
        }

    def receive(self, event: HLEvent) -> list[Step]:
        """What to do about one plugin event; raises HarmonyLinkError for a bad one."""
        kind = event.event_type
        if self.entity_id is None and kind not in BEFORE_INIT:
            raise HarmonyLinkError(f"send INIT_ENTITY on this socket before {kind}", event.event_id, kind)
        handler = getattr(self, "_on_" + kind.lower(), None)
        if handler is None:
            raise HarmonyLinkError(f"unknown or unsupported event_type {kind!r}", event.event_id, kind)
        steps: list[Step] = handler(event)
        return steps

    #: Requests the glue performs without an EEP/1 reply: nothing to remember their origin for.
    UNANSWERED = frozenset({"stt.audio", "playback.done", "movement.actions", "movement.scene"})

    def _request(self, event: HLEvent, type_: str, payload: dict[str, Any]) -> Submit:
        self._ids += 1
        request = Event(type_, f"h{self._ids}", payload, entity=self.entity_id)
        if type_ not in self.UNANSWERED:
            self._origins[request.id] = _Origin(event.event_id, event.event_type)
        return Submit(request)

    def _on_init_entity(self, event: HLEvent) -> list[Step]:
        payload = event.payload if isinstance(event.payload, dict) else {}
        entity_id = payload.get("entity_id", payload.get("character_id"))
        if not isinstance(entity_id, str) or not entity_id:
            raise HarmonyLinkError("INIT_ENTITY needs payload.entity_id (a string)", event.event_id, event.event_type)
        if self.entity_id is not None:
            if entity_id == self.entity_id:
                return [Send(self.init_succeeded(event.event_id))]
            raise HarmonyLinkError(
                f"this socket already drives entity {self.entity_id!r}; open one socket per entity", event.event_id, event.event_type
            )
        mapping = self.settings.entity(entity_id, self.characters)
        if mapping is None:
            raise HarmonyLinkError(
                f"no character for entity {entity_id!r}: add [compat.harmony_link.entities.{entity_id}] character = ... "
                f"(configured characters: {', '.join(sorted(self.characters))})",
                event.event_id,
                event.event_type,
            )
        self.output_type = mapping.output_type
        self.character = self.characters[mapping.character]
        return [InitEntity(entity_id, self.character, event.event_id)]

    def init_succeeded(self, event_id: str) -> HLEvent:
        """Only SUCCESS counts: the plugins mark an entity failed on any other status."""
        return HLEvent(event_id, "INIT_ENTITY", SUCCESS, None)

    def entity_started(self, entity_id: str) -> None:
        self.entity_id = entity_id

    def _on_environment_loaded(self, event: HLEvent) -> list[Step]:
        # The scene is up: ask for the actions the plugin offers (it answers REGISTER_ACTIONS).
        ask = HLEvent(self._new_id("request_actions"), "MOVEMENT_V1_REQUEST_ACTIONS", SUCCESS, None)
        return [Send(HLEvent(event.event_id, event.event_type, SUCCESS, None)), Send(ask)]

    # Movement V1 -> our actions and perception (docs/protocol.md, bridge.world)

    def _action(self, item: Any, event: HLEvent) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise HarmonyLinkError("an action needs a name (and a description, examples...)", event.event_id, event.event_type)
        examples = [str(e).replace("{{character}}", self.character.display_name if self.character else "") for e in item.get("examples") or []]
        return {
            "name": item["name"],
            "description": str(item.get("description") or ""),
            # Movement V1 actions take no arguments but are aimed at someone or something
            # ("{{character}} walks over to {{object}}"): an optional target from the scene.
            "params": {"target": {"type": "string", "optional": True, "description": "who or what it is aimed at: a name from the scene"}},
            "examples": examples,
            "confirmations": [str(c) for c in item.get("confirmations") or []],
            "rejections": [str(r) for r in item.get("rejections") or []],
        }

    def _register(self, event: HLEvent, items: list[Any], *, replace: bool) -> list[Step]:
        actions = {a["name"]: a for a in (self._action(item, event) for item in items)}
        self._actions = actions if replace else {**self._actions, **actions}
        return [self._request(event, "movement.actions", {"actions": list(self._actions.values())})]

    def _on_movement_v1_register_actions(self, event: HLEvent) -> list[Step]:
        p = event.payload
        items = p.get("actions") if isinstance(p, dict) else p
        if not isinstance(items, list):
            raise HarmonyLinkError("MOVEMENT_V1_REGISTER_ACTIONS needs payload {actions: [...]}", event.event_id, event.event_type)
        return self._register(event, items, replace=True)

    def _on_movement_v1_register_action(self, event: HLEvent) -> list[Step]:
        return self._register(event, [event.payload], replace=False)

    @staticmethod
    def _vector(value: Any) -> dict[str, float] | None:
        if isinstance(value, dict):
            return {k: float(v) for k, v in value.items() if k in ("x", "y", "z") and isinstance(v, (int, float))}
        if isinstance(value, (list, tuple)) and 2 <= len(value) <= 3 and all(isinstance(v, (int, float)) for v in value):
            return dict(zip(("x", "y", "z"), (float(v) for v in value)))
        return None

    def _scene(self, event: HLEvent) -> dict[str, Any]:
        p = event.payload
        if not isinstance(p, dict):
            raise HarmonyLinkError("MOVEMENT_V1_UPDATE_SCENE_DATA needs payload {characters, objects}", event.event_id, event.event_type)
        scene: dict[str, Any] = {}
        for key in ("characters", "objects"):
            items = []
            for item in p.get(key) or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    raise HarmonyLinkError(f"every one of {key} needs a name", event.event_id, event.event_type)
                out: dict[str, Any] = {"name": item["name"]}
                for field_name in ("position", "orientation"):
                    vector = self._vector(item.get(field_name))
                    if vector is not None:
                        out[field_name] = vector
                action = item.get("current_action", item.get("action"))
                if key == "characters" and isinstance(action, str) and action:
                    out["action"] = action
                if isinstance(item.get("description"), str):
                    out["description"] = item["description"]
                items.append(out)
            scene[key] = items
        return scene

    def _on_movement_v1_update_scene_data(self, event: HLEvent) -> list[Step]:
        scene = self._scene(event)
        if self._scene_requests:  # the answer to our REQUEST_SCENE_DATA
            asked = self._scene_requests.pop(0)
            return [Answer(Event("movement.scene.request", asked, scene, entity=self.entity_id, status="success"))]
        return [self._request(event, "movement.scene", scene)]

    def _on_movement_v1_perform_actions(self, event: HLEvent) -> list[Step]:
        return []  # a plugin's report on actions we sent: already answered when sent

    def _on_user_utterance(self, event: HLEvent) -> list[Step]:
        payload = event.payload
        if not isinstance(payload, dict):
            raise HarmonyLinkError("USER_UTTERANCE needs payload {type, content}", event.event_id, event.event_type)
        kind = UTTERANCE_KINDS.get(str(payload.get("type", "UTTERANCE_VERBAL")))
        content = payload.get("content")
        if kind is None:
            raise HarmonyLinkError(f"unknown utterance type {payload.get('type')!r}; one of {', '.join(UTTERANCE_KINDS)}", event.event_id, event.event_type)
        if not isinstance(content, str) or not content.strip():
            raise HarmonyLinkError("USER_UTTERANCE needs a non-empty content string", event.event_id, event.event_type)
        return [self._request(event, "user.utterance", {"kind": kind, "text": content})]

    def _on_tts_generate_speech(self, event: HLEvent) -> list[Step]:
        payload = event.payload
        text = payload.get("content") if isinstance(payload, dict) else payload  # docs show a bare string
        if not isinstance(text, str) or not text.strip():
            raise HarmonyLinkError("TTS_GENERATE_SPEECH needs payload {type, content} or a string", event.event_id, event.event_type)
        return [self._request(event, "tts.say", {"text": text})]

    def _on_tts_playback_done(self, event: HLEvent) -> list[Step]:
        path = event.payload.get("audio_file") if isinstance(event.payload, dict) else event.payload
        speech = self._files.pop(path, None) if isinstance(path, str) else None
        if speech is None:
            # Never delete a path we did not write ourselves.
            raise HarmonyLinkError(f"TTS_PLAYBACK_DONE names no audio_file of ours: {path!r}", event.event_id, event.event_type)
        return [DeleteFile(Path(path)), self._request(event, "playback.done", {"speech": speech})]

    def _on_chat_history(self, event: HLEvent) -> list[Step]:
        return [self._request(event, "chat.history", {"limit": 50})]

    def history_event(self, origin_id: str, messages: list[dict[str, Any]]) -> HLEvent:
        """CHAT_HISTORY's reply: [{"Name", "Message"}] oldest first, as the plugins read it."""
        assert self.character is not None
        names = {self.character.name: self.character.display_name}  # memory keeps the character's id
        rows = [{"Name": names.get(str(m.get("speaker")), str(m.get("speaker", ""))), "Message": str(m.get("text", ""))} for m in messages]
        return HLEvent(origin_id, "CHAT_HISTORY", SUCCESS, rows)

    def _on_stt_start_listen(self, event: HLEvent) -> list[Step]:
        # ProjectP sends null and then pushes STT_INPUT_AUDIO; VNGE and VTS send the format
        # and answer our STT_FETCH_MICROPHONE pulls from their ring buffer.
        payload = event.payload
        if payload is not None and not isinstance(payload, dict):
            raise HarmonyLinkError("STT_START_LISTEN needs payload {auto_vad, result_mode, channels, bit_depth, sample_rate} or null", event.event_id, event.event_type)
        p = payload or {}
        rate, channels, bits = p.get("sample_rate", 16000), p.get("channels", 1), p.get("bit_depth", 16)
        mode = p.get("result_mode", "process")
        if rate not in SUPPORTED_INPUT_RATES:
            raise HarmonyLinkError(f"sample_rate {rate!r} is not supported; one of {', '.join(map(str, SUPPORTED_INPUT_RATES))}", event.event_id, event.event_type)
        if bits != 16 or channels not in (1, 2):
            raise HarmonyLinkError(f"microphone audio must be 16-bit PCM, mono or stereo; got {bits}-bit, {channels} channels", event.event_id, event.event_type)
        if mode not in ("return", "process"):
            raise HarmonyLinkError(f"result_mode must be return or process, got {mode!r}", event.event_id, event.event_type)
        self.listening = True
        self.mic_rate, self.mic_channels = int(rate), int(channels)
        self.transcripts_to_plugin = mode == "return"
        listen_mode = "vad" if p.get("auto_vad", True) else "push_to_talk"
        submit = self._request(event, "stt.listen.start", {"mode": listen_mode})
        pull = int(rate) * 2 * int(channels) // 5 if payload is not None else None  # 200 ms a pull
        return [Listen(submit.request, int(rate), mode == "process", pull)]

    def _on_stt_stop_listen(self, event: HLEvent) -> list[Step]:
        if not self.listening:
            raise HarmonyLinkError("not listening: send STT_START_LISTEN first", event.event_id, event.event_type)
        self.listening = False
        return [self._request(event, "stt.listen.stop", {})]

    def _mono(self, data: bytes) -> bytes:
        if self.mic_channels == 1:
            return data
        frames = np.frombuffer(data[: len(data) // 4 * 4], dtype="<i2").reshape(-1, 2)
        return frames.mean(axis=1).astype("<i2").tobytes()

    @staticmethod
    def _audio_bytes(event: HLEvent) -> bytes:
        p = event.payload if isinstance(event.payload, dict) else {}
        if isinstance(p.get("audio_data"), dict):  # the newer app's one-shot shape
            p = p["audio_data"]
        encoded = p.get("audio_bytes", p.get("AudioBytes"))
        if not isinstance(encoded, str):
            raise HarmonyLinkError(f"{event.event_type} needs payload.audio_bytes (base64 16-bit PCM)", event.event_id, event.event_type)
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise HarmonyLinkError(f"{event.event_type}: audio_bytes is not valid base64", event.event_id, event.event_type) from None
        if len(data) % 2:
            raise HarmonyLinkError(f"{event.event_type}: {len(data)} bytes is not whole 16-bit samples", event.event_id, event.event_type)
        return data

    def _on_stt_input_audio(self, event: HLEvent) -> list[Step]:
        data = self._audio_bytes(event)
        if self.listening:
            return [self._request(event, "stt.audio", {"audio": self._mono(data)})]
        # Not listening: a one-shot recording, answered with STT_OUTPUT_TEXT.
        p = event.payload if isinstance(event.payload, dict) else {}
        fmt = p.get("audio_data") if isinstance(p.get("audio_data"), dict) else p
        rate = fmt.get("sample_rate", 16000)
        if fmt.get("channels", 1) == 2:
            frames = np.frombuffer(data[: len(data) // 4 * 4], dtype="<i2").reshape(-1, 2)
            data = frames.mean(axis=1).astype("<i2").tobytes()
        return [self._request(event, "stt.transcribe", {"format": "pcm_s16le", "sample_rate": rate, "audio": data})]

    def fetch_request(self, start_byte: int, bytes_count: int) -> HLEvent:
        """Our pull of the plugin's microphone ring buffer (status SUCCESS: they act on nothing else)."""
        event_id = self._new_id("fetch_microphone")
        self._fetches.add(event_id)
        return HLEvent(event_id, "STT_FETCH_MICROPHONE", SUCCESS, {"start_byte": start_byte, "bytes_count": bytes_count})

    def _on_stt_fetch_microphone_result(self, event: HLEvent) -> list[Step]:
        if event.event_id not in self._fetches:
            raise HarmonyLinkError(f"no STT_FETCH_MICROPHONE {event.event_id!r} is waiting for a result", event.event_id, event.event_type)
        self._fetches.discard(event.event_id)
        data = self._audio_bytes(event)
        return [MicrophoneData(event.event_id, self._mono(data), len(data))]

    # ------------------------------------------------------------ bridge -> plugin

    def outbound(self, event: Event) -> list[Send]:
        """The plugin events for one EEP/1 event a turn (or the entity) sent; often none."""
        origin = self._origins.get(event.id) if event.status != "new" else None
        if event.status in ("pending",):
            return []
        if event.status in ("success", "error"):
            self._origins.pop(event.id, None)
            if origin is None:
                return []
            if event.status == "error":
                message = str((event.payload or {}).get("message", "failed"))
                return [Send(HLEvent(origin.event_id, origin.event_type, ERROR, {"message": message}))]
            if event.type == "chat.history":
                return [Send(self.history_event(origin.event_id, list((event.payload or {}).get("messages", []))))]
            if event.type in ("user.utterance", "tts.say") and event.id not in self._voiced:
                # A character without a voice: the plugins still wait for AI_SPEECH, with no audio.
                spoken = str((event.payload or {}).get("spoken", ""))
                if spoken:
                    payload = {"type": "UTTERANCE_VERBAL", "content": spoken, **self._no_audio(), "audio_type": "wav"}
                    return [Send(HLEvent(self._new_id("ai_speech"), "AI_SPEECH", SUCCESS, payload))]
            self._voiced.discard(event.id)
            if event.type == "stt.transcribe":
                text = str((event.payload or {}).get("text", ""))
                return [Send(HLEvent(origin.event_id, "STT_OUTPUT_TEXT", SUCCESS, {"type": "UTTERANCE_VERBAL", "content": text}))]
            return []
        handler = getattr(self, "_out_" + event.type.replace(".", "_"), None)
        return handler(event) if handler is not None else []

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_{self._ids}"

    def _out_ai_speech_start(self, event: Event) -> list[Send]:
        p = event.payload or {}
        if event.ref in self._origins:  # a request the plugin sent (not a turn of the microphone)
            self._voiced.add(event.ref)
        self._collecting[str(p["speech"])] = _Collecting(str(p.get("text", "")), int(p.get("sample_rate", self.settings.sample_rate)))
        return []

    def _out_ai_speech_audio(self, event: Event) -> list[Send]:
        p = event.payload or {}
        segment = self._collecting.get(str(p.get("speech")))
        if segment is not None:
            segment.chunks.append(bytes(p.get("audio", b"")))
        return []

    def _out_ai_speech_interrupted(self, event: Event) -> list[Send]:
        self._collecting.pop(str((event.payload or {}).get("speech")), None)
        return []

    def _out_ai_speech_end(self, event: Event) -> list[Send]:
        speech = str((event.payload or {}).get("speech"))
        segment = self._collecting.pop(speech, None)
        if segment is None:
            return []
        samples = np.frombuffer(b"".join(segment.chunks), dtype="<i2")
        wav = encode_wav(samples, segment.sample_rate)
        payload: dict[str, Any] = {"type": "UTTERANCE_VERBAL", "content": segment.text, "audio_type": "wav"}
        out_id = self._new_id("ai_speech")
        if self.output_type == "base64":
            payload["audio"] = base64.b64encode(wav).decode("ascii")
            sent = HLEvent(out_id, "AI_SPEECH", SUCCESS, payload)
            if len(sent.to_text().encode()) >= MAX_FRAME_BYTES:
                # A frame the plugins cannot take; say so instead of sending it.
                payload["audio"] = ""
                return [Send(sent), Send(HLEvent(out_id, "AI_SPEECH", ERROR, {"message": f"speech {speech} is too long for one frame as base64; use output_type = \"file\""}))]
            return [Send(sent)]
        path = (self.working_dir / f"{self.entity_id}-{self.token}-{speech}.wav").resolve()
        payload["audio_file"] = str(path)
        self._files[str(path)] = speech
        return [Send(HLEvent(out_id, "AI_SPEECH", SUCCESS, payload), write=(path, wav))]

    def _no_audio(self) -> dict[str, Any]:
        return {"audio": ""} if self.output_type == "base64" else {"audio_file": ""}

    def _out_ai_action(self, event: Event) -> list[Send]:
        text = str((event.payload or {}).get("text", ""))
        payload = {"type": "UTTERANCE_NONVERBAL", "content": text, **self._no_audio()}
        return [Send(HLEvent(self._new_id("ai_action"), "AI_ACTION", SUCCESS, payload))]

    def _out_ai_status(self, event: Event) -> list[Send]:
        p = event.payload or {}
        if "mood" not in p and "queue" in p:
            return []  # a quota queue notice: Harmony Link has no event for it
        c = self.character
        assert c is not None
        payload = {
            "gender": str(c.options.get("gender", "")),
            "name": c.display_name,
            "mood": str(p.get("mood", "neutral")),
            "behaviour": str(p.get("behaviour", "")),
            "persona": c.persona,
            "status_message": str(p.get("behaviour", "")),
        }
        return [Send(HLEvent(self._new_id("ai_status"), "AI_STATUS", SUCCESS, payload))]

    def _out_ai_countenance(self, event: Event) -> list[Send]:
        p = event.payload or {}
        payload = {"emotional_state": str(p.get("emotion", "neutral")), "facial_expression": str(p.get("expression") or p.get("emotion", "neutral"))}
        return [Send(HLEvent(self._new_id("countenance"), "AI_COUNTENANCE_UPDATE", SUCCESS, payload))]

    def _out_movement_perform(self, event: Event) -> list[Send]:
        """Our action for the game. The plugins answer nothing, so the action counts as done once sent."""
        actions = [
            {"name": str(a.get("name")), "target": str((a.get("args") or {}).get("target", "")), "args": dict(a.get("args") or {})}
            for a in (event.payload or {}).get("actions", [])
        ]
        done = Event(event.type, event.id, {"feedback": "sent to the game"}, entity=event.entity, status="success")
        return [Send(HLEvent(self._new_id("perform_actions"), "MOVEMENT_V1_PERFORM_ACTIONS", SUCCESS, {"actions": actions}), answer=done)]

    def _out_movement_scene_request(self, event: Event) -> list[Send]:
        self._scene_requests.append(event.id)
        return [Send(HLEvent(self._new_id("request_scene"), "MOVEMENT_V1_REQUEST_SCENE_DATA", SUCCESS, None))]

    def _out_movement_actions_request(self, event: Event) -> list[Send]:
        return [Send(HLEvent(self._new_id("request_actions"), "MOVEMENT_V1_REQUEST_ACTIONS", SUCCESS, None))]

    def _out_stt_speech_started(self, event: Event) -> list[Send]:
        return [Send(HLEvent(self._new_id("speech_started"), "STT_SPEECH_STARTED", SUCCESS, {}))]

    def _out_stt_speech_stopped(self, event: Event) -> list[Send]:
        return [Send(HLEvent(self._new_id("speech_stopped"), "STT_SPEECH_STOPPED", SUCCESS, {}))]

    def _out_stt_transcript(self, event: Event) -> list[Send]:
        if not self.transcripts_to_plugin:
            return []  # result_mode "process": the bridge answers it; the plugin would send it back
        text = str((event.payload or {}).get("text", ""))
        return [Send(HLEvent(self._new_id("stt_output"), "STT_OUTPUT_TEXT", SUCCESS, {"type": "UTTERANCE_VERBAL", "content": text}))]

    def _out_error(self, event: Event) -> list[Send]:
        p = event.payload or {}
        origin = self._origins.get(str(p.get("ref", "")))
        event_id, event_type = (origin.event_id, origin.event_type) if origin else (event.id, "ERROR")
        return [Send(HLEvent(event_id, event_type, ERROR, {"message": str(p.get("message", ""))}))]

    # ------------------------------------------------------------ clean-up

    def leftover_files(self) -> list[Path]:
        """Audio files never reported played (the socket closed first): the glue removes them."""
        files = [Path(p) for p in self._files]
        self._files.clear()
        return files
