"""Which event types flow which way, and which of them are about one entity."""

from __future__ import annotations

PROTOCOL_VERSION = 1

#: Requests a client may send. Each gets exactly one final reply.
CLIENT_REQUESTS = frozenset(
    {
        "session.hello",
        "entity.init",
        "entity.remove",
        "scene.loaded",
        "user.utterance",
        "world.event",
        "tts.say",
        "entity.interrupt",
        "playback.progress",
        "playback.done",
        "chat.history",
        "chat.clear",
        "stt.audio",
        "stt.listen.start",
        "stt.listen.stop",
        "stt.transcribe",
        "movement.actions",
        "movement.scene",
        "scene.join",
        "scene.leave",
        "scene.utterance",
        "scene.converse",
    }
)

#: Requests the bridge sends to the engine. A client answers them with the same type, id
#: and entity and status `success` or `error`; those answers are the only client frames
#: whose status is not `new`, and they get no reply of their own.
BRIDGE_REQUESTS = frozenset({"movement.perform", "movement.scene.request", "movement.actions.request"})

#: Requests that do not name an entity.
SESSION_SCOPED = frozenset({"session.hello", "scene.loaded", "scene.utterance", "scene.converse"})

#: Requests that carry user text, checked against `max_text_chars`.
TEXT_FIELDS = ("text",)

#: Payload fields (at any depth) that hold a name, checked against `max_name_chars`; every
#: other string anywhere in a request is checked against `max_text_chars`, and all of a
#: request's strings together against `max_request_text_chars`.
NAME_FIELDS = frozenset({"speaker", "actor", "display_name", "name", "voice", "player_name", "scope", "client"})
