"""The fault suite: every remote backend module x every way a backend fails, through the
real bridge, over a real WebSocket, with the real SDK client.

Each case starts a fake server that speaks the backend's documented wire format and
misbehaves on request, a bridge whose character uses that module, and a client with two
entities: the one under test and "ava", an echo character. Then one request (an utterance
for LLMs, ``tts.say`` for TTS, ``stt.transcribe`` for STT) meets the fault, and the case
checks what a game developer relies on:

- the request gets exactly one final reply, status ``error``, with the expected code and a
  message that names the provider and does not contain any of its secrets;
- a 429 with Retry-After is retried (then succeeds), or given up after ``max_retries``
  within a bounded time;
- the other entity on the same connection still answers;
- the fake has no request left open (a hanging fake returns only once the client hung up)
  and, for socket backends, every socket it accepted was closed;
- no turn task (nor one-shot transcription task) of the bridge is left running.

Provider-level tests in ``tests/providers/`` test the modules directly; this file is the
end-to-end view of the same faults. ``docs/fault-suite.md`` describes the matrix.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
from entity_bridge_sdk import BridgeClient, Event, TurnResult

from bridge.config import parse_config
from bridge.media.pcm import encode_wav
from tests.conftest import ECHO_CONFIG, live_tasks, start_bridge
from tests.fakes.characterai import fake_characterai
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.harmonyspeech import fake_harmonyspeech
from tests.fakes.harmonyspeech_stt import fake_harmonyspeech_stt
from tests.fakes.kajiwoto import fake_kajiwoto
from tests.fakes.kindroid import fake_kindroid
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech
from tests.fakes.openai_transcribe import fake_openai_transcribe
from tests.fakes.textgen import fake_textgen
from tests.fakes.tts_tone import tone

#: Small bounds keep the whole matrix fast: a hang is noticed after TIMEOUT_S, a 429 is
#: retried MAX_RETRIES times after RETRY_AFTER_S each.
TIMEOUT_S = 0.3
RETRY_AFTER_S = 0.05
MAX_RETRIES = 1
#: A failing request must end well within this, retries and timeouts included.
BOUND_S = 5.0

FAULTS = ("http_500", "rate_limit_retried", "rate_limit_gives_up", "hang", "drop", "garbage", "refused")
EXPECTED_CODE = {
    "refused": "backend_unavailable",
    "http_500": "backend_error",
    "rate_limit_gives_up": "backend_error",
    "hang": "timeout",
    "drop": "backend_error",
    "garbage": "backend_error",
}
MANY = 1000  # "fail every request": more than any retry budget

REPLY = "Fine, thank you."
SPOKEN_LINE = "Hi there."
HEARD = "Open the gate."
NO_MODULES = {"llm": "echo", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}
SECRETS = {
    "textgen": "tg-secret-key-5f6e7d",
    "harmonyspeech": "hs-secret-key-1a2b3c",
}


@dataclass(frozen=True)
class Backend:
    """One remote module: how to start its fake for each fault, and what to expect."""

    kind: str  # llm | tts | stt
    provider: str  # the registry's provider name
    label: str  # how the module names the provider in its error messages
    start: Callable[..., AbstractAsyncContextManager[Any]]
    faults: dict[str, dict[str, Any]]  # matrix fault -> the fake's keyword arguments
    own_words: str  # what the fake's HTTP 500 body says; the error must carry it
    options: Callable[[Any], dict[str, Any]] = lambda fake: fake.options()
    secrets: Callable[[Any], list[str]] = lambda fake: [fake.options()["api_key"]]
    extra: dict[str, Any] = field(default_factory=dict)  # module options besides the fake's


def _faults(
    http_500: dict[str, Any],
    times_key: str,
    *,
    text_retry: bool = False,
    rate_fault: str = "rate_limit",
    drop: str = "drop",
    garbage: str = "garbage",
) -> dict[str, dict[str, Any]]:
    """A fake's arguments for each fault of the matrix, in that fake's own vocabulary.

    `times_key` names its "how many requests fail" argument; `text_retry` means it takes
    Retry-After as header text rather than seconds."""
    retry: Any = f"{RETRY_AFTER_S:g}" if text_retry else RETRY_AFTER_S

    def rate_limit(times: int) -> dict[str, Any]:
        return {"fault": rate_fault, times_key: times, "retry_after": retry}

    return {
        "http_500": http_500,
        "rate_limit_retried": rate_limit(1),
        "rate_limit_gives_up": rate_limit(MANY),
        "hang": {"fault": "hang"},
        "drop": {"fault": drop},
        "garbage": {"fault": garbage},
    }


BACKENDS: dict[str, Backend] = {
    "llm-openai": Backend(
        "llm", "openai", "OpenAI", fake_openai_chat,
        _faults({"fault": "error", "error_status": 500, "error_message": "The server had an error processing your request."}, "fault_times", garbage="malformed"),
        own_words="The server had an error processing your request.",
    ),
    "llm-textgen": Backend(
        "llm", "textgen", "text-generation-webui", fake_textgen,
        _faults({"fault": "error", "error_status": 500, "error_message": "No model is loaded."}, "fault_times", garbage="malformed"),
        own_words="No model is loaded.",
    ),
    "llm-kindroid": Backend(
        "llm", "kindroid", "Kindroid", fake_kindroid,
        _faults({"fault": "error", "error_status": 500, "error_message": "Internal server error"}, "fault_times"),
        own_words="Internal server error",
    ),
    "llm-kajiwoto": Backend(
        "llm", "kajiwoto", "Kajiwoto", fake_kajiwoto,
        _faults({"fault": "graphql_500"}, "fault_times", rate_fault="graphql_429"),
        own_words="Internal server error",
        secrets=lambda fake: [fake.password, fake.auth_token],
    ),
    "llm-characterai": Backend(
        "llm", "characterai", "Character AI", fake_characterai,
        _faults({"fault": "status", "error_status": 500, "error_message": "Internal Server Error"}, "fault_times"),
        own_words="Internal Server Error",
        secrets=lambda fake: [fake.token],
    ),
    "tts-openai": Backend(
        "tts", "openai", "OpenAI", fake_openai_speech,
        _faults({"fault": "status", "status": 500}, "fail_times", text_retry=True),
        own_words="The server had an error while processing your request.",
    ),
    "tts-elevenlabs": Backend(
        "tts", "elevenlabs", "ElevenLabs", fake_elevenlabs,
        _faults({"fault": "status", "status": 500}, "fail_times", text_retry=True),
        own_words="The system is experiencing heavy traffic",
    ),
    "tts-harmonyspeech": Backend(
        "tts", "harmonyspeech", "Harmony Speech", fake_harmonyspeech,
        _faults({"fault": "status", "status": 500}, "fail_times", text_retry=True, garbage="bad_json"),
        own_words="Engine error: CUDA out of memory",
        extra={"model": "kitten-tts-nano", "voice": "expr-voice-2-f"},
    ),
    "stt-openai": Backend(
        "stt", "openai", "OpenAI transcription", fake_openai_transcribe,
        _faults({"fault": "server_error"}, "fail_times", text_retry=True, drop="abort"),
        own_words="The server had an error while processing your request.",
        options=lambda fake: {"base_url": fake.url, "api_key": fake.api_key},
        secrets=lambda fake: [fake.api_key],
    ),
    "stt-harmonyspeech": Backend(
        "stt", "harmonyspeech", "Harmony Speech", fake_harmonyspeech_stt,
        _faults({"fault": "server_error"}, "fail_times", text_retry=True, drop="abort"),
        own_words="Internal inference error",
        options=lambda fake: {"base_url": fake.url, "api_key": SECRETS["harmonyspeech"]},
        secrets=lambda fake: [SECRETS["harmonyspeech"]],
    ),
}


def fake_kwargs(name: str, backend: Backend, fault: str) -> dict[str, Any]:
    """The fake's arguments for one case: the fault, the reply a success would carry, a key.

    "refused" starts a healthy fake but points the module elsewhere (see `refused_port`).
    """
    kwargs = dict(backend.faults.get(fault, {}))
    if backend.kind == "llm":
        kwargs["reply"] = REPLY
    if backend.kind == "stt":
        kwargs["text"] = HEARD
    if name == "llm-textgen":
        kwargs["api_key"] = SECRETS["textgen"]
    if name in ("tts-harmonyspeech", "stt-harmonyspeech"):
        kwargs["api_key"] = SECRETS["harmonyspeech"]
    return kwargs


async def refused_port() -> int:
    """A 127.0.0.1 port nobody listens on: bound, then released, never listened to."""
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redirect(options: dict[str, Any], port: int) -> dict[str, Any]:
    """`options` with every 127.0.0.1 URL (HTTP and WebSocket alike) sent to `port`."""
    return {
        key: re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", value) if isinstance(value, str) else value
        for key, value in options.items()
    }


def bridge_config(backend: Backend, options: dict[str, Any]) -> Any:
    module = {"kind": backend.kind, "provider": backend.provider, **options}
    modules = {**NO_MODULES, backend.kind: "under_test"}
    return parse_config(
        {
            **ECHO_CONFIG,
            "modules": {**ECHO_CONFIG["modules"], "under_test": module},
            "characters": {**ECHO_CONFIG["characters"], "npc": {"display_name": "Npc", "modules": modules}},
        },
        "fault suite",
    )


async def run_request(client: BridgeClient, backend: Backend) -> TurnResult:
    """The one request that exercises the module under test."""
    if backend.kind == "llm":
        payload: dict[str, Any] = {"kind": "verbal", "text": "How are you?"}
        return await client.turn("user.utterance", payload, entity="npc-1", check=False, timeout=30)
    if backend.kind == "tts":
        return await client.turn("tts.say", {"text": SPOKEN_LINE}, entity="npc-1", check=False, timeout=30)
    wav = encode_wav(tone(HEARD, 16000), 16000)
    return await client.turn("stt.transcribe", {"audio": wav, "format": "wav"}, entity="npc-1", check=False, timeout=30)


async def no_task_left(timeout: float = 2.0) -> list[str]:
    """The bridge's turn and transcription tasks still alive after `timeout` (none, we hope)."""
    with trio.move_on_after(timeout):
        while live_tasks("turn:") or live_tasks("stt.transcribe:"):
            await trio.sleep(0.01)
    return live_tasks("turn:") + live_tasks("stt.transcribe:")


