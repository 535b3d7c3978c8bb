"""The `elevenlabs` TTS module (official SDK, HTTP stream with timestamps) against a fake
ElevenLabs speaking NDJSON over real HTTP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trio

from bridge.providers.base import TTS, ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.tts import elevenlabs
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.tts_tone import dominant_frequency, tone, tone_frequency, tone_sample_count

KEY = "xi-SECRET-key-9f8e7d6c5b"
TEXT = "Hello there, traveller! Mind the goblins."


def make(options: dict[str, object]) -> elevenlabs.ElevenLabsTTS:
    tts = create_provider(ModuleSpec("xi", "tts", "elevenlabs", options))
    assert isinstance(tts, elevenlabs.ElevenLabsTTS)
    return tts


async def speak(tts: TTS, text: str = TEXT, **kw: object) -> list[SpeechAudio]:
    async with tts.synthesize(TTSRequest(text, **kw)) as pieces:  # type: ignore[arg-type]
        return [p async for p in pieces]


def characters(pieces: list[SpeechAudio]) -> list[TimedUnit]:
    return [c for p in pieces for c in p.characters]


def assert_tone_timing(units: list[TimedUnit], text: str, ms_per_char: float = 50.0) -> None:
    assert "".join(u.text for u in units) == text
    for i, u in enumerate(units):
        assert u.start_ms == pytest.approx(i * ms_per_char, abs=0.01)
        assert u.end_ms == pytest.approx((i + 1) * ms_per_char, abs=0.01)
    starts = [u.start_ms for u in units]
    assert starts == sorted(starts)


async def test_pcm_audio_and_character_timings_and_the_request() -> None:
    async with fake_elevenlabs(api_key=KEY, chunk_chars=8) as fake:
        tts = make(fake.options(voice_settings={"stability": 0.4, "similarity_boost": 0.8}))
        assert isinstance(tts, TTS)
        try:
            pieces = await speak(tts)
        finally:
            await tts.aclose()
    assert len(pieces) == math.ceil(len(TEXT) / 8)  # one piece per NDJSON line, as it came
    assert all(p.sample_rate == 24000 for p in pieces)
    audio = np.concatenate([p.samples for p in pieces])
    assert np.array_equal(audio, tone(TEXT, 24000))
    assert_tone_timing(characters(pieces), TEXT)
    [req] = fake.requests
    assert req.path == "/v1/text-to-speech/voice-ava/stream/with-timestamps"
    assert req.query["output_format"] == ["pcm_24000"]
    assert req.headers["xi-api-key"] == KEY
    body = req.json()
    assert body["text"] == TEXT and body["model_id"] == "eleven_flash_v2_5"
    assert body["voice_settings"] == {"stability": 0.4, "similarity_boost": 0.8}


async def test_chunk_relative_alignment_is_detected_and_put_on_the_utterance_clock() -> None:
    async with fake_elevenlabs(api_key=KEY, alignment_times="chunk", chunk_chars=5) as fake:
        auto = make(fake.options())
        forced = make(fake.options(alignment_times="chunk"))
        auto_pieces = await speak(auto)
        forced_pieces = await speak(forced)
        await auto.aclose()
        await forced.aclose()
    assert_tone_timing(characters(auto_pieces), TEXT)
    assert_tone_timing(characters(forced_pieces), TEXT)


async def test_normalized_alignment_can_be_chosen() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(alignment="normalized"))
        pieces = await speak(tts)
        await tts.aclose()
    assert "".join(c.text for c in characters(pieces)) == TEXT.lower()


@pytest.mark.parametrize(("output_format", "rate"), [("mp3_44100_128", 44100), ("ulaw_8000", 8000), ("pcm_16000", 16000)])
async def test_other_output_formats_are_decoded(output_format: str, rate: int) -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(output_format=output_format))
        pieces = await speak(tts)
        await tts.aclose()
    assert fake.requests[0].query["output_format"] == [output_format]
    audio = np.concatenate([p.samples for p in pieces])
    assert {p.sample_rate for p in pieces} == {rate}
    assert len(audio) == tone_sample_count(TEXT, rate)  # mp3 exact thanks to its gapless header
    assert abs(dominant_frequency(audio, rate) - tone_frequency(TEXT)) < 3.0
    assert_tone_timing(characters(pieces), TEXT)


async def test_request_voice_and_per_request_options_are_sent() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(language="en", optimize_streaming_latency=2))
        await speak(tts, "Hi.", voice="voice-bard", options={"previous_text": "Before.", "next_text": "After.", "seed": 7})
        await tts.aclose()
    [req] = fake.requests
    assert req.path == "/v1/text-to-speech/voice-bard/stream/with-timestamps"
    assert req.query["optimize_streaming_latency"] == ["2"]
    body = req.json()
    assert body["previous_text"] == "Before." and body["next_text"] == "After." and body["seed"] == 7
    assert body["language_code"] == "en"


async def test_wrong_key_error_names_the_status_but_never_the_key() -> None:
    wrong = "xi-WRONG-key-do-not-leak-31337"
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(api_key=wrong))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_error"
    assert "401" in info.value.message and "invalid_api_key" in info.value.message
    assert wrong not in info.value.message and wrong not in str(info.value)


async def test_unknown_voice_is_reported_with_the_providers_message() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(voice="voice-nobody"))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert "404" in info.value.message
    assert "voice_not_found: A voice with the voice_id voice-nobody was not found." in info.value.message


@pytest.mark.parametrize(("status", "code"), [(500, "backend_error"), (503, "backend_unavailable")])
async def test_server_errors_map_to_codes(status: int, code: str) -> None:
    async with fake_elevenlabs(api_key=KEY, fault="status", status=status) as fake:
        tts = make(fake.options(max_retries=0))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == code
    assert "system_busy: The system is experiencing heavy traffic" in info.value.message


async def test_rate_limit_is_retried_then_succeeds() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="rate_limit", fail_times=1, retry_after="0.05") as fake:
        tts = make(fake.options(max_retries=2))
        pieces = await speak(tts)
        await tts.aclose()
    assert len(fake.requests) == 2
    assert len(np.concatenate([p.samples for p in pieces])) == tone_sample_count(TEXT, 24000)


async def test_rate_limit_retries_are_bounded() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="rate_limit", fail_times=100, retry_after=None) as fake:
        tts = make(fake.options(max_retries=1))
        with trio.fail_after(5):  # no Retry-After: the 1 s default backoff, once
            with pytest.raises(ProviderError) as info:
                await speak(tts)
        await tts.aclose()
    assert len(fake.requests) == 2
    assert "429" in info.value.message and "too_many_concurrent_requests" in info.value.message


@pytest.mark.parametrize("fault", ["hang", "hang_mid"])
async def test_a_silent_server_times_out(fault: str) -> None:
    async with fake_elevenlabs(api_key=KEY, fault=fault) as fake:
        tts = make(fake.options(timeout=0.3))
        with trio.fail_after(3):
            with pytest.raises(ProviderError) as info:
                await speak(tts)
        await tts.aclose()
    assert info.value.code == "timeout"


async def test_drop_mid_stream_is_a_backend_error_after_the_audio_that_came() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="drop") as fake:
        tts = make(fake.options())
        got: list[SpeechAudio] = []
        with pytest.raises(ProviderError) as info:
            async with tts.synthesize(TTSRequest(TEXT)) as pieces:
                async for piece in pieces:
                    got.append(piece)
        await tts.aclose()
    assert info.value.code == "backend_error" and "dropped" in info.value.message
    assert len(got) == 1


@pytest.mark.parametrize(("fault", "words"), [("garbage", "without any audio"), ("bad_audio", "not valid base64")])
async def test_garbage_is_a_backend_error(fault: str, words: str) -> None:
    async with fake_elevenlabs(api_key=KEY, fault=fault) as fake:
        tts = make(fake.options())
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_error" and words in info.value.message


async def test_cancel_mid_stream_closes_the_upstream_connection() -> None:
    async with fake_elevenlabs(api_key=KEY, rtf=1.0, chunk_chars=4) as fake:
        tts = make(fake.options())
        with trio.CancelScope() as scope:
            async with tts.synthesize(TTSRequest(TEXT)) as pieces:
                async for _ in pieces:
                    scope.cancel()
        assert scope.cancelled_caught
        assert await fake.wait_no_http_connections(1.0)
        assert fake.http_completed == 0
        await tts.aclose()


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        make({"voice": "v"})
    with pytest.raises(ConfigError, match="output_format"):
        make({"api_key": KEY, "voice": "v", "output_format": "wav_44100"})
    with pytest.raises(ConfigError, match="voice_settings"):
        make({"api_key": KEY, "voice": "v", "voice_settings": {"stabilty": 0.5}})
    with pytest.raises(ConfigError, match="alignment_times"):
        make({"api_key": KEY, "voice": "v", "alignment_times": "sometimes"})
    assert elevenlabs.parse_output_format("mp3_22050_32") == ("mp3", 22050)


def test_char_timeline_reads_both_conventions_and_stays_monotonic() -> None:
    chunk = [TimedUnit("a", 0.0, 50.0), TimedUnit("b", 50.0, 100.0)]
    relative = elevenlabs.CharTimeline("auto")
    relative.place(chunk, 0.0)
    second = relative.place(chunk, 100.0)  # second chunk starts at 0 again: chunk-relative
    assert [u.start_ms for u in second] == [100.0, 150.0] and relative.relative is True
    absolute = elevenlabs.CharTimeline("auto")
    absolute.place(chunk, 0.0)
    later = absolute.place([TimedUnit("c", 100.0, 150.0)], 100.0)
    assert later[0].start_ms == 100.0 and absolute.relative is False
    clamp = elevenlabs.CharTimeline("absolute")
    clamp.place([TimedUnit("x", 200.0, 250.0)], 0.0)
    [back] = clamp.place([TimedUnit("y", 120.0, 110.0)], 0.0)  # goes backwards, ends before it starts
    assert back.start_ms == 200.0 and back.end_ms == 200.0
