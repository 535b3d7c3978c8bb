"""A fake OpenAI speech endpoint, ``POST /v1/audio/speech``, on 127.0.0.1.

It checks what the real service checks (bearer key, model, voice, ``input`` of at most
4096 characters, ``speed`` within 0.25..4, a known ``response_format``) and answers in
OpenAI's shapes: audio bytes streamed with chunked transfer encoding, or
``{"error": {"message", "type", "param", "code"}}``. The audio is the known tone of
`tests.fakes.tts_tone` for the request's ``input``: ``pcm`` is raw s16le mono at 24 kHz,
as OpenAI documents; ``wav`` is streamed with unknown sizes; ``mp3``, ``opus`` (Ogg),
``flac`` and ``aac`` are encoded with PyAV.

    async with fake_openai_speech(ttfa=0.2, rtf=0.3) as server:
        tts = openai_speech.create(ModuleSpec("t", "tts", "openai", server.options()))

Fault modes (``fault=``):
``"status"`` answer ``status`` (default 500) with an OpenAI error body saying ``message``;
``"rate_limit"`` answer the first ``fail_times`` requests 429 with ``Retry-After: retry_after``;
``"hang"`` never answer; ``"hang_mid"`` send the first audio piece, then nothing (a hang
ends when the client hangs up: `inflight` then shows the request finished);
``"drop"`` send the first piece, then cut the connection; ``"garbage"`` answer 200 with
bytes that are no audio (for ``pcm``: a JSON error body labelled ``application/json``, the
one way raw PCM can be told from garbage).
A wrong key is refused 401 with a message that repeats the key back: clients must scrub it.

``hold_after=N`` makes every response stop after its first N audio pieces until the test
calls ``release.set()`` (``holding`` is set once one is held): what a client does before a
segment's audio is complete is then decidable without timing anything.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import hang_until_disconnect
from tests.fakes.tts_tone import MS_PER_CHAR, Pace, encode, split_even, tone

FAULTS = (None, "status", "rate_limit", "hang", "hang_mid", "drop", "garbage")
#: Sent by the "garbage" fault: a proxy's error page labelled as audio. Plain ASCII has no
#: 0xFF byte, so it holds no MP3/AAC frame sync (random bytes did, now and then, and
#: decoded as a few frames of MP3) and no container magic (RIFF, OggS, fLaC).
GARBAGE = b"<html><body><h1>502 Bad Gateway</h1><p>upstream sent no audio</p></body></html>\n" * 50
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse")
PCM_RATE = 24000
CONTENT_TYPES = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "aac": "audio/aac",
}
MAX_INPUT = 4096


@dataclass
class FakeOpenAISpeech:
    url: str  # the API base, ending in /v1
    api_key: str
    http: FakeHTTPServer
    ms_per_char: float
    speech_requests: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0  # responses whose last audio byte was sent
    pieces_sent: int = 0  # audio pieces written, over all responses
    holding: trio.Event = field(default_factory=trio.Event)  # a response is held (hold_after)
    release: trio.Event = field(default_factory=trio.Event)  # lets held responses go on
    inflight: InFlight = field(default_factory=InFlight)  # requests still being answered

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def open_connections(self) -> int:
        return self.http.open_connections

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point an `openai` TTS module at this fake."""
        return {"base_url": self.url, "api_key": self.api_key, **extra}

    async def wait_closed(self, count: int = 1, timeout: float = 2.0) -> bool:
        """Wait until `count` connections have been closed, ever (a client that cut one may
        already hold a spare one open: `bridge.providers.net`)."""
        with trio.move_on_after(timeout):
            while self.http.connections_closed < count:
                await trio.sleep(0.005)
            return True
        return False

    async def wait_no_connections(self, timeout: float = 2.0) -> bool:
        with trio.move_on_after(timeout):
            while self.http.open_connections:
                await trio.sleep(0.005)
            return True
        return False


