"""The `elevenlabs_realtime` TTS module against a fake stream-input WebSocket (websockets.trio)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import trio

from bridge.providers.base import TTS, ConfigError, ProviderError, SpeechAudio, TimedUnit, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.tts import elevenlabs_realtime
from tests.fakes.elevenlabs import fake_elevenlabs
from tests.fakes.tts_tone import dominant_frequency, tone, tone_frequency, tone_sample_count

KEY = "xi-SECRET-realtime-key-1234"
TEXT = "Greetings, wanderer. The inn is full tonight."


def make(options: dict[str, object]) -> elevenlabs_realtime.ElevenLabsRealtimeTTS:
    tts = create_provider(ModuleSpec("xi-rt", "tts", "elevenlabs_realtime", options))
    assert isinstance(tts, elevenlabs_realtime.ElevenLabsRealtimeTTS)
    return tts


async def speak(tts: TTS, text: str = TEXT, **kw: object) -> list[SpeechAudio]:
    async with tts.synthesize(TTSRequest(text, **kw)) as pieces:  # type: ignore[arg-type]
        return [p async for p in pieces]


def units(pieces: list[SpeechAudio]) -> list[TimedUnit]:
    return [c for p in pieces for c in p.characters]


def assert_timing(found: list[TimedUnit], text: str, ms_per_char: float = 50.0) -> None:
    assert "".join(u.text for u in found) == text
    for i, u in enumerate(found):
        assert u.start_ms == pytest.approx(i * ms_per_char, abs=1.0)
        assert u.end_ms == pytest.approx((i + 1) * ms_per_char, abs=1.0)


async def test_one_shot_synthesis_messages_audio_and_timing() -> None:
    async with fake_elevenlabs(api_key=KEY, chunk_chars=6) as fake:
        tts = make(fake.options(voice_settings={"stability": 0.3}, chunk_length_schedule=[50, 90]))
        assert isinstance(tts, TTS)
        pieces = await speak(tts)
        assert await fake.wait_sockets_closed()
    spoken = TEXT + " "  # segments end with a space, as ElevenLabs asks
    assert fake.violations == []
    first, text_msg, end_msg = fake.received
    assert first == {
        "text": " ",
        "voice_settings": {"stability": 0.3},
        "generation_config": {"chunk_length_schedule": [50, 90]},
        "xi_api_key": KEY,
    }
    assert text_msg == {"text": spoken, "try_trigger_generation": True}
    assert end_msg == {"text": ""}
    [path] = fake.ws_paths
    assert urlsplit(path).path == "/v1/text-to-speech/voice-ava/stream-input"
    assert parse_qs(urlsplit(path).query) == {"model_id": ["eleven_flash_v2_5"], "output_format": ["pcm_24000"]}
    assert fake.ws_headers[0]["xi-api-key"] == KEY
    assert len(pieces) == -(-len(spoken) // 6)
    audio = np.concatenate([p.samples for p in pieces])
    assert np.array_equal(audio, tone(spoken, 24000))
    assert_timing(units(pieces), spoken)  # chunk-relative times placed on the utterance clock


async def test_text_fed_piece_by_piece_is_spoken_as_it_arrives() -> None:
    segments = ["Hello there.", "The road is long.", "Rest here tonight."]
    async with fake_elevenlabs(api_key=KEY, chunk_chars=4) as fake:
        tts = make(fake.options())
        pieces: list[SpeechAudio] = []
        first_audio_after_segments: list[int] = []
        sent = 0

        async with tts.open_realtime() as speech:

            async def writer() -> None:
                nonlocal sent
                for segment in segments:
                    await speech.send_text(segment, flush=True)  # a sentence end: speak now
                    sent += 1
                    await trio.sleep(0.15)
                await speech.end()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                async for piece in speech:
                    if not pieces:
                        first_audio_after_segments.append(sent)
                    pieces.append(piece)
            assert speech.finished
    assert first_audio_after_segments == [1]  # audio came before the LLM had finished writing
    spoken = [s + " " for s in segments]
    assert fake.generations == spoken
    assert_timing(units(pieces), "".join(spoken))
    audio = np.concatenate([p.samples for p in pieces])
    assert len(audio) == sum(tone_sample_count(s, 24000) for s in spoken)
    start = 0
    for s in spoken:  # each generation is its own tone: check each section's pitch
        n = tone_sample_count(s, 24000)
        assert abs(dominant_frequency(audio[start : start + n], 24000) - tone_frequency(s)) < 5.0
        start += n


async def test_server_buffers_by_schedule_until_enough_text() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(chunk_length_schedule=[20]))
        async with tts.open_realtime() as speech:
            await speech.send_text("one two three")
            await speech.send_text("four five six")
            await speech.send_text("seven")
            await speech.end()
            pieces = [p async for p in speech]
    assert fake.generations == ["one two three four five six ", "seven "]
    assert "".join(u.text for u in units(pieces)) == "one two three four five six seven "


@pytest.mark.parametrize(("output_format", "rate"), [("ulaw_8000", 8000), ("mp3_22050_32", 22050), ("pcm_16000", 16000)])
async def test_other_output_formats(output_format: str, rate: int) -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(output_format=output_format))
        pieces = await speak(tts)
    spoken = TEXT + " "
    audio = np.concatenate([p.samples for p in pieces])
    assert {p.sample_rate for p in pieces} == {rate}
    expected = tone_sample_count(spoken, rate)
    # bare MP3 frames carry encoder delay and padding (no gapless header on a socket)
    slack = 3000 if output_format.startswith("mp3") else 0
    assert expected <= len(audio) <= expected + slack
    assert abs(dominant_frequency(audio, rate) - tone_frequency(spoken)) < 3.0


async def test_query_options_and_ws_url_from_base_url() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        opts = fake.options(inactivity_timeout=60, language="de")
        del opts["ws_url"]  # derived from base_url: http -> ws (same host, other port here)
        derived = make(opts)
        assert derived.ws_url == fake.url.replace("http://", "ws://")
        tts = make(fake.options(inactivity_timeout=60, language="de"))
        await speak(tts, "Hallo.")
    query = parse_qs(urlsplit(fake.ws_paths[0]).query)
    assert query["inactivity_timeout"] == ["60"] and query["language_code"] == ["de"]


async def test_wrong_key_is_refused_without_leaking_it() -> None:
    wrong = "xi-WRONG-realtime-key-5555"
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options(api_key=wrong))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
    assert info.value.code == "backend_error"
    assert "403" in info.value.message and "invalid_api_key" in info.value.message
    assert wrong not in info.value.message


async def test_error_message_from_the_socket_is_reported() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="error", detail_status="quota_exceeded",
                               message="This request exceeds your quota.") as fake:
        tts = make(fake.options())
        with pytest.raises(ProviderError) as info:
            await speak(tts)
    assert info.value.code == "backend_error"
    assert "quota_exceeded: This request exceeds your quota." in info.value.message


async def test_handshake_refused_with_503_is_backend_unavailable() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="status", status=503) as fake:
        tts = make(fake.options())
        with pytest.raises(ProviderError) as info:
            await speak(tts)
    assert info.value.code == "backend_unavailable"
    assert "system_busy" in info.value.message


async def test_no_deadline_while_text_may_still_come_then_timeout_after_end() -> None:
    async with fake_elevenlabs(api_key=KEY, fault="hang") as fake:
        tts = make(fake.options(timeout=0.25))
        with trio.fail_after(3):
            async with tts.open_realtime() as speech:
                await speech.send_text("Some words for a slow server.")
                failure: list[ProviderError] = []
                ended_at: list[float] = []

                async def reader() -> None:
                    try:
                        async for _ in speech:
                            pass
                    except ProviderError as exc:
                        failure.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(reader)
                    await trio.sleep(0.5)  # longer than timeout: the LLM is still writing
                    assert not failure
                    await speech.end()
                    ended_at.append(trio.current_time())
                waited = trio.current_time() - ended_at[0]
    assert failure and failure[0].code == "timeout"
    assert 0.2 <= waited < 1.0


async def test_server_idle_close_is_reported() -> None:
    async with fake_elevenlabs(api_key=KEY, idle_timeout=0.2) as fake:
        tts = make(fake.options())
        with trio.fail_after(3):
            with pytest.raises(ProviderError) as info:
                async with tts.open_realtime() as speech:
                    async for _ in speech:
                        pass
    assert "input_timeout_exceeded" in info.value.message


@pytest.mark.parametrize(
    ("fault", "words"),
    [("drop", "dropped the connection"), ("garbage", "not JSON"), ("bad_audio", "not valid base64")],
)
async def test_broken_streams_are_backend_errors(fault: str, words: str) -> None:
    async with fake_elevenlabs(api_key=KEY, fault=fault) as fake:
        tts = make(fake.options())
        with pytest.raises(ProviderError) as info:
            await speak(tts)
    assert info.value.code == "backend_error" and words in info.value.message


async def test_cancel_mid_stream_closes_the_socket() -> None:
    async with fake_elevenlabs(api_key=KEY, rtf=1.0, chunk_chars=4) as fake:
        tts = make(fake.options())
        with trio.CancelScope() as scope:
            async with tts.synthesize(TTSRequest(TEXT)) as pieces:
                async for _ in pieces:
                    scope.cancel()
        assert scope.cancelled_caught
        assert await fake.wait_sockets_closed(1.0)
        assert fake.sockets_opened == fake.sockets_closed == 1
        assert len(fake.received) == 3  # start, text, end: nothing sent after the cancel


async def test_send_after_end_is_a_usage_error_and_blank_segments_are_skipped() -> None:
    async with fake_elevenlabs(api_key=KEY) as fake:
        tts = make(fake.options())
        async with tts.open_realtime() as speech:
            await speech.send_text("   ")
            await speech.send_text("Fine.")
            await speech.end()
            with pytest.raises(RuntimeError):
                await speech.send_text("More.")
            pieces = [p async for p in speech]
    assert [m["text"] for m in fake.received] == [" ", "Fine. ", ""]
    assert pieces


def test_alignment_spellings_are_all_read() -> None:
    speech = object.__new__(elevenlabs_realtime.RealtimeSpeech)
    speech._alignment = "original"
    for durations_key in ("charDurationsMs", "charsDurationsMs"):
        message = json.loads(json.dumps({"alignment": {"chars": ["a", "b"], "charStartTimesMs": [0, 40], durations_key: [40, 60]}}))
        assert speech._units(message) == [TimedUnit("a", 0, 40), TimedUnit("b", 40, 100)]


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="api_key"):
        make({"voice": "v"})
    with pytest.raises(ConfigError, match="opus"):
        make({"api_key": KEY, "voice": "v", "output_format": "opus_48000_64"})
    with pytest.raises(ConfigError, match="chunk_length_schedule"):
        make({"api_key": KEY, "voice": "v", "chunk_length_schedule": []})
    assert make({"api_key": KEY, "voice": "v"}).ws_url == "wss://api.elevenlabs.io"
    assert elevenlabs_realtime.ws_base_from("http://127.0.0.1:9/") == "ws://127.0.0.1:9"
