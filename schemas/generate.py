"""Generate the protocol's JSON Schemas and AsyncAPI document from one description.

Why generated: the 33 event types share one envelope and one status lifecycle (new ->
pending -> success | error). Written by hand, 33 files would drift apart on exactly the
parts that must be identical (id limits, the error payload, which statuses carry which
payload). Here each event states only what is its own; `envelope()` adds the rest.

Run by hand after editing, from the repository root:

    .venv/bin/python schemas/generate.py          # rewrite schemas/events/*.json and asyncapi.yaml
    .venv/bin/python schemas/generate.py --check  # exit 1 if the committed files are stale
    python3 schemas/generate.py --check           # any Python with jsonschema + PyYAML: also
                                                  # checks the draft 2020-12 metaschema

`tests/test_schemas.py` fails when the committed files differ from what this script builds.

Conventions the bridge relies on (see docs/protocol.md):
- every file is self-contained (no `$ref` at all), because the bridge compiles each one on
  its own with fastjsonschema;
- binary fields are `{"type": "string", "contentEncoding": "base64"}` written directly on
  the payload property (the bridge finds them by that keyword and accepts bytes there when
  the frame was MessagePack), and nothing else uses `contentEncoding`;
- unknown fields are tolerated everywhere (no `additionalProperties: false`), so a newer
  client or bridge can add fields without breaking an older peer; wrong types are not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Schema = dict[str, Any]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
PROTOCOL_VERSION = 1
ROOT = Path(__file__).resolve().parent

STATUSES = ["new", "pending", "success", "error"]
ERROR_CODES = [
    "bad_frame",
    "bad_event",
    "unknown_type",
    "hello_required",
    "unsupported_version",
    "unauthorized",
    "unknown_entity",
    "entity_exists",
    "unknown_character",
    "too_large",
    "rate_limited",
    "busy",
    "backend_unavailable",
    "backend_error",
    "timeout",
    "cancelled",
    "internal",
]
SAMPLE_RATES = [8000, 16000, 22050, 24000, 44100, 48000]
VISEMES = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"]
EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "afraid", "disgusted"]
UTTERANCE_KINDS = ["verbal", "nonverbal", "combined", "nonverbal_delayed"]


# --------------------------------------------------------------------------- building blocks


def _describe(schema: Schema, description: str | None) -> Schema:
    if description:
        schema["description"] = description
    return schema


def string(description: str | None = None, *, min_length: int | None = None, max_length: int | None = None) -> Schema:
    schema: Schema = {"type": "string"}
    if min_length is not None:
        schema["minLength"] = min_length
    if max_length is not None:
        schema["maxLength"] = max_length
    return _describe(schema, description)


def name(description: str | None = None) -> Schema:
    """An identifier chosen by a peer (event id, entity, speech id): 1..128 characters."""
    return string(description, min_length=1, max_length=128)


def integer(description: str | None = None, *, minimum: int | None = None, maximum: int | None = None) -> Schema:
    schema: Schema = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return _describe(schema, description)


def ms(description: str) -> Schema:
    """A time or duration: integer milliseconds, never negative."""
    return integer(description, minimum=0)


def unit(description: str) -> Schema:
    """A fraction such as an intensity, weight or volume: 0..1."""
    return _describe({"type": "number", "minimum": 0, "maximum": 1}, description)


def boolean(description: str) -> Schema:
    return _describe({"type": "boolean"}, description)


def enum(values: list[Any], description: str | None = None) -> Schema:
    return _describe({"enum": list(values)}, description)


def binary(description: str) -> Schema:
    """Bytes: MessagePack `bin` in binary frames, base64 text in JSON frames."""
    return _describe({"type": "string", "contentEncoding": "base64"}, description)


def array(items: Schema, description: str | None = None, *, min_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "items": items}
    if min_items is not None:
        schema["minItems"] = min_items
    return _describe(schema, description)


def obj(
    properties: dict[str, Schema] | None = None,
    required: list[str] | None = None,
    description: str | None = None,
    *,
    nullable: bool = False,
    values: Schema | None = None,
) -> Schema:
    """An object; `values` constrains the type of fields not listed (it never forbids them)."""
    schema: Schema = {"type": ["object", "null"] if nullable else "object"}
    _describe(schema, description)
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = list(required)
    if values is not None:
        schema["additionalProperties"] = values
    return schema


def nothing(description: str = "No fields; send null or an empty map.") -> Schema:
    return obj(description=description, nullable=True)


# Shared shapes, copied into every schema that uses them (files stay self-contained).


def audio_out_schema(required: list[str] | None = None) -> Schema:
    return obj(
        {
            "encoding": enum(["pcm_s16le"], "Sample format of ai.speech.audio: 16-bit signed little-endian PCM, mono."),
            "sample_rate": enum(SAMPLE_RATES, "Sample rate of ai.speech.audio in Hz."),
            "chunk_ms": integer("Length of each ai.speech.audio chunk.", minimum=10, maximum=1000),
            "lead_ms": integer(
                "How far ahead of real time the bridge may send audio (the engine's buffer).", minimum=0, maximum=10000
            ),
        },
        required,
        "Speech audio the engine wants to receive.",
    )


def audio_in_schema(required: list[str] | None = None) -> Schema:
    return obj(
        {
            "encoding": enum(["pcm_s16le"], "Sample format of stt.audio: 16-bit signed little-endian PCM, mono."),
            "sample_rate": enum(SAMPLE_RATES, "Sample rate of stt.audio in Hz."),
        },
        required,
        "Microphone audio the engine will send with stt.audio.",
    )


def error_payload(with_ref: bool = False) -> Schema:
    properties: dict[str, Schema] = {
        "code": enum(ERROR_CODES, "What went wrong, from the fixed list of error codes."),
        "message": string("For the plugin developer: what was wrong and what to do.", min_length=1),
    }
    if with_ref:
        properties["ref"] = name("The id of the frame this answers, when it could be read.")
    return obj(properties, ["code", "message"])


def turn_result() -> dict[str, Schema]:
    return {
        "reply": string("The character's full reply text, actions included."),
        "spoken": string("The text actually spoken (the heard part, if interrupted)."),
        "actions": array(string(), "Non-verbal actions in the reply, e.g. \"waves\"."),
        "emotion": enum(EMOTIONS, "The emotion the reply ended on, when a countenance module runs."),
        "interrupted": boolean("True when the turn was cut short but still produced a reply."),
        "performed": array(
            obj(
                {
                    "name": name("The action's name."),
                    "args": obj(description="The arguments it was performed with."),
                    "status": enum(["success", "error", "timeout"], "The engine's answer (timeout: none came in time)."),
                    "feedback": string("The engine's feedback on success."),
                    "message": string("The engine's reason on error."),
                },
                ["name", "args", "status"],
            ),
            "Actions sent to the engine with movement.perform during the turn, in order, with their results.",
        ),
        "follow_up": string("The line the character said after the results came back (react_to_action_result)."),
        "timing": turn_timing(),
    }


def turn_timing() -> Schema:
    """Optional: where the turn's time went, measured by the bridge (bridge/character/timing.py)."""
    since = "Milliseconds from the bridge accepting the request to "
    return obj(
        {
            "llm_first_token_ms": ms(since + "the LLM's first token."),
            "first_segment_ms": ms(since + "the first piece of speech handed to the voice."),
            "tts_first_audio_ms": ms(since + "the first ai.speech.audio chunk sent."),
            "total_ms": ms(since + "the final reply."),
            "queued_ms": ms("A duration, not a moment: how long the turn's provider requests waited in module quota queues, summed."),
        },
        description="Where the turn's time went, as the bridge measured it; marks that did not happen are left out.",
    )


