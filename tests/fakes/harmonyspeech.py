"""A fake Harmony Speech Engine (``POST /v1/audio/speech``, ``/v1/embed/speaker``) on 127.0.0.1.

It answers as the engine's FastAPI server does: JSON in, JSON out, audio as base64, no
streaming. ``/v1/audio/speech`` takes ``{model, input, mode, language, voice, input_audio,
input_embedding, generation_options, output_options}`` and returns
``{"id": "tts-...", "model", "created", "data": <base64 WAV>}``; ``/v1/embed/speaker``
takes ``{model, input_audio}`` and returns ``{"id": "embed-...", ..., "data": <base64
embedding>}`` (here: a digest of the clip, so the test can tell which clip was embedded).
Errors are ``{"object": "error", "message", "type", "param", "code"}``.

The speech is the known tone of `tests.fakes.tts_tone` for ``input`` at the requested
``output_options.sample_rate`` (or the model's own rate), answered after ``ttfa`` plus
``rtf`` times the clip's duration. Models and what they accept are
listed in ``MODELS``; requests that break the rules get a 400 with the engine's wording.
When ``api_key`` is set, ``Authorization: Bearer`` or ``Api-Key`` must carry it (a wrong
key is refused 401 with a message that repeats it back: clients must scrub).

    async with fake_harmonyspeech(ttfa=0.3) as engine:
        tts = harmonyspeech.create(ModuleSpec("h", "tts", "harmonyspeech", engine.options(voice="EN-US")))

Fault modes (``fault=``): ``"status"`` (``status`` with ``message``), ``"rate_limit"`` (429
with ``Retry-After`` for the first ``fail_times`` requests), ``"hang"`` (never answer, until the client hangs up),
``"drop"`` (half the body, then cut the connection), ``"garbage"`` (``data`` that is base64
but not audio), ``"bad_json"`` (a 200 whose body is not JSON).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import hang_until_disconnect
from tests.fakes.tts_tone import MS_PER_CHAR, tone, wav_bytes

FAULTS = (None, "status", "rate_limit", "hang", "drop", "garbage", "bad_json")
MODELS: dict[str, dict[str, Any]] = {
    "harmonyspeech": {"modes": ("voice_cloning",), "rate": 16000, "voices": ()},
    "openvoice_v2": {"modes": ("single_speaker_tts", "voice_cloning"), "rate": 22050,
                     "voices": ("EN-US", "EN-BR", "EN-AU", "EN-Default")},
    "kitten-tts-nano": {"modes": ("single_speaker_tts",), "rate": 24000, "voices": ("expr-voice-2-f", "expr-voice-3-m")},
}


@dataclass
class FakeHarmonySpeech:
    url: str
    api_key: str | None
    http: FakeHTTPServer
    ms_per_char: float
    speech_requests: list[dict[str, Any]] = field(default_factory=list)
    embed_requests: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0
    inflight: InFlight = field(default_factory=InFlight)  # requests still being answered

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def open_connections(self) -> int:
        return self.http.open_connections

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point a `harmonyspeech` module at this fake."""
        opts: dict[str, Any] = {"base_url": self.url}
        if self.api_key:
            opts["api_key"] = self.api_key
        return {**opts, **extra}

    async def wait_no_connections(self, timeout: float = 2.0) -> bool:
        with trio.move_on_after(timeout):
            while self.http.open_connections:
                await trio.sleep(0.005)
            return True
        return False


def embedding_of(clip: bytes) -> bytes:
    """What the fake's speaker encoder returns for a clip: deterministic, clip-specific."""
    return hashlib.sha256(clip).digest() * 8