def _error(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@asynccontextmanager
async def fake_openai_speech(
    *,
    api_key: str = "sk-test-0123456789abcdef",
    ms_per_char: float = MS_PER_CHAR,
    ttfa: float = 0.0,
    rtf: float = 0.0,
    chunk_ms: float = 100.0,
    fault: str | None = None,
    status: int = 500,
    message: str = "The server had an error while processing your request. Sorry about that!",
    fail_times: int = 1,
    retry_after: str = "0",
    hold_after: int | None = None,
) -> AsyncIterator[FakeOpenAISpeech]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    pace = Pace(ttfa, rtf)
    fake: FakeOpenAISpeech
    rate_limited = 0

    async def handler(req: FakeRequest, res: Responder) -> None:
        nonlocal rate_limited
        if req.method != "POST" or req.path != "/v1/audio/speech":
            await res.send_json(404, _error(f"Invalid URL ({req.method} {req.path})", "invalid_request_error"))
            return
        auth = req.headers.get("authorization", "")
        if auth != f"Bearer {api_key}":
            given = auth.removeprefix("Bearer ")
            await res.send_json(
                401,
                _error(f"Incorrect API key provided: {given}. You can find your API key at "
                       "https://platform.openai.com/account/api-keys.", "invalid_request_error", None, "invalid_api_key"),
            )
            return
        try:
            body = req.json()
        except ValueError:
            await res.send_json(400, _error("We could not parse the JSON body of your request.", "invalid_request_error"))
            return
        fake.speech_requests.append(body)
        text, model, voice = body.get("input"), body.get("model"), body.get("voice")
        fmt = body.get("response_format", "mp3")
        if model not in MODELS:
            await res.send_json(404, _error(f"The model `{model}` does not exist or you do not have access to it.",
                                            "invalid_request_error", None, "model_not_found"))
            return
        if not isinstance(text, str) or not text:
            await res.send_json(400, _error("Missing required parameter: 'input'.", "invalid_request_error", "input"))
            return
        if len(text) > MAX_INPUT:
            await res.send_json(400, _error(f"Invalid 'input': string too long. Expected a string with maximum length "
                                            f"{MAX_INPUT}, but got a string with length {len(text)} instead.",
                                            "invalid_request_error", "input", "string_above_max_length"))
            return
        if voice not in VOICES:
            await res.send_json(400, _error(f"Invalid value for 'voice': {voice!r}.", "invalid_request_error", "voice"))
            return
        if fmt not in CONTENT_TYPES:
            await res.send_json(400, _error(f"Invalid value for 'response_format': {fmt!r}.", "invalid_request_error",
                                            "response_format"))
            return
        speed = body.get("speed", 1.0)
        if not isinstance(speed, (int, float)) or not 0.25 <= speed <= 4.0:
            await res.send_json(400, _error("Invalid 'speed': must be between 0.25 and 4.0.", "invalid_request_error", "speed"))
            return
        if fault == "status":
            await res.send_json(status, _error(message, "server_error" if status >= 500 else "invalid_request_error"))
            return
        if fault == "rate_limit" and rate_limited < fail_times:
            rate_limited += 1
            await res.send_json(429, _error("Rate limit reached for requests", "requests", None, "rate_limit_exceeded"),
                                {"retry-after": retry_after})
            return
        if fault == "hang":
            await hang_until_disconnect(res, 3600)
            return
        if fault == "garbage":
            if fmt == "pcm":
                await res.send_json(200, _error("upstream produced no audio", "server_error"))
            else:
                await res.send(200, GARBAGE, {"content-type": CONTENT_TYPES[fmt]})
            return

        samples = tone(text, PCM_RATE, ms_per_char)
        data = encode(samples, PCM_RATE, "wav_streamed" if fmt == "wav" else fmt)
        seconds = len(samples) / PCM_RATE
        pieces = split_even(data, max(1, round(seconds * 1000 / chunk_ms)))
        await res.start(200, {"content-type": CONTENT_TYPES[fmt]})
        for i, piece in enumerate(pieces):
            if hold_after is not None and i == hold_after:
                fake.holding.set()
                await fake.release.wait()
            await pace.before(i, seconds / len(pieces))
            await res.write(piece)
            fake.pieces_sent += 1
            if i == 0 and fault == "hang_mid":
                await hang_until_disconnect(res, 3600)
                return
            if i == 0 and fault == "drop":
                await res.abort()
                return
        await res.end()
        fake.completed += 1

    inflight = InFlight()
    async with serve_http(inflight.wrap(handler)) as http_server:
        fake = FakeOpenAISpeech(url=f"{http_server.url}/v1", api_key=api_key, http=http_server, ms_per_char=ms_per_char,
                                inflight=inflight)
        yield fake
