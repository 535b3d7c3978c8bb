"""A fake ElevenLabs on 127.0.0.1: the HTTP stream with timestamps and the stream-input socket.

HTTP (h11, `tests.fakes.http_server`):
``POST /v1/text-to-speech/{voice_id}/stream/with-timestamps?output_format=...`` with header
``xi-api-key`` and body ``{"text", "model_id", "voice_settings"?, ...}`` answers NDJSON
lines ``{"audio_base64", "alignment": {"characters", "character_start_times_seconds",
"character_end_times_seconds"}, "normalized_alignment": {...}}``, ``chunk_chars``
characters per line. Errors are ``{"detail": {"status", "message"}}``: 401
``invalid_api_key`` (its message repeats the key given, which the real service does not,
so a client that fails to scrub is caught), 404 ``voice_not_found``, 400 for an unknown
model or format.

WebSocket (websockets.trio):
``/v1/text-to-speech/{voice_id}/stream-input?model_id=&output_format=``. The key may come
as the ``xi-api-key`` header or ``xi_api_key`` in the first message, which must be
``{"text": " ", ...}``. Text is buffered and spoken when the buffer reaches the next
``generation_config.chunk_length_schedule`` size, on ``flush``, or on ``{"text": ""}``,
which ends the stream with ``{"isFinal": true}`` and a normal close. Audio messages are
``{"audio", "isFinal": null, "normalizedAlignment", "alignment"}`` with ``chars``,
``charStartTimesMs`` and ``charDurationsMs`` (the SDK's spelling) counted from the start
of that message's audio (``alignment_times="chunk"``, the default here) or of the whole
stream (``"absolute"``). After ``idle_timeout`` seconds without a message the socket
sends ``input_timeout_exceeded`` and closes with 1008, as the service does after 20 s.

The speech is the known tone of `tests.fakes.tts_tone`: each generated text (one HTTP
request, or one buffer flush on the socket) is one tone whose pitch depends on that text
and whose length is ``ms_per_char`` per character. ``pcm_*``, ``ulaw_8000``/``alaw_8000``,
``mp3_*`` and ``opus_48000_*`` (HTTP only) are produced.

    async with fake_elevenlabs(ttfa=0.1, rtf=0.2) as fake:
        tts = elevenlabs.create(ModuleSpec("v", "tts", "elevenlabs", fake.options()))
        rt = elevenlabs_realtime.create(ModuleSpec("r", "tts", "elevenlabs_realtime", fake.options()))

Fault modes (``fault=``), for both transports unless noted:
``"status"`` (HTTP: answer ``status`` with ``detail_status``/``message``; socket: refuse the
handshake with that status), ``"rate_limit"`` (HTTP: 429 ``too_many_concurrent_requests``
for the first ``fail_times`` requests, with ``Retry-After`` unless ``retry_after`` is None),
``"hang"`` (HTTP: never answer until the client hangs up; socket: accept text, never speak), ``"hang_mid"`` (one audio
piece, then silence), ``"drop"`` (one audio piece, then cut the TCP connection),
``"garbage"`` (HTTP: lines that are not JSON; socket: a frame that is not JSON after the
first audio), ``"bad_audio"`` (base64 that is not base64), ``"error"`` (socket: send
``{"message", "error": detail_status, "code": 1008}`` then close 1008), ``"auth"`` (refuse
every key).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import trio
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.trio.server import ServerConnection

from tests.fakes.http_server import FakeHTTPServer, FakeRequest, Responder, serve_http
from tests.fakes.inflight import InFlight
from tests.fakes.stt_support import hang_until_disconnect
from tests.fakes.tts_tone import MS_PER_CHAR, Pace, encode, split_even, tone
from tests.fakes.ws_server import serve_ws

FAULTS = (None, "status", "rate_limit", "hang", "hang_mid", "drop", "garbage", "bad_audio", "error", "auth")
MODELS = ("eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5", "eleven_v3")
DEFAULT_SCHEDULE = (120, 160, 250, 290)
_HTTP_PATH = re.compile(r"^/v1/text-to-speech/([^/]+)/stream/with-timestamps$")
_WS_PATH = re.compile(r"^/v1/text-to-speech/([^/]+)/stream-input$")


def parse_format(output_format: str) -> tuple[str, int]:
    codec, _, rest = output_format.partition("_")
    rate = rest.partition("_")[0]
    if codec not in ("pcm", "mp3", "opus", "ulaw", "alaw") or not rate.isdigit():
        raise ValueError(output_format)
    return codec, int(rate)


def encode_for(samples: np.ndarray, rate: int, codec: str, *, raw_mp3: bool = False) -> bytes:
    """``raw_mp3``: bare MP3 frames (no ID3 tag, no Xing header), so pieces concatenate."""
    if codec == "mp3" and raw_mp3:
        return _raw_mp3(samples, rate)
    return encode(samples, rate, codec)


def _raw_mp3(samples: np.ndarray, rate: int) -> bytes:
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3", options={"id3v2_version": "0", "write_xing": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


@dataclass
class FakeElevenLabs:
    url: str  # HTTP base, e.g. http://127.0.0.1:PORT
    ws_url: str  # ws://127.0.0.1:PORT
    api_key: str
    voices: tuple[str, ...]
    http: FakeHTTPServer
    ms_per_char: float
    tts_requests: list[dict[str, Any]] = field(default_factory=list)  # HTTP bodies + query, in order
    ws_paths: list[str] = field(default_factory=list)  # handshake targets (path + query)
    ws_headers: list[Headers] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # socket messages from clients
    generations: list[str] = field(default_factory=list)  # texts spoken on sockets, in order
    violations: list[str] = field(default_factory=list)
    sockets_opened: int = 0
    sockets_closed: int = 0
    http_completed: int = 0
    inflight: InFlight = field(default_factory=InFlight)  # HTTP requests still being answered
    _closed_events: list[trio.Event] = field(default_factory=list)

    @property
    def requests(self) -> list[FakeRequest]:
        return self.http.requests

    @property
    def voice(self) -> str:
        return self.voices[0]

    def options(self, **extra: Any) -> dict[str, Any]:
        """Module options that point an `elevenlabs` or `elevenlabs_realtime` module here."""
        return {"base_url": self.url, "ws_url": self.ws_url, "api_key": self.api_key, "voice": self.voice, **extra}

    async def wait_sockets_closed(self, timeout: float = 2.0) -> bool:
        with trio.move_on_after(timeout):
            for closed in list(self._closed_events):
                await closed.wait()
            return True
        return False

    async def wait_no_http_connections(self, timeout: float = 2.0) -> bool:
        with trio.move_on_after(timeout):
            while self.http.open_connections:
                await trio.sleep(0.005)
            return True
        return False


def _detail(status: str, message: str) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message}}


def _http_alignment(chars: str, starts_ms: list[float], ms_per_char: float) -> dict[str, Any]:
    return {
        "characters": list(chars),
        "character_start_times_seconds": [round(s / 1000.0, 6) for s in starts_ms],
        "character_end_times_seconds": [round((s + ms_per_char) / 1000.0, 6) for s in starts_ms],
    }


def _ws_alignment(chars: str, starts_ms: list[float], ms_per_char: float) -> dict[str, Any]:
    return {
        "chars": list(chars),
        "charStartTimesMs": [round(s) for s in starts_ms],
        "charDurationsMs": [round(ms_per_char) for _ in starts_ms],
    }


@asynccontextmanager
async def fake_elevenlabs(
    *,
    api_key: str = "xi-test-key-0123456789",
    voices: tuple[str, ...] = ("voice-ava", "voice-bard"),
    ms_per_char: float = MS_PER_CHAR,
    chunk_chars: int = 8,
    ttfa: float = 0.0,
    rtf: float = 0.0,
    alignment_times: str = "absolute",
    ws_alignment_times: str = "chunk",
    fault: str | None = None,
    status: int = 500,
    detail_status: str = "system_busy",
    message: str = "The system is experiencing heavy traffic, please try again.",
    fail_times: int = 1,
    retry_after: str | None = "0",
    idle_timeout: float = 20.0,
) -> AsyncIterator[FakeElevenLabs]:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    pace = Pace(ttfa, rtf)
    fake: FakeElevenLabs
    rate_limited = 0

    # ------------------------------------------------------------------ HTTP
    async def http_handler(req: FakeRequest, res: Responder) -> None:
        nonlocal rate_limited
        match = _HTTP_PATH.match(req.path)
        if req.method != "POST" or match is None:
            await res.send_json(404, {"detail": "Not Found"})
            return
        given = req.headers.get("xi-api-key", "")
        if given != api_key or fault == "auth":
            await res.send_json(401, _detail("invalid_api_key", f"Invalid API key: {given}"))
            return
        voice = match.group(1)
        try:
            body = req.json()
        except ValueError:
            await res.send_json(400, {"detail": "Invalid JSON"})
            return
        output_format = (req.query.get("output_format") or ["mp3_44100_128"])[0]
        fake.tts_requests.append({**body, "_query": {k: v[0] for k, v in req.query.items()}, "_voice": voice})
        if voice not in voices:
            await res.send_json(404, _detail("voice_not_found", f"A voice with the voice_id {voice} was not found."))
            return
        if body.get("model_id", "eleven_multilingual_v2") not in MODELS:
            await res.send_json(400, _detail("model_not_found", f"Model {body.get('model_id')} does not exist."))
            return
        text = body.get("text")
        if not isinstance(text, str) or not text:
            await res.send_json(422, {"detail": [{"loc": ["body", "text"], "msg": "field required", "type": "value_error"}]})
            return
        try:
            codec, rate = parse_format(output_format)
        except ValueError:
            await res.send_json(400, _detail("invalid_output_format", f"Output format {output_format} is not supported."))
            return
        if fault == "status":
            await res.send_json(status, _detail(detail_status, message))
            return
        if fault == "rate_limit" and rate_limited < fail_times:
            rate_limited += 1
            headers = {} if retry_after is None else {"retry-after": retry_after}
            await res.send_json(429, _detail("too_many_concurrent_requests", "Too many concurrent requests."), headers)
            return
        if fault == "hang":
            await hang_until_disconnect(res, 3600)
            return

        samples = tone(text, rate, ms_per_char)
        groups = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
        if codec in ("pcm", "ulaw", "alaw"):
            # Exact: each line carries the samples of its own characters.
            per_char = len(samples) / max(1, len(text))
            cuts = [round(i * chunk_chars * per_char) for i in range(len(groups))] + [len(samples)]
            datas = [encode_for(samples[cuts[i] : cuts[i + 1]], rate, codec) for i in range(len(groups))]
        else:
            datas = split_even(encode_for(samples, rate, codec), len(groups))
        await res.start(200, {"content-type": "application/json"})
        for i, (group, data) in enumerate(zip(groups, datas, strict=True)):
            first = i * chunk_chars
            starts = [(first + j) * ms_per_char for j in range(len(group))]
            if alignment_times == "chunk":
                starts = [s - first * ms_per_char for s in starts]
            audio = "@@not-base64@@" if fault == "bad_audio" else base64.b64encode(data).decode()
            line = {
                "audio_base64": audio,
                "alignment": _http_alignment(group, starts, ms_per_char),
                "normalized_alignment": _http_alignment(group.lower(), starts, ms_per_char),
            }
            await pace.before(i, len(group) * ms_per_char / 1000.0)
            if fault == "garbage":
                await res.write(b"<html>502 Bad Gateway</html>\n")
                continue
            await res.write(json.dumps(line) + "\n")
            if i == 0 and fault == "hang_mid":
                await hang_until_disconnect(res, 3600)
                return
            if i == 0 and fault == "drop":
                await res.abort()
                return
        await res.end()
        fake.http_completed += 1

    # ------------------------------------------------------------------ stream-input socket
    def check_handshake(conn: ServerConnection, request: Request) -> Response | None:
        fake.ws_paths.append(request.path)
        fake.ws_headers.append(request.headers)
        match = _WS_PATH.match(urlsplit(request.path).path)
        if match is None:
            return conn.respond(404, "Not Found\n")
        if fault == "status":
            return conn.respond(status, json.dumps(_detail(detail_status, message)) + "\n")
        header_key = request.headers.get("xi-api-key")
        if header_key is not None and (header_key != api_key or fault == "auth"):
            return conn.respond(403, json.dumps(_detail("invalid_api_key", "Invalid API key")) + "\n")
        return None

    async def ws_send(ws: ServerConnection, obj: dict[str, Any]) -> None:
        await ws.send(json.dumps(obj))

    async def speak(ws: ServerConnection, text: str, codec: str, rate: int, state: dict[str, Any]) -> None:
        """Send one generation: ``text`` as tone, ``chunk_chars`` characters per message."""
        fake.generations.append(text)
        samples = tone(text, rate, ms_per_char)
        per_char = len(samples) / max(1, len(text))
        groups = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)]
        cuts = [round(i * chunk_chars * per_char) for i in range(len(groups))] + [len(samples)]
        # MP3 is one encoding of the whole generation cut into pieces; PCM and G.711 pieces
        # carry exactly their characters' samples.
        mp3_pieces = split_even(_raw_mp3(samples, rate), len(groups)) if codec == "mp3" else []
        for i, group in enumerate(groups):
            piece = samples[cuts[i] : cuts[i + 1]]
            data = mp3_pieces[i] if codec == "mp3" else encode_for(piece, rate, codec)
            base_ms = state["audio_ms"]
            starts = [j * ms_per_char for j in range(len(group))]
            if ws_alignment_times == "absolute":
                starts = [base_ms + s for s in starts]
            await pace.before(state["pieces"], len(group) * ms_per_char / 1000.0)
            audio = "@@not-base64@@" if fault == "bad_audio" else base64.b64encode(data).decode()
            await ws_send(ws, {
                "audio": audio,
                "isFinal": None,
                "normalizedAlignment": _ws_alignment(group.lower(), starts, ms_per_char),
                "alignment": _ws_alignment(group, starts, ms_per_char),
            })
            state["pieces"] += 1
            state["audio_ms"] += len(piece) * 1000.0 / rate
            if fault == "hang_mid":
                await trio.sleep_forever()
            if fault == "drop":
                await trio.aclose_forcefully(ws.stream)
                raise trio.ClosedResourceError
            if fault == "garbage":
                await ws.send("<html>oops</html>")

    async def conversation(ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        query = parse_qs(urlsplit(request.path).query)
        voice = _WS_PATH.match(urlsplit(request.path).path).group(1)  # type: ignore[union-attr]
        output_format = (query.get("output_format") or ["mp3_44100_128"])[0]
        model_id = (query.get("model_id") or ["eleven_multilingual_v2"])[0]
        if voice not in voices or model_id not in MODELS:
            what = f"voice {voice}" if voice not in voices else f"model {model_id}"
            await ws_send(ws, {"message": f"Unknown {what}", "error": "not_found", "code": 1008})
            await ws.aclose(1008, f"Unknown {what}")
            return
        try:
            codec, rate = parse_format(output_format)
            if codec == "opus":
                raise ValueError(output_format)
        except ValueError:
            await ws.aclose(1008, f"Invalid output format {output_format}")
            return
        schedule = list(DEFAULT_SCHEDULE)
        state: dict[str, Any] = {"audio_ms": 0.0, "pieces": 0}
        buffer = ""
        first = True
        stage = 0
        while True:
            with trio.move_on_after(idle_timeout) as idle:
                frame = await ws.recv()
            if idle.cancelled_caught:
                await ws_send(ws, {
                    "message": f"Have not received a new text input within the timeout of {idle_timeout:g} seconds. "
                               "Closing the connection.",
                    "error": "input_timeout_exceeded",
                    "code": 1008,
                })
                await ws.aclose(1008, "Input timeout exceeded")
                return
            try:
                msg = json.loads(frame)
            except ValueError:
                fake.violations.append(f"frame is not JSON: {frame!r}")
                continue
            fake.received.append(msg)
            if first:
                first = False
                given = msg.get("xi_api_key") or request.headers.get("xi-api-key")
                if given != api_key or fault == "auth":
                    await ws_send(ws, {"message": "Invalid API key", "error": "invalid_api_key", "code": 1008})
                    await ws.aclose(1008, "Invalid API key")
                    return
                if msg.get("text") != " ":
                    fake.violations.append(f"first message text is {msg.get('text')!r}, expected ' '")
                config = msg.get("generation_config") or {}
                if config.get("chunk_length_schedule"):
                    schedule = [int(x) for x in config["chunk_length_schedule"]]
                if fault == "error":
                    await ws_send(ws, {"message": message, "error": detail_status, "code": 1008})
                    await ws.aclose(1008, message[:100])
                    return
                continue
            text = msg.get("text")
            if not isinstance(text, str):
                fake.violations.append(f"message without text: {msg!r}")
                continue
            if text == "":
                if buffer.strip() and fault != "hang":
                    await speak(ws, buffer, codec, rate, state)
                buffer = ""
                if fault == "hang":
                    await trio.sleep_forever()
                await ws_send(ws, {"isFinal": True})
                await ws.aclose(1000)
                return
            if not text.endswith(" "):
                fake.violations.append(f"text piece does not end with a space: {text!r}")
            buffer += text
            threshold = schedule[min(stage, len(schedule) - 1)]
            if fault == "hang":
                continue
            if msg.get("flush") or len(buffer) >= threshold:
                if buffer.strip():
                    await speak(ws, buffer, codec, rate, state)
                buffer = ""
                stage += 1

    async def socket_handler(ws: ServerConnection) -> None:
        closed = trio.Event()
        fake._closed_events.append(closed)
        fake.sockets_opened += 1
        try:
            await conversation(ws)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            fake.sockets_closed += 1
            closed.set()

    inflight = InFlight()
    async with serve_http(inflight.wrap(http_handler)) as http_server, serve_ws(socket_handler, process_request=check_handshake) as ws_url:
        fake = FakeElevenLabs(
            url=http_server.url,
            ws_url=ws_url,
            api_key=api_key,
            voices=voices,
            http=http_server,
            ms_per_char=ms_per_char,
            inflight=inflight,
        )
        yield fake
