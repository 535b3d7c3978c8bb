"""The `openai` TTS module against a fake OpenAI speech endpoint over real HTTP."""

from __future__ import annotations


import numpy as np
import pytest
import trio

from bridge.providers.base import TTS, ConfigError, ProviderError, SpeechAudio, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.tts import openai_speech
from tests.fakes.openai_speech import PCM_RATE, fake_openai_speech
from tests.fakes.tts_tone import dominant_frequency, tone, tone_frequency, tone_sample_count
from tests.refused_port import refused_port

KEY = "sk-test-SECRET-openai-4242"
TEXT = "Well met, traveller. The road north is closed tonight."


def make(options: dict[str, object]) -> openai_speech.OpenAISpeechTTS:
    tts = create_provider(ModuleSpec("voice", "tts", "openai", options))
    assert isinstance(tts, openai_speech.OpenAISpeechTTS)
    return tts


async def speak(tts: TTS, text: str = TEXT, **kw: object) -> list[SpeechAudio]:
    async with tts.synthesize(TTSRequest(text, **kw)) as pieces:  # type: ignore[arg-type]
        return [p async for p in pieces]


def joined(pieces: list[SpeechAudio]) -> np.ndarray:
    return np.concatenate([p.samples for p in pieces])


async def test_pcm_stream_is_the_exact_tone_in_several_pieces_and_request_is_well_formed() -> None:
    async with fake_openai_speech(api_key=KEY, chunk_ms=80) as server:
        tts = make(server.options(model="tts-1", voice="nova"))
        assert isinstance(tts, TTS)
        try:
            pieces = await speak(tts)
        finally:
            await tts.aclose()
    assert len(pieces) > 5  # streamed, not one blob
    assert all(p.sample_rate == PCM_RATE and p.samples.dtype == np.int16 and p.samples.ndim == 1 for p in pieces)
    assert all(not p.characters for p in pieces)  # OpenAI gives no timing
    audio = joined(pieces)
    assert np.array_equal(audio, tone(TEXT, PCM_RATE))  # pcm is lossless: every sample checks
    [req] = server.requests
    assert req.method == "POST" and req.path == "/v1/audio/speech"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"model": "tts-1", "input": TEXT, "voice": "nova", "response_format": "pcm"}


async def test_odd_byte_boundaries_in_pcm_are_carried_not_lost() -> None:
    # 10 ms pieces of 24 kHz s16 are 480 bytes; split_even over an odd total makes odd cuts.
    text = "Odd."
    async with fake_openai_speech(api_key=KEY, chunk_ms=7) as server:
        tts = make(server.options())
        pieces = await speak(tts, text)
        await tts.aclose()
    assert np.array_equal(joined(pieces), tone(text, PCM_RATE))


async def test_request_voice_and_options_override_config() -> None:
    async with fake_openai_speech(api_key=KEY) as server:
        tts = make(server.options(voice="alloy", speed=1.25, instructions="Speak calmly."))
        await speak(tts, "Hi.", voice="onyx", options={"instructions": "Whisper, afraid."})
        await speak(tts, "Hi.")
        await tts.aclose()
    first, second = server.speech_requests
    assert first["voice"] == "onyx" and first["instructions"] == "Whisper, afraid." and first["speed"] == 1.25
    assert first["model"] == "gpt-4o-mini-tts"
    assert second["voice"] == "alloy" and second["instructions"] == "Speak calmly."


@pytest.mark.parametrize("fmt", ["mp3", "opus", "wav", "aac", "flac"])
async def test_compressed_formats_are_decoded_to_the_tone(fmt: str) -> None:
    text = "A compressed greeting."
    async with fake_openai_speech(api_key=KEY, chunk_ms=60) as server:
        tts = make(server.options(response_format=fmt))
        pieces = await speak(tts, text)
        await tts.aclose()
    assert server.speech_requests[0]["response_format"] == fmt
    rate = pieces[0].sample_rate
    assert all(p.sample_rate == rate for p in pieces)
    assert rate == (48000 if fmt == "opus" else PCM_RATE)
    audio = joined(pieces)
    expected = tone_sample_count(text, rate)
    # mp3 (gapless header), wav and flac are exact; AAC keeps its 1024-sample priming and
    # Opus may keep up to one 20 ms frame of padding.
    slack = {"aac": 2048, "opus": 960}.get(fmt, 0)
    assert expected <= len(audio) <= expected + slack, (len(audio), expected)
    assert abs(dominant_frequency(audio, rate) - tone_frequency(text)) < 3.0
    if fmt in ("wav", "flac"):
        assert np.array_equal(audio, tone(text, PCM_RATE))


