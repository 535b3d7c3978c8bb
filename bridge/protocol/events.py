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
    }
)

#: Requests that do not name an entity.
SESSION_SCOPED = frozenset({"session.hello", "scene.loaded"})

#: Requests that carry user text, checked against `max_text_chars`.
TEXT_FIELDS = ("text",)
