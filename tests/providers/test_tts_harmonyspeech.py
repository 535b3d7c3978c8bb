"""The `harmonyspeech` TTS module against a fake Harmony Speech Engine over real HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import trio

from bridge.providers.base import TTS, ConfigError, ProviderError, SpeechAudio, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.providers.tts import harmonyspeech
from tests.fakes.harmonyspeech import embedding_of, fake_harmonyspeech
from tests.fakes.tts_tone import tone, wav_bytes

KEY = "hs-SECRET-engine-key-777"
TEXT = "The harbour bells ring at dawn."


def make(options: dict[str, object]) -> harmonyspeech.HarmonySpeechTTS:
    tts = create_provider(ModuleSpec("hs", "tts", "harmonyspeech", options))
    assert isinstance(tts, harmonyspeech.HarmonySpeechTTS)
    return tts


async def speak(tts: TTS, text: str = TEXT, **kw: object) -> list[SpeechAudio]:
    async with tts.synthesize(TTSRequest(text, **kw)) as pieces:  # type: ignore[arg-type]
        return [p async for p in pieces]


async def test_single_speaker_request_and_decoded_wav() -> None:
    async with fake_harmonyspeech(api_key=KEY) as engine:
        tts = make(engine.options(model="openvoice_v2", voice="EN-US", language="en", sample_rate=22050,
                                  generation_options={"speed": 1.1, "seed": 42}))
        assert isinstance(tts, TTS)
        try:
            [piece] = await speak(tts)
        finally:
            await tts.aclose()
    assert piece.sample_rate == 22050 and not piece.characters
    assert np.array_equal(piece.samples, tone(TEXT, 22050))
    [req] = engine.requests
    assert req.path == "/v1/audio/speech" and req.headers["authorization"] == f"Bearer {KEY}"
    assert req.json() == {
        "model": "openvoice_v2",
        "input": TEXT,
        "mode": "single_speaker_tts",
        "voice": "EN-US",
        "language": "en",
        "generation_options": {"speed": 1.1, "seed": 42},
        "output_options": {"format": "wav", "sample_rate": 22050},
    }


async def test_no_key_means_no_authorization_header_and_the_models_own_rate() -> None:
    async with fake_harmonyspeech() as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f"))
        [piece] = await speak(tts, "Hi.", voice="expr-voice-3-m", options={"generation_options": {"pitch": 0.9}})
        await tts.aclose()
    [req] = engine.requests
    assert "authorization" not in req.headers
    body = req.json()
    assert body["voice"] == "expr-voice-3-m" and body["generation_options"] == {"pitch": 0.9}
    assert body["output_options"] == {"format": "wav"}
    assert piece.sample_rate == 24000 and np.array_equal(piece.samples, tone("Hi.", 24000))


async def test_voice_cloning_with_a_configured_embedding(tmp_path: Path) -> None:
    embedding = base64.b64encode(b"\x01\x02speaker-vector" * 4).decode()
    raw_file = tmp_path / "speaker.bin"
    raw_file.write_bytes(b"\x00\xffraw-embedding-bytes")
    async with fake_harmonyspeech() as engine:
        inline = make(engine.options(embedding=embedding))
        from_file = make(engine.options(embedding_file=str(raw_file)))
        await speak(inline)
        await speak(from_file)
        await inline.aclose()
        await from_file.aclose()
    first, second = engine.speech_requests
    assert first["mode"] == "voice_cloning" and first["input_embedding"] == embedding
    assert "input_audio" not in first
    assert base64.b64decode(second["input_embedding"]) == b"\x00\xffraw-embedding-bytes"
    assert engine.embed_requests == []


async def test_reference_clip_is_embedded_once_and_reused(tmp_path: Path) -> None:
    clip = wav_bytes(tone("reference voice", 16000), 16000)
    path = tmp_path / "ref.wav"
    path.write_bytes(clip)
    async with fake_harmonyspeech(api_key=KEY) as engine:
        tts = make(engine.options(reference_audio=str(path)))
        async with trio.open_nursery() as nursery:  # two turns at once still embed once
            nursery.start_soon(speak, tts, "First line.")
            nursery.start_soon(speak, tts, "Second line.")
        await speak(tts, "Third line.")
        await tts.aclose()
    [embed] = engine.embed_requests
    assert embed == {"model": "harmonyspeech", "input_audio": base64.b64encode(clip).decode()}
    expected = base64.b64encode(embedding_of(clip)).decode()
    assert [r["input_embedding"] for r in engine.speech_requests] == [expected] * 3


async def test_reference_clip_sent_each_time_when_not_embedded(tmp_path: Path) -> None:
    path = tmp_path / "ref.wav"
    path.write_bytes(wav_bytes(tone("me", 16000), 16000))
    async with fake_harmonyspeech() as engine:
        tts = make(engine.options(reference_audio=str(path), embed_reference=False))
        await speak(tts)
        await tts.aclose()
    [req] = engine.speech_requests
    assert req["input_audio"] == base64.b64encode(path.read_bytes()).decode()
    assert "input_embedding" not in req and engine.embed_requests == []


async def test_validation_error_carries_the_engines_message() -> None:
    async with fake_harmonyspeech() as engine:
        tts = make(engine.options(model="openvoice_v2", voice="KLINGON"))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_error"
    assert "400" in info.value.message and "voice KLINGON not available for model openvoice_v2" in info.value.message


async def test_wrong_key_is_refused_and_never_echoed() -> None:
    wrong = "hs-WRONG-key-leak-check-42"
    async with fake_harmonyspeech(api_key=KEY) as engine:
        tts = make(engine.options(api_key=wrong, model="kitten-tts-nano", voice="expr-voice-2-f"))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert "401" in info.value.message and "Unauthorized" in info.value.message
    assert wrong not in info.value.message


@pytest.mark.parametrize(("status", "code"), [(500, "backend_error"), (503, "backend_unavailable")])
async def test_server_errors(status: int, code: str) -> None:
    async with fake_harmonyspeech(fault="status", status=status) as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f", max_retries=0))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == code and "CUDA out of memory" in info.value.message


async def test_rate_limit_retried_and_bounded() -> None:
    async with fake_harmonyspeech(fault="rate_limit", fail_times=1) as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f"))
        [piece] = await speak(tts)
        await tts.aclose()
    assert len(engine.requests) == 2 and len(piece.samples)
    async with fake_harmonyspeech(fault="rate_limit", fail_times=99) as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f", max_retries=1))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert len(engine.requests) == 2 and "429" in info.value.message


async def test_hang_times_out() -> None:
    async with fake_harmonyspeech(fault="hang") as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f", timeout=0.3))
        with trio.fail_after(3):
            with pytest.raises(ProviderError) as info:
                await speak(tts)
        await tts.aclose()
    assert info.value.code == "timeout"


@pytest.mark.parametrize(
    ("fault", "words"),
    [("drop", "dropped the connection"), ("garbage", "cannot be decoded"), ("bad_json", "without base64 `data`")],
)
async def test_broken_answers_are_backend_errors(fault: str, words: str) -> None:
    async with fake_harmonyspeech(fault=fault) as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f"))
        with pytest.raises(ProviderError) as info:
            await speak(tts)
        await tts.aclose()
    assert info.value.code == "backend_error" and words in info.value.message


async def test_cancel_while_the_engine_works_closes_the_connection() -> None:
    async with fake_harmonyspeech(ttfa=5.0) as engine:
        tts = make(engine.options(model="kitten-tts-nano", voice="expr-voice-2-f"))
        with trio.move_on_after(0.2) as scope:
            await speak(tts)
        assert scope.cancelled_caught
        assert await engine.wait_no_connections(1.0)
        assert engine.completed == 0
        await tts.aclose()


def test_config_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mode"):
        make({"mode": "karaoke"})
    with pytest.raises(ConfigError, match="voice_cloning needs"):
        make({"mode": "voice_cloning"})
    with pytest.raises(ConfigError, match="cannot read reference audio"):
        make({"reference_audio": str(tmp_path / "missing.wav")})
    with pytest.raises(ConfigError, match="base64"):
        make({"embedding": "not base64 at all!"})
    text_file = tmp_path / "emb.txt"
    text_file.write_text(base64.b64encode(b"vector").decode() + "\n")
    assert make({"embedding_file": str(text_file)}).embedding == base64.b64encode(b"vector").decode()
    assert make({}).mode == "single_speaker_tts"