async def test_mp3_is_decoded_while_it_streams() -> None:
    """The first piece must come out long before the server has finished sending."""
    text = "This sentence takes a while to say out loud, about three seconds or so."
    async with fake_openai_speech(api_key=KEY, ttfa=0.05, rtf=0.25, chunk_ms=200) as server:
        tts = make(server.options(response_format="mp3"))
        start = trio.current_time()
        first_at = None
        done_when_first = None
        samples = 0
        async with tts.synthesize(TTSRequest(text)) as pieces:
            async for piece in pieces:
                if first_at is None:
                    first_at = trio.current_time() - start
                    done_when_first = server.completed
                samples += len(piece.samples)
        total = trio.current_time() - start
        await tts.aclose()
    assert first_at is not None and done_when_first == 0
    assert first_at >= 0.05  # time to first audio honoured
    assert first_at < total / 3, (first_at, total)
    assert samples == tone_sample_count(text, PCM_RATE)


async def test_text_over_the_input_limit_is_split_into_consecutive_requests() -> None:
    sentence = "The quick brown fox jumps over the lazy dog. "
    text = sentence * 100  # 4500 chars
    async with fake_openai_speech(api_key=KEY, ms_per_char=1.0) as server:
        tts = make(server.options())
        pieces = await speak(tts, text)
        await tts.aclose()
    parts = [r["input"] for r in server.speech_requests]
    assert len(parts) == 2 and "".join(parts) == text
    assert all(len(p) <= 4096 for p in parts)
    assert parts[0].endswith(". ")  # cut after a sentence
    expected = sum(tone_sample_count(p, PCM_RATE, 1.0) for p in parts)
    assert len(joined(pieces)) == expected


def test_split_text_edges() -> None:
    assert openai_speech.split_text("short") == ["short"]
    assert openai_speech.split_text("") == [""]
    hard = "x" * 10
    assert openai_speech.split_text(hard, 4) == ["xxxx", "xxxx", "xx"]
    assert openai_speech.split_text("aaa bbb ccc", 5) == ["aaa ", "bbb ", "ccc"]


async def test_wrong_key_error_carries_openai_message_but_never_the_key() -> None:
    wrong = "sk-wrong-key-DO-NOT-LEAK-777"
    async with fake_openai_speech(api_key=KEY) as server:
        tts = make(server.options(api_key=wrong))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    err = info.value
    assert err.code == "backend_error"
    assert "401" in err.message and "Incorrect API key provided" in err.message
    assert wrong not in err.message and wrong not in str(err)


@pytest.mark.parametrize(
    ("status", "code"), [(400, "backend_error"), (500, "backend_error"), (503, "backend_unavailable")]
)
async def test_error_statuses_map_to_codes_with_the_provider_message(status: int, code: str) -> None:
    async with fake_openai_speech(api_key=KEY, fault="status", status=status, message="Voice engine melted") as server:
        tts = make(server.options(max_retries=0))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == code
    assert "Voice engine melted" in info.value.message and str(status) in info.value.message


async def test_validation_error_from_server_is_reported() -> None:
    async with fake_openai_speech(api_key=KEY) as server:
        tts = make(server.options(voice="nobody"))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert "Invalid value for 'voice'" in info.value.message


