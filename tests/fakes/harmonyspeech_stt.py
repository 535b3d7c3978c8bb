"""A fake Harmony Speech Engine transcription endpoint on 127.0.0.1.

`POST /v1/audio/transcriptions` with JSON ``{model, input_audio (base64 WAV), get_language,
get_timestamps}``. Like the engine it checks the model name against the models it serves,
decodes the base64 and the WAV, and only then "transcribes": it answers the configured text,
the language if asked, and timestamps if asked, in either shape the engine has used
(`timestamps="words"`: ``[{"word","start","end"}]``; `"segments"`: faster-whisper segment
objects with nested ``"words"``). Timings are spread over the audio it really received.

    async with fake_harmonyspeech_stt(text="Open the gate.", expect_duration_s=2.5) as server:
        stt = HarmonySpeechSTT(base_url=server.url)

Errors are the engine's ``{"object": "error", "message", "type", "param", "code"}``. Faults
(`fault=`): "bad_request" 400, "unauthorized" 401, "server_error" 500, "unavailable" 503 +
Retry-After, "rate_limit" 429 + Retry-After, "hang" (nothing until the client hangs up),
"garbage", "abort", "error_in_200" (an error object with status 200). `fail_times=n` limits
faults to the first n requests.
`api_key=` makes the fake require `Authorization: Bearer <key>`; its 401 echoes what it got.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import ReceivedAudio, audio_problem, hang_until_disconnect, read_wav, spread_words

DEFAULT_MODELS = ("faster-whisper-large-v3-turbo",)
FAULTS = ("bad_request", "unauthorized", "server_error", "unavailable", "rate_limit", "hang", "garbage", "abort", "error_in_200")


@dataclass
class HarmonyUpload:
    body: dict[str, Any]
    audio: ReceivedAudio | None
    problem: str | None


@dataclass
class FakeHarmonyServer:
    http: FakeHTTPServer
    uploads: list[HarmonyUpload] = field(default_factory=list)
    disconnects: int = 0  # clients that hung up on a hanging request
    inflight: InFlight = field(default_factory=InFlight)  # requests still being answered

    @property
    def url(self) -> str:
        """The engine's root URL (the client adds /v1/...)."""
        return self.http.url

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def open_connections(self) -> int:
        return self.http.open_connections


def _error(status: int, message: str, type_: str, param: str | None = None) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": param, "code": status}


@asynccontextmanager
async def fake_harmonyspeech_stt(
    *,
    text: str = "Hello there, traveler.",
    language: str = "en",
    timestamps: str = "words",
    models: tuple[str, ...] = DEFAULT_MODELS,
    fault: str | None = None,
    fail_times: int | None = None,
    api_key: str | None = None,
    expect_duration_s: float | None = None,
    duration_tolerance_s: float = 0.05,
    retry_after: str = "0.05",
    hang_s: float = 60.0,
) -> AsyncIterator[FakeHarmonyServer]:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
    if timestamps not in ("words", "segments"):
        raise ValueError("timestamps must be 'words' or 'segments'")
    state = {"faults_sent": 0}
    server: FakeHarmonyServer

    def faulting() -> bool:
        return fault is not None and (fail_times is None or state["faults_sent"] < fail_times)

    async def handler(req: FakeRequest, res: Responder) -> None:
        if req.method != "POST" or req.path != "/v1/audio/transcriptions":
            await res.send_json(404, {"detail": "Not Found"})
            return
        forced = fault == "unauthorized" and faulting()
        if api_key is not None or forced:
            sent = req.headers.get("authorization", "")
            if sent != f"Bearer {api_key}" or forced:
                state["faults_sent"] += forced
                await res.send_json(401, _error(401, f"Invalid API key: {sent.removeprefix('Bearer ')}", "AuthenticationError"))
                return
        try:
            body = json.loads(req.body)
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
        except ValueError as exc:
            await res.send_json(400, _error(400, f"Invalid JSON body: {exc}", "BadRequestError"))
            return
        upload = HarmonyUpload(body, None, None)
        server.uploads.append(upload)

        async def refuse(status: int, message: str, type_: str, param: str | None = None) -> None:
            upload.problem = message
            await res.send_json(status, _error(status, message, type_, param))

        model = body.get("model")
        if model not in models:
            await refuse(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
            return
        encoded = body.get("input_audio")
        if not isinstance(encoded, str) or not encoded:
            await refuse(400, "input_audio is required", "BadRequestError", "input_audio")
            return
        try:
            upload.audio = read_wav(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            await refuse(400, f"Could not read input_audio: {exc}", "BadRequestError", "input_audio")
            return
        problem = audio_problem(upload.audio, expect_duration_s, duration_tolerance_s)
        if problem:
            await refuse(400, problem, "BadRequestError", "input_audio")
            return

        if faulting():
            state["faults_sent"] += 1
            await send_fault(res)
            return

        words = spread_words(text, upload.audio.duration_s)
        stamps: list[Any] | None = None
        if body.get("get_timestamps"):
            if timestamps == "words":
                stamps = words
            else:
                stamps = [
                    {"id": 1, "seek": 0, "start": 0.0, "end": round(upload.audio.duration_s, 3), "text": " " + text,
                     "words": [{**w, "probability": 0.9} for w in words]}
                ]  # fmt: skip
        await res.send_json(
            200,
            {
                "id": "stt-fake-1",
                "model": model,
                "created": 1700000000,
                "text": " " + text,
                "language": language if body.get("get_language") else None,
                "timestamps": stamps,
            },
        )

    async def send_fault(res: Responder) -> None:
        if fault == "bad_request":
            await res.send_json(400, _error(400, "Audio decoding failed: invalid data", "BadRequestError"))
        elif fault == "server_error":
            await res.send_json(500, _error(500, "Internal inference error", "InternalServerError"))
        elif fault == "unavailable":
            await res.send_json(503, _error(503, "Engine is loading models", "ServiceUnavailable"), {"retry-after": retry_after})
        elif fault == "rate_limit":
            await res.send_json(429, _error(429, "Too many requests", "RateLimitError"), {"retry-after": retry_after})
        elif fault == "hang":
            if await hang_until_disconnect(res, hang_s):
                server.disconnects += 1
        elif fault == "garbage":
            await res.send(200, b"Internal Server Error", {"content-type": "text/plain"})
        elif fault == "abort":
            await res.start(200, {"content-type": "application/json", "content-length": "300"})
            await res.write(b'{"id": "stt-')
            await res.abort()
        elif fault == "error_in_200":
            await res.send_json(200, _error(500, "Inference worker crashed", "InternalServerError"))

    inflight = InFlight()
    async with serve_http(inflight.wrap(handler)) as http_server:
        server = FakeHarmonyServer(http_server, inflight=inflight)
        yield server