async def sockets_closed(fake: Any, timeout: float = 2.0) -> bool:
    """For fakes with a WebSocket side: every socket they accepted was closed."""
    if not hasattr(fake, "wait_all_sockets_closed"):
        return True
    with trio.move_on_after(timeout):
        await fake.wait_all_sockets_closed()
        return fake.sockets_closed == fake.sockets_opened
    return False


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", sorted(BACKENDS))
async def test_backend_fault_through_the_bridge(name: str, fault: str, connect) -> None:
    backend = BACKENDS[name]
    async with backend.start(**fake_kwargs(name, backend, fault)) as fake:
        options = {
            **backend.options(fake),
            **backend.extra,
            "timeout": TIMEOUT_S,
            "max_retries": MAX_RETRIES,
            "max_retry_after": 1.0,
        }
        if fault == "refused":
            options = redirect(options, await refused_port())
        secrets = [s for s in backend.secrets(fake) if s]
        assert secrets, "every backend here has a secret the errors must not show"
        async with start_bridge(bridge_config(backend, options)) as running:
            async with connect(running, audio_out={"sample_rate": 24000, "chunk_ms": 40, "lead_ms": 0}) as client:
                finals: list[Event] = []
                checker = client.on_event
                client.on_event = lambda e: (checker(e), finals.append(e) if e.is_final else None)
                await client.init_entity("npc-1", "npc")
                other = await client.init_entity("ava-1", "ava")

                started = trio.current_time()
                result = await run_request(client, backend)
                elapsed = trio.current_time() - started

                # The session and the other entity carry on (and by the time its answer is
                # in, anything else the bridge sent about the failed request is in too).
                assert (await other.say("still there?")).payload["reply"] == "You said: still there?"

            assert await no_task_left() == [], "a turn or transcription task outlived its request"

        replies = [e for e in finals if e.id == result.reply.id]
        assert len(replies) == 1, f"expected one final reply, got {[(e.status, e.payload) for e in replies]}"
        requests = fake.inflight.started
        assert await fake.inflight.wait_idle(2.0), f"{name}: a request is still open at the fake"
        assert await sockets_closed(fake), f"{name}: a socket to the fake was left open"

    if fault == "rate_limit_retried":
        assert result.reply.status == "success", result.reply.payload
        assert requests == 2, f"one 429, then one successful retry; the fake saw {requests} requests"
        if backend.kind == "llm":
            assert result.payload["reply"] == REPLY
        elif backend.kind == "tts":
            assert result.of_type("ai.speech.audio")
        else:
            assert result.payload["text"].strip() == HEARD
        return

    payload = result.reply.payload
    assert result.reply.status == "error", payload
    assert payload["code"] == EXPECTED_CODE[fault], payload
    message = payload["message"]
    assert backend.label.lower() in message.lower(), f"the message does not name {backend.label}: {message!r}"
    for secret in secrets:
        assert secret not in message, f"the message leaks a secret: {message!r}"
    assert elapsed < BOUND_S, f"{fault} took {elapsed:.2f} s"
    if fault == "http_500":
        assert backend.own_words.lower() in message.lower(), message
    if fault == "refused":
        assert requests == 0, "the module reached the fake it was pointed away from"
    if fault == "rate_limit_gives_up":
        assert "429" in message, message
        assert requests == MAX_RETRIES + 1, f"expected {MAX_RETRIES + 1} attempts, the fake saw {requests}"