def _error(message: str, status: int = 400, type_: str = "BadRequestError", param: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": param, "code": status}


def _b64(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


async def think(res: Responder, seconds: float) -> bool:
    """Take ``seconds`` like an engine at work, noticing a client that hangs up meanwhile.

    The engine answers only when done, so nothing is written while it works and the shared
    server would never see the socket close; watching the socket here lets tests check
    that a cancelled client really closed its connection. False if the client went away.
    """
    stream = res._stream  # the connection tests.fakes.http_server gives this responder
    gone = False
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            nonlocal gone
            try:
                data = await stream.receive_some(1)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                gone = True
                nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return not gone


@asynccontextmanager
async def fake_harmonyspeech(
    *,
    api_key: str | None = None,
    ms_per_char: float = MS_PER_CHAR,
    ttfa: float = 0.0,
    rtf: float = 0.0,
    fault: str | None = None,
    status: int = 500,
    message: str = "Engine error: CUDA out of memory",
    fail_times: int = 1,
    retry_after: str = "0",
) -> AsyncIterator[FakeHarmonySpeech]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    fake: FakeHarmonySpeech
    rate_limited = 0

    def authorised(req: FakeRequest) -> tuple[bool, str]:
        if not api_key:
            return True, ""
        auth = req.headers.get("authorization", "")
        given = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else req.headers.get("api-key", "")
        return given == api_key, given

    async def speech(req: FakeRequest, res: Responder, body: dict[str, Any]) -> None:
        fake.speech_requests.append(body)
        model = body.get("model")
        spec = MODELS.get(str(model))
        if spec is None:
            await res.send_json(400, _error(f"The model `{model}` does not exist.", param="model"))
            return
        text = body.get("input")
        if not isinstance(text, str) or not text.strip():
            await res.send_json(400, _error("input must not be empty", param="input"))
            return
        mode = body.get("mode", "single_speaker_tts")
        if mode not in spec["modes"]:
            await res.send_json(400, _error(f"mode {mode} not supported by model {model}", param="mode"))
            return
        if mode == "single_speaker_tts" and spec["voices"] and body.get("voice") not in spec["voices"]:
            await res.send_json(400, _error(f"voice {body.get('voice')} not available for model {model}", param="voice"))
            return
        if mode == "voice_cloning":
            has_embedding = _b64(body.get("input_embedding")) is not None
            has_audio = _b64(body.get("input_audio")) is not None
            if not (has_embedding or has_audio):
                await res.send_json(400, _error("voice cloning needs input_embedding or input_audio (base64)",
                                                param="input_embedding"))
                return
        output = body.get("output_options") or {}
        if output.get("format", "wav") != "wav":
            await res.send_json(400, _error(f"output format {output.get('format')} not supported", param="output_options"))
            return
        rate = int(output.get("sample_rate") or spec["rate"])
        work = ttfa + rtf * len(text) * ms_per_char / 1000.0  # the engine answers when all is made
        if work > 0 and not await think(res, work):
            await res.abort()
            return
        if fault == "garbage":
            data = base64.b64encode(b"this is not a wav file at all" * 10).decode()
        else:
            data = base64.b64encode(wav_bytes(tone(text, rate, ms_per_char), rate)).decode()
        reply = {"id": f"tts-{uuid.uuid4()}", "model": model, "created": int(time.time()), "data": data}
        if fault == "drop":
            raw = json.dumps(reply).encode()
            await res.start(200, {"content-type": "application/json", "content-length": str(len(raw))})
            await res.write(raw[: len(raw) // 2])
            await res.abort()
            return
        await res.send_json(200, reply)
        fake.completed += 1

    async def embed(req: FakeRequest, res: Responder, body: dict[str, Any]) -> None:
        fake.embed_requests.append(body)
        clip = _b64(body.get("input_audio"))
        if clip is None:
            await res.send_json(400, _error("input_audio must be base64 audio", param="input_audio"))
            return
        if str(body.get("model")) not in MODELS:
            await res.send_json(400, _error(f"The model `{body.get('model')}` does not exist.", param="model"))
            return
        data = base64.b64encode(embedding_of(clip)).decode()
        await res.send_json(200, {"id": f"embed-{uuid.uuid4()}", "model": body.get("model"),
                                  "created": int(time.time()), "data": data})

    async def handler(req: FakeRequest, res: Responder) -> None:
        nonlocal rate_limited
        if req.method == "GET" and req.path == "/health":
            await res.send(200, b"")
            return
        if req.method != "POST" or req.path not in ("/v1/audio/speech", "/v1/embed/speaker"):
            await res.send_json(404, {"detail": "Not Found"})
            return
        ok, given = authorised(req)
        if not ok:
            await res.send_json(401, _error(f"Unauthorized: invalid API key {given}", 401, "AuthenticationError"))
            return
        try:
            body = req.json()
        except ValueError:
            await res.send_json(400, _error("Request body is not valid JSON"))
            return
        if req.path == "/v1/embed/speaker":
            await embed(req, res, body)
            return
        if fault == "status":
            await res.send_json(status, _error(message, status, "InternalServerError" if status >= 500 else "BadRequestError"))
            return
        if fault == "rate_limit" and rate_limited < fail_times:
            rate_limited += 1
            await res.send_json(429, _error("Too many requests, engine busy", 429, "RateLimitError"),
                                {"retry-after": retry_after})
            return
        if fault == "hang":
            await hang_until_disconnect(res, 3600)
            return
        if fault == "bad_json":
            await res.send(200, "<html>Internal proxy page</html>", {"content-type": "text/html"})
            return
        await speech(req, res, body)

    inflight = InFlight()
    async with serve_http(inflight.wrap(handler)) as http_server:
        fake = FakeHarmonySpeech(url=http_server.url, api_key=api_key, http=http_server, ms_per_char=ms_per_char,
                                 inflight=inflight)
        yield fake