def scene_result(key: str) -> Schema:
    """The success payload of scene.utterance (`replies`) and scene.converse (`lines`)."""
    line = obj(
        {
            "entity": name("The entity that spoke."),
            "speaker": string("Its display name."),
            "status": enum(["success", "error"], "How its turn ended."),
            "reply": string("Its full reply."),
            "spoken": string("What it said (the heard part, if cut short)."),
            "code": enum(ERROR_CODES, "Why its turn failed."),
            "message": string("The failure, in words."),
        },
        ["entity", "speaker", "status"],
    )
    properties: dict[str, Schema] = {
        key: array(line, "The lines said, in order (answers and reactions)."),
        "interrupted": boolean("True when a newer player line in the scene cut this short."),
    }
    if key == "replies":
        properties["heard_by"] = array(string(), "The entities that heard the player's line.")
    return obj(properties, [key, "interrupted"])


def vector(description: str) -> Schema:
    return obj(
        {"x": {"type": "number"}, "y": {"type": "number"}, "z": {"type": "number"}},
        ["x", "y"],
        description,
    )


def movement_actions() -> Schema:
    return array(
        obj(
            {
                "name": name("The action's name, as the LLM will use it."),
                "description": string("What the action does, for the LLM."),
                "params": obj(description="The action's parameters: name -> description or JSON Schema."),
                "examples": array(string(), "Example uses, for the LLM."),
                "confirmations": array(string(), "Lines the character may say when it agrees to act (Harmony Link)."),
                "rejections": array(string(), "Lines the character may say when it refuses (Harmony Link)."),
            },
            ["name"],
        ),
        "Actions the character can perform in the game.",
    )


