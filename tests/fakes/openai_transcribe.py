"""A fake of OpenAI's `POST /v1/audio/transcriptions` on 127.0.0.1.

It does what the real endpoint does to a request before transcribing: checks the bearer
key, parses the multipart body (with the stdlib's MIME parser, not ours), requires a
`model` it knows and a `file` that is a readable WAV of acceptable (and, if the test says
so, expected) duration, and refuses format combinations OpenAI refuses (`verbose_json` or
word timestamps with the gpt-4o models). Then it "transcribes" by answering the configured
text in the shape the model and `response_format` call for, with word timings spread over
the audio it really received.

    async with fake_openai_transcribe(text="Open the gate.", expect_duration_s=2.5) as server:
        stt = OpenAITranscribeSTT(api_key=server.api_key, base_url=server.url)
        ...
        server.uploads[0].fields["model"], server.uploads[0].audio.duration_s

Faults (`fault=`): "bad_request" 400, "unauthorized" 401, "server_error" 500,
"unavailable" 503 + Retry-After, "rate_limit" 429 + Retry-After, "hang" (answers nothing
until the client hangs up), "garbage" (200 with a non-JSON body), "abort" (drops the
connection mid-body), "no_text" (200 JSON without `text`). `fail_times=n` makes only the first n requests fail.
`text` may also be a function of the audio received (a recognizer hears what it is sent:
tests of partial transcripts answer by what the upload ends with), `delay_s` makes
each transcription take that long, as a loaded service does, and `gated=True` holds every
answer until the test calls `server.allow()` (one answer per call), so a test decides when
each transcription finishes.
Harsher than the real service on purpose: its 401 echoes the key it received in full (OpenAI
masks it), so tests prove the client scrubs secrets from errors.
"""

from __future__ import annotations

import email.parser
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import trio

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import ReceivedAudio, audio_problem, hang_until_disconnect, read_wav, spread_words

MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
GPT4O_FORMATS = ("json", "text")
ALL_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
FAULTS = ("bad_request", "unauthorized", "server_error", "unavailable", "rate_limit", "hang", "garbage", "abort", "no_text")


@dataclass
class Upload:
    """One accepted-for-parsing multipart request."""

    fields: dict[str, list[str]]
    filename: str | None
    content_type: str | None
    audio: ReceivedAudio | None
    problem: str | None  # why it was refused, or None

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


@dataclass
class FakeTranscribeServer:
    http: FakeHTTPServer
    api_key: str
    uploads: list[Upload] = field(default_factory=list)
    disconnects: int = 0  # clients that hung up on a hanging request
    inflight: InFlight = field(default_factory=InFlight)  # requests still being answered
    gate: trio.Semaphore | None = None  # with gated=True: one permit per answer

    def allow(self, answers: int = 1) -> None:
        """Let `answers` more transcriptions be answered (gated=True)."""
        assert self.gate is not None, "allow() needs gated=True"
        for _ in range(answers):
            self.gate.release()

    @property
    def url(self) -> str:
        """The base URL a client is configured with (like https://api.openai.com/v1)."""
        return self.http.url + "/v1"

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def open_connections(self) -> int:
        return self.http.open_connections


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, list[str]], tuple[str | None, str | None, bytes] | None]:
    """(text fields, (filename, content type, bytes) of the `file` part) of a form-data body."""
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        raise ValueError(f"expected multipart/form-data with a boundary, got {content_type!r}")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise ValueError("multipart body has no parts")
    fields: dict[str, list[str]] = {}
    upload = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            raise ValueError("a form part has no name")
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            if name == "file":
                upload = (part.get_filename(), part.get_content_type(), payload)
            continue
        fields.setdefault(str(name), []).append(payload.decode("utf-8"))
    return fields, upload


def _error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


