"""Harmony Speech Engine transcription against a local fake that decodes the base64 WAV."""

from __future__ import annotations

import base64
import socket
import time

import numpy as np
import pytest
import trio

from bridge.providers.base import STT, ProviderError
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.stt.harmonyspeech import HarmonySpeechSTT, parse_transcription
from tests.fakes.harmonyspeech_stt import fake_harmonyspeech_stt
from tests.fakes.stt_support import read_wav


def tone(rate: int, seconds: float, freq: float = 300.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def client(url: str, **kwargs) -> HarmonySpeechSTT:
    kwargs.setdefault("options", {"timeout": 2.0, "max_retries": 2})
    return HarmonySpeechSTT(base_url=url, **kwargs)


@pytest.mark.parametrize("shape", ["words", "segments"])
async def test_request_format_and_both_timestamp_shapes(shape: str) -> None:
    async with fake_harmonyspeech_stt(text="Light the torches.", timestamps=shape, expect_duration_s=1.2) as server:
        stt = create_provider(ModuleSpec("ears", "stt", "harmonyspeech", {"base_url": server.url + "/v1/", "timeout": 2}))
        assert isinstance(stt, STT)
        transcript = await stt.transcribe(tone(24000, 1.2), 24000)
        await stt.aclose()

    assert transcript.text == "Light the torches."
    assert transcript.language == "en"
    assert [w.text for w in transcript.words] == ["Light", "the", "torches"]
    assert transcript.words[-1].end_ms == pytest.approx(1200, abs=1)

    (request,) = server.requests
    assert request.path == "/v1/audio/transcriptions"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers  # no key configured: none sent
    body = request.json()
    assert set(body) == {"model", "input_audio", "get_language", "get_timestamps"}
    assert body["model"] == "faster-whisper-large-v3-turbo"
    assert body["get_language"] is True and body["get_timestamps"] is True
    audio = read_wav(base64.b64decode(body["input_audio"]))
    assert (audio.sample_rate, audio.channels) == (16000, 1)
    assert server.uploads[0].problem is None


async def test_api_key_and_model_are_sent() -> None:
    async with fake_harmonyspeech_stt(api_key="hs-key-777777", models=("faster-whisper-small",)) as server:
        stt = client(server.url, api_key="hs-key-777777", model="faster-whisper-small")
        transcript = await stt.transcribe(tone(16000, 0.5), 16000)
        await stt.aclose()
    assert transcript.text == "Hello there, traveler."
    assert server.requests[0].headers["authorization"] == "Bearer hs-key-777777"


async def test_unknown_model_is_the_engines_404_message() -> None:
    async with fake_harmonyspeech_stt() as server:
        stt = client(server.url, model="whisper-9000")
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 0.5), 16000)
        await stt.aclose()
    assert caught.value.code == "backend_error"
    assert "HTTP 404" in caught.value.message and "The model `whisper-9000` does not exist." in caught.value.message


async def test_the_fake_refuses_audio_of_the_wrong_length() -> None:
    async with fake_harmonyspeech_stt(expect_duration_s=3.0) as server:
        stt = client(server.url)
        with pytest.raises(ProviderError, match=r"expected 3.000 s of audio, got 1.000 s"):
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ("bad_request", "backend_error", "Audio decoding failed: invalid data"),
        ("server_error", "backend_error", "Internal inference error"),
        ("garbage", "backend_error", "not JSON: 'Internal Server Error'"),
        ("abort", "backend_error", "dropped the connection"),
        ("error_in_200", "backend_error", "Inference worker crashed"),
    ],
)
async def test_faults_map_to_protocol_codes_with_the_engines_words(fault: str, code: str, words: str) -> None:
    async with fake_harmonyspeech_stt(fault=fault) as server:
        stt = client(server.url)
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == code
    assert words in caught.value.message
    assert len(server.requests) == 1


async def test_a_wrong_key_is_not_repeated_in_the_error() -> None:
    async with fake_harmonyspeech_stt(api_key="the-right-key") as server:
        stt = client(server.url, api_key="hs-secret-wrong-key-31337")
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert "HTTP 401" in caught.value.message and "Invalid API key: ***" in caught.value.message
    assert "hs-secret-wrong-key-31337" not in caught.value.message


async def test_429_is_retried_and_bounded() -> None:
    async with fake_harmonyspeech_stt(fault="rate_limit", fail_times=2, retry_after="0.05") as server:
        stt = client(server.url, options={"max_retries": 2})
        assert (await stt.transcribe(tone(16000, 1.0), 16000)).text == "Hello there, traveler."
        await stt.aclose()
    assert len(server.requests) == 3
    async with fake_harmonyspeech_stt(fault="rate_limit", retry_after="0.01") as server:
        stt = client(server.url, options={"max_retries": 1})
        with pytest.raises(ProviderError, match="Too many requests"):
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert len(server.requests) == 2


async def test_engine_loading_is_backend_unavailable() -> None:
    async with fake_harmonyspeech_stt(fault="unavailable", retry_after="0.01") as server:
        stt = client(server.url, options={"max_retries": 0})
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == "backend_unavailable" and "Engine is loading models" in caught.value.message


async def test_hang_is_a_timeout_and_cancel_closes_the_connection() -> None:
    async with fake_harmonyspeech_stt(fault="hang") as server:
        stt = client(server.url, options={"timeout": 0.3})
        started = time.perf_counter()
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        assert caught.value.code == "timeout" and time.perf_counter() - started < 2
        await stt.aclose()

        stt = client(server.url, options={"timeout": 30})
        with trio.move_on_after(0.2):
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
        with trio.fail_after(2):
            while server.open_connections:
                await trio.sleep(0.01)
    assert server.disconnects == 2


async def test_nobody_listening_is_backend_unavailable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stt = client(f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(tone(16000, 1.0), 16000)
    await stt.aclose()
    assert caught.value.code == "backend_unavailable"


def test_timestamps_as_json_strings_and_segments_without_words() -> None:
    body = {
        "text": " Hi there ",
        "language": "en",
        "timestamps": [
            '{"word": " Hi", "start": 0.1, "end": 0.3}',
            {"id": 1, "start": 0.0, "end": 1.0, "text": " Hi there", "words": None},
            {"word": "there", "start": 0.4, "end": "bad"},
            {"word": "there", "start": 0.4, "end": 0.7},
        ],
    }
    transcript = parse_transcription(body)
    assert transcript.text == "Hi there"
    assert [(w.text, w.start_ms, w.end_ms) for w in transcript.words] == [("Hi", 100.0, 300.0), ("there", 400.0, 700.0)]
    with pytest.raises(ProviderError, match="without a `text` field"):
        parse_transcription({"object": "list"})