def movement_scene() -> dict[str, Schema]:
    return {
        "scene": name("Optional: the scene the entity is in; it joins it (as with scene.join) at its own position in `characters`."),
        "characters": array(
            obj(
                {
                    "name": name("The character's name (an entity or another NPC / the player)."),
                    "position": vector("World position."),
                    "orientation": vector("Euler angles in degrees."),
                    "action": string("What the character is doing right now."),
                },
                ["name"],
            ),
            "Characters in the scene.",
        ),
        "objects": array(
            obj(
                {
                    "name": name("The object's name."),
                    "position": vector("World position."),
                    "description": string("What the object is, for the LLM."),
                },
                ["name"],
            ),
            "Objects in the scene.",
        ),
    }


def viseme_key() -> Schema:
    """One viseme keyframe `[t, name, weight]`.

    2020-12 checks the positions with `prefixItems`. Validators of draft 7 and older
    (fastjsonschema among them) do not know `prefixItems`; for them `items` still checks
    that each element is one of the three kinds and the length is exactly three.
    """
    t = ms("Time of the keyframe from the start of the speech segment.")
    viseme = enum(VISEMES, "Viseme name (Oculus/Meta 15).")
    weight = unit("Weight of the viseme at that time.")
    return {
        "type": "array",
        "description": "A keyframe: [t (ms from speech start), viseme name, weight 0..1].",
        "prefixItems": [t, viseme, weight],
        "items": {"anyOf": [dict(t), dict(viseme), dict(weight)]},
        "minItems": 3,
        "maxItems": 3,
    }


# --------------------------------------------------------------------------- the events


@dataclass(frozen=True)
class EventSpec:
    type: str
    direction: Literal["client", "bridge"]
    summary: str
    #: The payload of the event itself (status new or absent).
    payload: Schema
    #: The payload of its `success` reply.
    success: Schema
    #: Whether `entity` is required (on everything but error replies).
    entity_scoped: bool = True