@asynccontextmanager
async def fake_openai_transcribe(
    *,
    text: str | Callable[[ReceivedAudio], str] = "Hello there, traveler.",
    language: str = "english",
    fault: str | None = None,
    fail_times: int | None = None,
    api_key: str = "sk-test-fake-0123456789abcdef",
    expect_duration_s: float | None = None,
    duration_tolerance_s: float = 0.05,
    retry_after: str = "0.05",
    hang_s: float = 60.0,
    delay_s: float = 0.0,
    gated: bool = False,
) -> AsyncIterator[FakeTranscribeServer]:
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
    state: dict[str, Any] = {"faults_sent": 0}
    text_of = text
    server: FakeTranscribeServer

    def faulting() -> bool:
        return fault is not None and (fail_times is None or state["faults_sent"] < fail_times)

    async def handler(req: FakeRequest, res: Responder) -> None:
        if req.method != "POST" or req.path != "/v1/audio/transcriptions":
            await res.send_json(404, _error(f"Invalid URL ({req.method} {req.path})", "invalid_request_error"))
            return
        sent_key = req.headers.get("authorization", "")
        forced = fault == "unauthorized" and faulting()
        if sent_key != f"Bearer {api_key}" or forced:
            state["faults_sent"] += forced
            shown = sent_key.removeprefix("Bearer ")
            await res.send_json(
                401, _error(f"Incorrect API key provided: {shown}.", "invalid_request_error", "invalid_api_key")
            )
            return
        try:
            fields, file_part = parse_multipart(req.headers.get("content-type", ""), req.body)
        except ValueError as exc:
            await res.send_json(400, _error(f"Could not parse multipart form: {exc}", "invalid_request_error"))
            return
        upload = Upload(fields, None, None, None, None)
        server.uploads.append(upload)

        async def refuse(message: str, param: str | None = None) -> None:
            upload.problem = message
            await res.send_json(400, _error(message, "invalid_request_error", param=param))

        model = upload.field("model")
        if model not in MODELS:
            await refuse(f"Invalid model {model!r}: must be one of {', '.join(MODELS)}.", "model")
            return
        if file_part is None:
            await refuse("Missing required parameter: 'file'.", "file")
            return
        upload.filename, upload.content_type, data = file_part
        try:
            upload.audio = read_wav(data)
        except ValueError as exc:
            await refuse(f"Invalid file format ({exc}). Supported formats: ['flac', 'mp3', 'wav', ...]", "file")
            return
        problem = audio_problem(upload.audio, expect_duration_s, duration_tolerance_s)
        if problem:
            await refuse(problem, "file")
            return
        response_format = upload.field("response_format") or "json"
        granularities = fields.get("timestamp_granularities[]", [])
        if response_format not in ALL_FORMATS:
            await refuse(f"Invalid response_format {response_format!r}.", "response_format")
            return
        if model != "whisper-1" and response_format not in GPT4O_FORMATS:
            await refuse(
                f"response_format '{response_format}' is not compatible with model '{model}'. Use 'json' or 'text' instead.",
                "response_format",
            )
            return
        if granularities and (response_format != "verbose_json" or any(g not in ("word", "segment") for g in granularities)):
            await refuse("timestamp_granularities[] requires response_format=verbose_json.", "timestamp_granularities")
            return

        if faulting():
            state["faults_sent"] += 1
            await send_fault(res)
            return

        if delay_s:
            await trio.sleep(delay_s)
        if server.gate is not None:
            await server.gate.acquire()
        duration = upload.audio.duration_s
        text = heard(upload.audio)
        if response_format == "text":
            await res.send(200, text + "\n", {"content-type": "text/plain"})
            return
        if response_format == "verbose_json":
            body: dict[str, Any] = {
                "task": "transcribe",
                "language": language,
                "duration": round(duration, 3),
                "text": text,
                "segments": [{"id": 0, "start": 0.0, "end": round(duration, 3), "text": " " + text}],
            }
            if "word" in granularities:
                body["words"] = spread_words(text, duration)
            await res.send_json(200, body)
            return
        body = {"text": text}
        if model != "whisper-1":
            body["usage"] = {"type": "tokens", "input_tokens": 40, "output_tokens": len(text.split()), "total_tokens": 40 + len(text.split())}
        await res.send_json(200, body)

    def heard(audio: ReceivedAudio) -> str:
        return text_of(audio) if callable(text_of) else text_of

    async def send_fault(res: Responder) -> None:
        if fault == "bad_request":
            await res.send_json(400, _error("The audio could not be decoded.", "invalid_request_error"))
        elif fault == "server_error":
            await res.send_json(500, _error("The server had an error while processing your request.", "server_error"))
        elif fault == "unavailable":
            await res.send_json(503, _error("The engine is currently overloaded.", "server_error"), {"retry-after": retry_after})
        elif fault == "rate_limit":
            await res.send_json(
                429,
                _error("Rate limit reached for whisper-1 on requests per min (RPM): Limit 50.", "requests", "rate_limit_exceeded"),
                {"retry-after": retry_after},
            )
        elif fault == "hang":
            if await hang_until_disconnect(res, hang_s):
                server.disconnects += 1
        elif fault == "garbage":
            await res.send(200, b"<html>502 Bad Gateway</html>", {"content-type": "application/json"})
        elif fault == "abort":
            await res.start(200, {"content-type": "application/json", "content-length": "500"})
            await res.write(b'{"text": "Hel')
            await res.abort()
        elif fault == "no_text":
            await res.send_json(200, {"transcript": "wrong field"})

    inflight = InFlight()
    async with serve_http(inflight.wrap(handler)) as http_server:
        server = FakeTranscribeServer(http_server, api_key, inflight=inflight, gate=trio.Semaphore(0) if gated else None)
        yield server
