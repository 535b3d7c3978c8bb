"""OpenAI transcription against a local fake that parses the multipart and checks the WAV."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import trio

from bridge.providers.base import STT, ConfigError, ProviderError
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.stt.openai_transcribe import OpenAITranscribeSTT
from tests.fakes.openai_transcribe import fake_openai_transcribe

KEY = "sk-test-fake-0123456789abcdef"


def tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[np.argmax(spectrum)])


def client(url: str, **kwargs) -> OpenAITranscribeSTT:
    kwargs.setdefault("api_key", KEY)
    kwargs.setdefault("options", {"timeout": 2.0, "max_retries": 2})
    return OpenAITranscribeSTT(base_url=url, **kwargs)


async def test_whisper_1_request_and_word_timings() -> None:
    async with fake_openai_transcribe(text="Open the gate, quickly.", expect_duration_s=1.5) as server:
        stt = client(server.url, model="whisper-1", language="en", prompt="Names: Elena.")
        assert isinstance(stt, STT)
        transcript = await stt.transcribe(tone(48000, 1.5), 48000)
        await stt.aclose()

    assert transcript.text == "Open the gate, quickly."
    assert transcript.language == "en"  # verbose_json says "english"
    assert [w.text for w in transcript.words] == ["Open", "the", "gate", "quickly"]
    assert transcript.words[0].start_ms == 0.0
    assert transcript.words[-1].end_ms == pytest.approx(1500, abs=1)

    (upload,) = server.uploads
    assert upload.problem is None
    assert upload.fields["model"] == ["whisper-1"]
    assert upload.fields["response_format"] == ["verbose_json"]
    assert upload.fields["timestamp_granularities[]"] == ["word"]
    assert upload.fields["language"] == ["en"]
    assert upload.fields["prompt"] == ["Names: Elena."]
    assert upload.filename == "utterance.wav" and upload.content_type == "audio/wav"
    # The audio arrived as 16 kHz mono 16-bit and is the sound we sent.
    audio = upload.audio
    assert (audio.sample_rate, audio.channels, audio.sample_width) == (16000, 1, 2)
    assert abs(dominant_hz(audio.samples, 16000) - 440) < 2
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("model", ["gpt-4o-transcribe", "gpt-4o-mini-transcribe"])
async def test_gpt_4o_models_ask_for_json_without_timestamps(model: str) -> None:
    async with fake_openai_transcribe(text="Where is the key?", expect_duration_s=0.8) as server:
        stt = client(server.url, model=model)
        transcript = await stt.transcribe(tone(16000, 0.8), 16000)
        await stt.aclose()
    assert transcript.text == "Where is the key?" and transcript.words == []
    (upload,) = server.uploads
    assert upload.problem is None
    assert upload.fields["response_format"] == ["json"]
    assert "timestamp_granularities[]" not in upload.fields
    assert "language" not in upload.fields


async def test_the_fake_refuses_audio_of_the_wrong_length() -> None:
    # Proves the fake really checks what it receives: the client's error names the problem.
    async with fake_openai_transcribe(expect_duration_s=2.0) as server:
        stt = client(server.url)
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == "backend_error"
    assert "HTTP 400" in caught.value.message and "expected 2.000 s of audio, got 1.000 s" in caught.value.message


async def test_too_short_audio_sends_nothing() -> None:
    async with fake_openai_transcribe() as server:
        stt = client(server.url)
        assert (await stt.transcribe(np.zeros(1000, np.int16), 16000)).text == ""
        await stt.aclose()
    assert server.requests == []


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ("bad_request", "backend_error", "The audio could not be decoded."),
        ("unauthorized", "backend_error", "Incorrect API key provided"),
        ("server_error", "backend_error", "The server had an error while processing your request."),
        ("garbage", "backend_error", "not JSON: '<html>502 Bad Gateway</html>'"),
        ("abort", "backend_error", "dropped the connection"),
        ("no_text", "backend_error", "without a `text` field"),
    ],
)
async def test_faults_map_to_protocol_codes_with_the_providers_words(fault: str, code: str, words: str) -> None:
    async with fake_openai_transcribe(fault=fault) as server:
        stt = client(server.url)
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == code
    assert words in caught.value.message
    assert KEY not in caught.value.message and KEY not in str(caught.value)
    assert len(server.requests) == 1  # none of these is retried


async def test_unauthorized_error_is_scrubbed_even_though_the_server_echoes_the_key() -> None:
    async with fake_openai_transcribe(api_key="sk-the-right-one") as server:
        stt = client(server.url, api_key="sk-wrong-but-still-secret-42")
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert "Incorrect API key provided: ***" in caught.value.message
    assert "sk-wrong-but-still-secret-42" not in caught.value.message


async def test_rate_limit_is_retried_after_retry_after_then_succeeds() -> None:
    async with fake_openai_transcribe(text="Fine.", fault="rate_limit", fail_times=1, retry_after="0.2") as server:
        stt = client(server.url)
        started = time.perf_counter()
        transcript = await stt.transcribe(tone(16000, 1.0), 16000)
        elapsed = time.perf_counter() - started
        await stt.aclose()
    assert transcript.text == "Fine."
    assert len(server.requests) == 2
    assert elapsed >= 0.2


async def test_rate_limit_retries_are_bounded() -> None:
    async with fake_openai_transcribe(fault="rate_limit", retry_after="0.01") as server:
        stt = client(server.url, options={"max_retries": 2})
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert len(server.requests) == 3
    assert caught.value.code == "backend_error"
    assert "HTTP 429" in caught.value.message and "Rate limit reached" in caught.value.message


async def test_a_retry_after_beyond_the_cap_fails_at_once() -> None:
    async with fake_openai_transcribe(fault="rate_limit", retry_after="120") as server:
        stt = client(server.url, options={"max_retry_after": 5})
        with pytest.raises(ProviderError):
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert len(server.requests) == 1


async def test_overload_503_is_backend_unavailable_after_retries() -> None:
    async with fake_openai_transcribe(fault="unavailable", retry_after="0.01") as server:
        stt = client(server.url, options={"max_retries": 1})
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == "backend_unavailable"
    assert "overloaded" in caught.value.message
    assert len(server.requests) == 2


async def test_a_hanging_server_is_a_timeout() -> None:
    async with fake_openai_transcribe(fault="hang") as server:
        stt = client(server.url, options={"timeout": 0.3})
        started = time.perf_counter()
        with pytest.raises(ProviderError) as caught:
            await stt.transcribe(tone(16000, 1.0), 16000)
        await stt.aclose()
    assert caught.value.code == "timeout"
    assert time.perf_counter() - started < 2


async def test_nobody_listening_is_backend_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stt = client(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ProviderError) as caught:
        await stt.transcribe(tone(16000, 1.0), 16000)
    await stt.aclose()
    assert caught.value.code == "backend_unavailable"


async def test_cancelling_mid_request_closes_the_connection() -> None:
    async with fake_openai_transcribe(fault="hang") as server:
        stt = client(server.url, options={"timeout": 30})
        with trio.move_on_after(0.3) as scope:
            await stt.transcribe(tone(16000, 1.0), 16000)
        assert scope.cancelled_caught
        await stt.aclose()
        with trio.fail_after(2):
            while server.open_connections:
                await trio.sleep(0.01)
    assert server.disconnects == 1  # the fake saw the client hang up
    assert len(server.requests) == 1


def test_create_reads_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        create_provider(ModuleSpec("ears", "stt", "openai"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-123456")
    stt = create_provider(ModuleSpec("ears", "stt", "openai", {"model": "gpt-4o-mini-transcribe"}))
    assert isinstance(stt, OpenAITranscribeSTT)
    assert stt.model == "gpt-4o-mini-transcribe"
    assert stt.url == "https://api.openai.com/v1/audio/transcriptions"
    assert "sk-from-env" not in repr(stt.options)


def test_create_refuses_an_unknown_model_without_echoing_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as caught:
        create_provider(ModuleSpec("ears", "stt", "openai", {"api_key": "sk-inline-999999", "model": "whisper-2"}))
    assert "whisper-2" in str(caught.value) and "sk-inline-999999" not in str(caught.value)
    stt = create_provider(
        ModuleSpec("ears", "stt", "openai", {"api_key": "k-1234", "model": "Systran/faster-whisper-small", "allow_any_model": True, "base_url": "http://127.0.0.1:8000/v1/"})
    )
    assert stt.url == "http://127.0.0.1:8000/v1/audio/transcriptions"