def _events() -> list[EventSpec]:
    any_reply = nothing("No defined fields; null or a map.")
    return [
        # ------------------------------------------------------------ client -> bridge
        EventSpec(
            "session.hello",
            "client",
            "Opens the session: protocol version, token, audio formats, options. Must be the first event.",
            obj(
                {
                    "protocol": integer("Protocol version the client speaks; this document is version 1."),
                    "client": string("Name and version of the engine plugin, for logs.", max_length=256),
                    "token": string("Shared secret, when the bridge is configured with one."),
                    "audio_out": audio_out_schema(),
                    "audio_in": audio_in_schema(),
                    "visemes": enum(["ovr15", "none"], "Viseme keyframes in ai.speech.audio, or none."),
                    "text_deltas": boolean("Send ai.text deltas while the reply streams."),
                    "scope": name("Player or save-game id: conversation memory is kept per scope."),
                },
                ["protocol"],
            ),
            obj(
                {
                    "session": name("Id of this session, for logs."),
                    "server": string("Name and version of the bridge."),
                    "protocol": integer("Protocol version the bridge speaks."),
                    "characters": array(string(), "Names of the characters in the bridge's config."),
                    "limits": obj(
                        {
                            "max_frame_bytes": integer("Largest frame the bridge accepts.", minimum=1),
                            "max_text_chars": integer("Longest text field the bridge accepts.", minimum=1),
                            "max_entities": integer("Most entities on one connection.", minimum=1),
                            "events_per_second": integer("Sustained inbound event rate allowed.", minimum=1),
                        },
                        ["max_frame_bytes", "max_text_chars", "max_entities", "events_per_second"],
                        "Limits of this session.",
                        values={"type": "integer"},
                    ),
                    "audio_out": audio_out_schema(["encoding", "sample_rate", "chunk_ms", "lead_ms"]),
                    "audio_in": audio_in_schema(["encoding", "sample_rate"]),
                },
                ["session", "server", "protocol", "characters", "limits", "audio_out", "audio_in"],
            ),
            entity_scoped=False,
        ),
        EventSpec(
            "entity.init",
            "client",
            "Creates an entity (the envelope's `entity`) driven by a configured or inline character.",
            obj(
                {
                    "character": {
                        "description": "A character name from the bridge's config, or an inline character.",
                        "anyOf": [
                            name("Name of a configured character."),
                            obj(
                                {
                                    "name": name("The character's name."),
                                    "display_name": string("Name the LLM uses for the character."),
                                    "persona": string("Who the character is, for the LLM."),
                                    "greeting": string("What the character says first."),
                                    "voice": string("Voice id of the TTS module."),
                                    "modules": obj(
                                        {
                                            "llm": string("Module name from config."),
                                            "tts": string("Module name from config."),
                                            "stt": string("Module name from config."),
                                            "countenance": string("Module name from config."),
                                        },
                                        description="Module names per kind; \"none\" turns one off.",
                                        values={"type": "string"},
                                    ),
                                },
                                ["name"],
                                "An inline character.",
                            ),
                        ],
                    }
                },
                ["character"],
            ),
            obj(
                {
                    "character": string("The character's name."),
                    "display_name": string("The character's display name."),
                    "modules": obj(description="Module in use per kind.", values={"type": "string"}),
                },
                ["character", "display_name", "modules"],
            ),
        ),
        EventSpec(
            "entity.remove",
            "client",
            "Removes the entity; its running turn ends with error `cancelled`.",
            nothing(),
            any_reply,
        ),
        EventSpec(
            "scene.loaded",
            "client",
            "The game's scene is ready. Session-wide: `entity` is optional.",
            nothing(),
            obj(
                {"entities": array(string(), "Entities alive on this connection.")},
                nullable=True,
            ),
            entity_scoped=False,
        ),
        EventSpec(
            "user.utterance",
            "client",
            "The player says or does something to the character: starts a turn.",
            obj(
                {
                    "kind": enum(UTTERANCE_KINDS, "Spoken words, a non-verbal act, or both."),
                    "text": string("What the player said or did."),
                    "speaker": string("Who speaks, when not the player."),
                },
                ["kind", "text"],
            ),
            obj(turn_result(), ["reply", "spoken"]),
        ),
        EventSpec(
            "world.event",
            "client",
            "Something happened in the game; it becomes context for the LLM, or starts a turn.",
            obj(
                {
                    "text": string("What happened, in words."),
                    "actor": string("Who did it."),
                    "respond": boolean("Start a turn so the character reacts (default false)."),
                },
                ["text"],
            ),
            obj(turn_result(), nullable=True, description="Empty, or the turn's result when `respond` was true."),
        ),
        EventSpec(
            "tts.say",
            "client",
            "The character speaks the given text as is (no LLM): starts a turn.",
            obj({"text": string("The text to speak.")}, ["text"]),
            obj({"duration_ms": ms("Length of the speech produced."), "timing": turn_timing()}, ["duration_ms"]),
        ),
        EventSpec(
            "entity.interrupt",
            "client",
            "Barge-in: stop the entity's current turn now.",
            obj(
                {"played_ms": ms("How much of the current speech the player heard, if known.")},
                nullable=True,
            ),
            obj({"interrupted": boolean("True when a turn was running and was stopped.")}, ["interrupted"]),
        ),
        EventSpec(
            "playback.progress",
            "client",
            "How much of a speech segment the player has actually heard.",
            obj(
                {
                    "speech": name("The speech segment (from ai.speech.start)."),
                    "played_ms": ms("Audio played so far, from the segment's start."),
                },
                ["speech", "played_ms"],
            ),
            any_reply,
        ),
        EventSpec(
            "playback.done",
            "client",
            "A speech segment finished playing.",
            obj({"speech": name("The speech segment (from ai.speech.start).")}, ["speech"]),
            any_reply,
        ),
        EventSpec(
            "chat.history",
            "client",
            "The entity's conversation so far (in this scope), a page at a time.",
            obj(
                {
                    "limit": integer("At most this many of the latest messages (default 50).", minimum=1, maximum=1000),
                    "before": integer("Only messages older than this cursor (the `before` of the previous page).", minimum=1),
                },
                nullable=True,
            ),
            obj(
                {
                    "messages": array(
                        obj(
                            {
                                "speaker": string("Who spoke: the player, the character, or another speaker."),
                                "text": string("What was said or done."),
                                "kind": string("verbal, nonverbal, combined, world, ..."),
                                "at": ms("When, in milliseconds since the Unix epoch."),
                                "interrupted": boolean("True when the line was cut short."),
                            },
                            ["speaker", "text", "at"],
                        ),
                        "Oldest first.",
                    ),
                    "more": boolean("True when older messages exist (or did not fit in one frame): ask again with `before`."),
                    "before": integer("Cursor for the next (older) page; present when `more` is true.", minimum=1),
                },
                ["messages"],
            ),
        ),
        EventSpec(
            "chat.clear",
            "client",
            "Forget the entity's conversation (in this scope).",
            nothing(),
            obj({"cleared": integer("How many messages were deleted.", minimum=0)}, ["cleared"]),
        ),
        EventSpec(
            "stt.audio",
            "client",
            "A chunk of the entity's microphone stream (format from hello `audio_in`). Only failures are answered.",
            obj(
                {
                    "audio": binary("PCM samples in the hello's audio_in format."),
                    "seq": integer("Chunk number, counting up from 0 per stream.", minimum=0),
                },
                ["audio", "seq"],
            ),
            any_reply,
        ),
        EventSpec(
            "stt.listen.start",
            "client",
            "Start listening to the microphone stream.",
            obj(
                {"mode": enum(["vad", "push_to_talk"], "vad: voice activity ends a segment; push_to_talk: stt.listen.stop does.")},
                nullable=True,
            ),
            any_reply,
        ),
        EventSpec(
            "stt.listen.stop",
            "client",
            "Stop listening; in push-to-talk mode this ends the segment.",
            obj({"mode": enum(["vad", "push_to_talk"], "The mode being stopped.")}, nullable=True),
            any_reply,
        ),
        EventSpec(
            "stt.transcribe",
            "client",
            "One-shot transcription of a recording.",
            obj(
                {
                    "audio": binary("A WAV file, or raw PCM samples."),
                    "format": enum(["wav", "pcm_s16le"], "wav (header gives the rate) or raw 16-bit PCM mono."),
                    "sample_rate": enum(SAMPLE_RATES, "Sample rate of raw PCM in Hz (default: hello audio_in)."),
                },
                ["audio", "format"],
            ),
            obj(
                {
                    "text": string("The transcript."),
                    "language": string("Detected language code, when known."),
                    "words": array(
                        obj(
                            {
                                "word": string(),
                                "start_ms": ms("Start, from the start of the audio."),
                                "end_ms": ms("End, from the start of the audio."),
                                "confidence": unit("How sure the recogniser is."),
                            },
                            ["word", "start_ms", "end_ms"],
                        ),
                        "Word timings, when the STT module gives them.",
                    ),
                },
                ["text"],
            ),
        ),
        EventSpec(
            "movement.actions",
            "client",
            "Registers the actions the character can perform (Movement V1 REGISTER_ACTIONS).",
            obj({"actions": movement_actions()}, ["actions"]),
            any_reply,
        ),
        EventSpec(
            "movement.scene",
            "client",
            "Updates what the character can see (Movement V1 UPDATE_SCENE_DATA).",
            obj(movement_scene()),
            any_reply,
        ),
        EventSpec(
            "scene.join",
            "client",
            "Puts the entity into a named scene (shared by the clients of one scope), at a position.",
            obj({"scene": name("The scene's name, chosen by the game."), "position": vector("Where the entity stands (for hearing range).")}, ["scene"]),
            obj({"scene": name("The scene."), "members": array(string(), "Entities in the scene now (of every client).")}, ["scene", "members"]),
        ),
        EventSpec(
            "scene.leave",
            "client",
            "Takes the entity out of a scene (or of every scene when `scene` is left out).",
            obj({"scene": name("The scene to leave.")}, nullable=True),
            obj({"left": array(string(), "The scenes the entity left.")}, ["left"]),
        ),
        EventSpec(
            "scene.utterance",
            "client",
            "The player says something in a scene: those in range hear it, the bridge picks who answers.",
            obj(
                {
                    "scene": name("The scene."),
                    "text": string("What is said.", min_length=1),
                    "kind": enum(UTTERANCE_KINDS[:3], "As for user.utterance (default verbal)."),
                    "speaker": name("Who says it, when not the player."),
                    "to": name("The entity (or display name) the line is addressed to."),
                    "position": vector("Where the speaker stands (for hearing range)."),
                },
                ["scene", "text"],
            ),
            scene_result("replies"),
            entity_scoped=False,
        ),
        EventSpec(
            "scene.converse",
            "client",
            "Starts a conversation between characters of a scene, which those in range overhear.",
            obj(
                {
                    "scene": name("The scene."),
                    "participants": array(name(), "Entities (or display names) who talk, in speaking order.", min_items=2),
                    "topic": string("What they talk about.", max_length=500),
                    "turns": integer("Lines in all (default 4, at most the bridge's max_converse_turns).", minimum=1, maximum=100),
                },
                ["scene", "participants"],
            ),
            scene_result("lines"),
            entity_scoped=False,
        ),
        # ------------------------------------------------------------ bridge -> client
        EventSpec(
            "ai.text",
            "bridge",
            "A piece of the reply text as the LLM streams it (only when hello asked for text_deltas).",
            obj({"delta": string("The next piece of text.")}, ["delta"]),
            any_reply,
        ),
        EventSpec(
            "ai.speech.start",
            "bridge",
            "A spoken segment (a sentence or clause) begins.",
            obj(
                {
                    "speech": name("Id of the segment; audio, end and countenance events name it."),
                    "text": string("The text of the segment."),
                    "sample_rate": enum(SAMPLE_RATES, "Sample rate of the segment's audio in Hz."),
                    "encoding": enum(["pcm_s16le"], "Sample format of the segment's audio."),
                },
                ["speech", "text", "sample_rate", "encoding"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.speech.audio",
            "bridge",
            "A chunk of a segment's audio with the lip-sync keyframes of the same time window.",
            obj(
                {
                    "speech": name("The segment."),
                    "seq": integer("Chunk number within the segment, from 0.", minimum=0),
                    "t": ms("Time of the chunk's first sample, from the segment's start."),
                    "audio": binary("PCM samples in the format of ai.speech.start."),
                    "visemes": array(viseme_key(), "Viseme keyframes falling in this chunk."),
                    "volume": array(unit("Loudness"), "Loudness per 10 ms of the chunk, 0..1."),
                },
                ["speech", "seq", "t", "audio"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.speech.end",
            "bridge",
            "A spoken segment is complete: all its audio has been sent.",
            obj(
                {
                    "speech": name("The segment."),
                    "duration_ms": ms("Total length of the segment's audio."),
                },
                ["speech", "duration_ms"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.speech.interrupted",
            "bridge",
            "A segment was cut short (entity.interrupt or barge-in); says what the player heard.",
            obj(
                {
                    "speech": name("The segment."),
                    "played_ms": ms("Audio the player heard."),
                    "heard_text": string("The text the player heard, as far as known."),
                },
                ["speech", "played_ms", "heard_text"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.action",
            "bridge",
            "A non-verbal action in the reply, e.g. \"smiles warmly\" (not spoken).",
            obj(
                {
                    "text": string("The action, in words."),
                    "kind": enum(["nonverbal"], "Always nonverbal."),
                },
                ["text"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.countenance",
            "bridge",
            "The character's facial emotion, from the countenance module.",
            obj(
                {
                    "emotion": enum(EMOTIONS, "The emotion."),
                    "intensity": unit("How strong, 0..1."),
                    "expression": string("The character's preset name for this emotion."),
                    "speech": name("The segment it belongs to, when tied to speech."),
                    "t": ms("When to show it, from that segment's start."),
                },
                ["emotion", "intensity", "expression"],
            ),
            any_reply,
        ),
        EventSpec(
            "ai.status",
            "bridge",
            "The character's state as the LLM sees it (AI_STATUS): mood, behaviour, and more; "
            "`queue` while a turn's request waits for a module's provider quota.",
            obj(
                {
                    "mood": string("The character's mood."),
                    "behaviour": string("What the character is doing."),
                    "queue": obj(
                        {
                            "state": enum(["waiting", "served"], "waiting: the request joined the module's queue; served: it got its slot."),
                            "module": name("The module whose quota it waits for."),
                            "kind": enum(["llm", "tts", "stt"], "The module's kind."),
                            "ahead": integer("With state waiting: requests granted before this one if no other entity joins.", minimum=0),
                            "waited_ms": ms("With state served: how long it waited."),
                        },
                        ["state", "module", "kind"],
                        "A request of the turn (`ref`) waits for, or got, a slot of a module's quota.",
                    ),
                }
            ),
            any_reply,
        ),
        EventSpec(
            "stt.speech.started",
            "bridge",
            "Voice activity began in the entity's microphone stream.",
            obj({"t": ms("When, from the start of the microphone stream.")}, ["t"]),
            any_reply,
        ),
        EventSpec(
            "stt.speech.stopped",
            "bridge",
            "Voice activity ended in the entity's microphone stream.",
            obj({"t": ms("When, from the start of the microphone stream.")}, ["t"]),
            any_reply,
        ),
        EventSpec(
            "stt.transcript",
            "bridge",
            "Text recognised in the microphone stream; the final one starts a turn.",
            obj(
                {
                    "text": string("The transcript so far (partial) or of the whole segment (final)."),
                    "final": boolean("True for the segment's last transcript."),
                    "t": ms("Partial transcripts: how far into the microphone stream the decoded audio reaches."),
                },
                ["text", "final"],
            ),
            any_reply,
        ),
        EventSpec(
            "scene.heard",
            "bridge",
            "The entity heard a line said in its scene (and remembers it with the speaker's name).",
            obj(
                {
                    "scene": name("The scene."),
                    "speaker": string("Who said it (a display name, or the player's)."),
                    "text": string("What was said."),
                    "kind": enum(UTTERANCE_KINDS[:3], "The utterance kind."),
                },
                ["scene", "speaker", "text"],
            ),
            any_reply,
        ),
        EventSpec(
            "movement.perform",
            "bridge",
            "A request to the engine: perform these actions. The engine replies success or error.",
            obj(
                {
                    "actions": array(
                        obj(
                            {
                                "name": name("A registered action's name."),
                                "args": obj(description="The action's arguments."),
                            },
                            ["name"],
                        ),
                        "Actions to perform, in order.",
                        min_items=1,
                    )
                },
                ["actions"],
            ),
            obj(
                {"feedback": string("What happened, in words, for the LLM.")},
                nullable=True,
            ),
        ),
        EventSpec(
            "movement.scene.request",
            "bridge",
            "A request to the engine: reply success with the current scene (as in movement.scene).",
            nothing(),
            obj(movement_scene(), nullable=True),
        ),
        EventSpec(
            "movement.actions.request",
            "bridge",
            "A request to the engine: reply success with the registered actions (as in movement.actions).",
            nothing(),
            obj({"actions": movement_actions()}, ["actions"]),
        ),
        EventSpec(
            "error",
            "bridge",
            "Answers a frame that cannot be answered in kind (undecodable, no usable id).",
            error_payload(with_ref=True),
            any_reply,
            entity_scoped=False,
        ),
    ]


EVENTS: list[EventSpec] = _events()


# --------------------------------------------------------------------------- envelope


def _status_is(status: str) -> Schema:
    if status == "new":
        # Absent status means new: `properties` alone also matches an envelope without it.
        return {"properties": {"status": {"const": "new"}}}
    return {"properties": {"status": {"const": status}}, "required": ["status"]}


def _payload_rule(status: str, payload: Schema) -> Schema:
    then: Schema = {"properties": {"payload": payload}}
    if payload.get("type") == "object":
        then["required"] = ["payload"]
    return {"if": _status_is(status), "then": then}


def envelope(spec: EventSpec) -> Schema:
    """The whole event of one type, in every status."""
    rules: list[Schema] = []
    if spec.entity_scoped:
        # An error reply may lack `entity`: the request it refuses may have had none.
        rules.append(
            {
                "if": {"properties": {"status": {"enum": ["new", "pending", "success"]}}},
                "then": {"required": ["entity"]},
            }
        )
    rules.append(_payload_rule("new", spec.payload))
    rules.append(_payload_rule("pending", nothing("Work has started; null or a map.")))
    rules.append(_payload_rule("success", spec.success))
    rules.append(_payload_rule("error", error_payload()))
    entity_note = "required except on error replies" if spec.entity_scoped else "optional"
    return {
        "$schema": SCHEMA_DIALECT,
        "title": spec.type,
        "description": spec.summary,
        "x-direction": spec.direction,
        "x-entity-scoped": spec.entity_scoped,
        "type": "object",
        "required": ["type", "id"],
        "properties": {
            "type": {"const": spec.type},
            "id": name("Chosen by the sender; replies reuse the request's id."),
            "entity": name(f"The entity the event is about ({entity_note})."),
            "status": enum(STATUSES, "Lifecycle status; absent means new."),
            "ref": name("On bridge events caused by a request: that request's id."),
            "payload": {"type": ["object", "null"], "description": "Depends on type and status."},
        },
        "allOf": rules,
    }


# --------------------------------------------------------------------------- AsyncAPI


def _operation_id(event_type: str) -> str:
    parts = event_type.replace(".", "_").split("_")
    return parts[0] + "".join(p.capitalize() for p in parts[1:])


#: Events answered by their receiver: client requests (bar the microphone stream, answered
#: only on failure) and the bridge's requests to the engine.
REPLIED = frozenset(
    [spec.type for spec in EVENTS if spec.direction == "client" and spec.type != "stt.audio"]
    + ["movement.perform", "movement.scene.request", "movement.actions.request"]
)


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the protocol, from the bridge's point of view."""
    messages = {
        spec.type: {
            "name": spec.type,
            "title": spec.type,
            "summary": spec.summary,
            "payload": {
                "schemaFormat": "application/schema+json;version=draft-2020-12",
                "schema": {"$ref": f"./events/{spec.type}.json"},
            },
        }
        for spec in EVENTS
    }
    operations: dict[str, Any] = {}
    for spec in EVENTS:
        ref = {"$ref": f"#/channels/events/messages/{spec.type}"}
        op: dict[str, Any] = {
            "action": "receive" if spec.direction == "client" else "send",
            "channel": {"$ref": "#/channels/events"},
            "summary": spec.summary,
            "messages": [ref],
        }
        if spec.type in REPLIED:
            # A reply is the same message (same type and id) in status pending/success/error.
            op["reply"] = {"channel": {"$ref": "#/channels/events"}, "messages": [dict(ref)]}
        operations[_operation_id(spec.type)] = op
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Entity Event Protocol",
            "version": str(PROTOCOL_VERSION),
            "description": (
                "WebSocket protocol between a game engine and the Entity Bridge. One event per "
                "message: MessagePack maps in binary messages (default), or the same events as JSON in "
                "text messages with binary fields as base64. Requests (status new) get exactly one final "
                "reply of the same type and id (success or error), optionally preceded by one pending "
                "reply; output a request causes carries its id as `ref`. Each message schema describes "
                "the whole envelope in every status. See docs/protocol.md."
            ),
        },
        "defaultContentType": "application/msgpack",
        "servers": {
            "local": {
                "host": "127.0.0.1:{port}",
                "protocol": "ws",
                "description": "The bridge next to the game. Other addresses require a token in session.hello.",
                "variables": {"port": {"default": "8765"}},
            }
        },
        "channels": {
            "events": {
                "address": "/",
                "title": "Events",
                "description": "The one WebSocket connection; every event type travels on it.",
                "messages": messages,
            }
        },
        "operations": operations,
    }


# --------------------------------------------------------------------------- output


def render() -> dict[Path, str]:
    """Every generated file (path relative to schemas/) and its exact text."""
    import yaml  # only needed here; PyYAML is a dependency of the dev environment

    files: dict[Path, str] = {}
    for spec in EVENTS:
        files[Path("events") / f"{spec.type}.json"] = json.dumps(envelope(spec), indent=2, ensure_ascii=False) + "\n"
    header = "# Generated by schemas/generate.py: edit that file, then run it.\n"
    files[Path("asyncapi.yaml")] = header + yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True, width=100)
    return files


def stale_files(root: Path = ROOT) -> list[str]:
    """Generated files that are missing or differ, plus stray event schemas."""
    expected = render()
    problems = [str(p) for p, text in expected.items() if not (root / p).is_file() or (root / p).read_text() != text]
    known = {p.name for p in expected if p.parent.name == "events"}
    problems += [f"events/{p.name} (not generated)" for p in (root / "events").glob("*.json") if p.name not in known]
    return problems


def check_metaschema() -> bool:
    """Check every event schema against the 2020-12 metaschema, when `jsonschema` is installed.

    The bridge's environment only has fastjsonschema (which cannot check a schema itself);
    any Python with `jsonschema` can run this script for the stricter check.
    """
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:
        print("jsonschema is not installed: metaschema check skipped", file=sys.stderr)
        return True
    ok = True
    for spec in EVENTS:
        try:
            Draft202012Validator.check_schema(envelope(spec))
        except SchemaError as exc:
            ok = False
            print(f"{spec.type}: {exc.message}", file=sys.stderr)
    if ok:
        print(f"all {len(EVENTS)} event schemas pass the draft 2020-12 metaschema")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for problem in stale:
            print(f"stale: {problem}", file=sys.stderr)
        return 1 if stale or not check_metaschema() else 0
    (ROOT / "events").mkdir(exist_ok=True)
    for path, text in render().items():
        (ROOT / path).write_text(text)
    print(f"wrote {len(EVENTS)} event schemas and asyncapi.yaml under {ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