async def test_rate_limit_is_retried_after_retry_after() -> None:
    async with fake_openai_speech(api_key=KEY, fault="rate_limit", fail_times=2, retry_after="0.05") as server:
        tts = make(server.options(max_retries=2))
        start = trio.current_time()
        pieces = await speak(tts, "Hi.")
        elapsed = trio.current_time() - start
        await tts.aclose()
    assert len(server.requests) == 3
    assert elapsed >= 0.1  # waited Retry-After twice
    assert len(joined(pieces)) == tone_sample_count("Hi.", PCM_RATE)


async def test_rate_limit_retries_are_bounded() -> None:
    async with fake_openai_speech(api_key=KEY, fault="rate_limit", fail_times=100, retry_after="0") as server:
        tts = make(server.options(max_retries=2))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert len(server.requests) == 3
    assert "429" in info.value.message and "Rate limit reached" in info.value.message
    assert info.value.retry_after == 0


async def test_retry_after_over_the_cap_is_not_waited_for() -> None:
    async with fake_openai_speech(api_key=KEY, fault="rate_limit", fail_times=100, retry_after="120") as server:
        tts = make(server.options(max_retries=5, max_retry_after=10))
        with trio.fail_after(2):
            with pytest.raises(ProviderError):
                await speak(tts)
        await tts.aclose()
    assert len(server.requests) == 1


@pytest.mark.parametrize("fault", ["hang", "hang_mid"])
async def test_a_silent_server_times_out(fault: str) -> None:
    async with fake_openai_speech(api_key=KEY, fault=fault) as server:
        tts = make(server.options(timeout=0.3))
        with trio.fail_after(3):
            with pytest.raises(ProviderError) as info:
                await speak(tts)
        await tts.aclose()
    assert info.value.code == "timeout"


async def test_dropped_connection_mid_stream_is_a_backend_error() -> None:
    async with fake_openai_speech(api_key=KEY, fault="drop") as server:
        tts = make(server.options())
        got: list[SpeechAudio] = []
        with pytest.raises(ProviderError) as info:
            async with tts.synthesize(TTSRequest(TEXT)) as pieces:
                async for piece in pieces:
                    got.append(piece)
        await tts.aclose()
    assert info.value.code == "backend_error"
    assert "dropped" in info.value.message
    assert got  # what arrived before the drop was delivered


@pytest.mark.parametrize("fmt", ["pcm", "mp3"])
async def test_garbage_instead_of_audio_is_a_backend_error(fmt: str) -> None:
    async with fake_openai_speech(api_key=KEY, fault="garbage") as server:
        tts = make(server.options(response_format=fmt))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_error"
    if fmt == "pcm":
        assert "upstream produced no audio" in info.value.message
    else:
        assert "not valid mp3" in info.value.message


async def test_unreachable_server_is_backend_unavailable() -> None:
    with refused_port() as port:
        tts = make({"base_url": f"http://127.0.0.1:{port}/v1", "api_key": KEY, "max_retries": 0})
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_unavailable"


async def test_cancel_mid_stream_closes_the_upstream_connection() -> None:
    async with fake_openai_speech(api_key=KEY, rtf=1.0, chunk_ms=50) as server:
        tts = make(server.options())
        got = 0
        with trio.CancelScope() as scope:
            async with tts.synthesize(TTSRequest(TEXT)) as pieces:
                async for _ in pieces:
                    got += 1
                    if got == 2:
                        scope.cancel()
        assert scope.cancelled_caught
        assert await server.wait_closed(1, 1.0)  # the server saw the socket close
        assert server.http.connections_accepted - server.http.connections_closed <= 1  # at most a spare is open
        assert server.completed == 0
        await tts.aclose()


def test_config_needs_a_key_for_openai_but_not_for_other_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        make({})
    monkeypatch.setenv("MY_OPENAI_KEY", KEY)
    assert make({"api_key_env": "MY_OPENAI_KEY"})._api_key == KEY
    assert make({"base_url": "http://127.0.0.1:8880/v1"})._api_key is None
    with pytest.raises(ConfigError, match="response_format"):
        make({"api_key": KEY, "response_format": "ogg"})
    with pytest.raises(ConfigError, match="speed"):
        make({"api_key": KEY, "speed": 9})
