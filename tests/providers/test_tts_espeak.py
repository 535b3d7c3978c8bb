"""tts/espeak with the real libespeak-ng from espeakng_loader."""

from __future__ import annotations

import time

import numpy as np
import pytest
import trio

from bridge.media import phonemize
from bridge.providers.base import TTS, ConfigError, ProviderError, SpeechAudio, TTSRequest
from bridge.providers.registry import ModuleSpec, create_provider
from bridge.speech.audio import volume_envelope
from bridge.speech.visemes import visemes_from_phonemes

pytestmark = pytest.mark.embedded

THREE_SENTENCES = "Hello there, traveller! Would you like some bread? The market closes at noon."


def spec(**options: object) -> ModuleSpec:
    return ModuleSpec("robot", "tts", "espeak", options)


async def collect(tts: TTS, request: TTSRequest) -> list[SpeechAudio]:
    async with tts.synthesize(request) as stream:
        return [piece async for piece in stream]


async def test_speaks_per_sentence_with_phoneme_events() -> None:
    tts = create_provider(spec())
    assert isinstance(tts, TTS) and tts.name == "espeak"
    pieces = await collect(tts, TTSRequest(THREE_SENTENCES))
    assert len(pieces) == 3
    audio = np.concatenate([p.samples for p in pieces])
    assert audio.dtype == np.int16 and {p.sample_rate for p in pieces} == {22050}
    duration_s = audio.size / 22050
    assert 13 / 3.5 < duration_s < 13 / 1.5  # 13 words at espeak's 175 wpm, plus pauses
    envelope = np.array(volume_envelope(audio, 22050))
    assert np.mean(envelope > 0.4) > 0.5

    offset = 0.0
    for piece in pieces:  # each piece holds its own phonemes, in utterance time
        end = offset + 1000 * piece.samples.size / 22050
        assert piece.phonemes[0].start_ms == pytest.approx(offset, abs=0.5)
        assert piece.phonemes[-1].end_ms == pytest.approx(end, abs=0.5)
        offset = end
    phonemes = [u for p in pieces for u in p.phonemes]
    assert all(b.start_ms >= a.start_ms and b.start_ms == pytest.approx(a.end_ms, abs=0.5) for a, b in zip(phonemes, phonemes[1:]))
    assert [u.text for u in phonemes if u.text][:4] == ["h", "ə", "l", "ˈoʊ"]

    frames = visemes_from_phonemes(phonemes)
    starts = np.array([f.t_ms for f in frames])
    active = [frames[k].name for k in np.searchsorted(starts, np.arange(envelope.size) * 10 + 5, side="right") - 1]
    loud = envelope > 0.5
    assert np.mean([name != "sil" for name, is_loud in zip(active, loud) if is_loud]) > 0.95
    audible = envelope > 0.1
    assert abs(frames[-1].t_ms - (audible.size - np.argmax(audible[::-1])) * 10) < 60


async def test_options_change_the_voice() -> None:
    text = TTSRequest("Watch out for wolves when you cross the valley at night.")
    normal = sum(p.samples.size for p in await collect(create_provider(spec()), text))
    fast = sum(p.samples.size for p in await collect(create_provider(spec(rate=350)), text))
    slow_request = TTSRequest(text.text, options={"rate": 100})
    slow = sum(p.samples.size for p in await collect(create_provider(spec()), slow_request))
    assert fast < 0.65 * normal and slow > 1.4 * normal
    british = await collect(create_provider(spec(voice="en")), TTSRequest("Bath and lot."))
    american = await collect(create_provider(spec()), TTSRequest("Bath and lot."))
    assert [u.text for u in british[0].phonemes] != [u.text for u in american[0].phonemes]


async def test_cancellation_stops_espeak_mid_text() -> None:
    tts = create_provider(spec())
    long_text = "The dragon has been sleeping under the mountain for a very long time. " * 400
    started = time.perf_counter()
    with trio.move_on_after(0.02) as scope:
        await collect(tts, TTSRequest(long_text))
    waited = time.perf_counter() - started
    assert scope.cancelled_caught and tts.last_aborted
    # The whole text takes over a second to render: it was stopped, not finished.
    assert waited < 0.3
    # The library lock was released: the next request runs at once.
    started = time.perf_counter()
    pieces = await collect(tts, TTSRequest("Still here."))
    assert pieces and time.perf_counter() - started < 0.3


async def test_errors() -> None:
    with pytest.raises(ConfigError, match="no voice 'xx-nowhere'"):
        create_provider(spec(voice="xx-nowhere"))
    with pytest.raises(ConfigError, match="`rate` must be a number in 80..450"):
        create_provider(spec(rate=1000))
    tts = create_provider(spec())
    with pytest.raises(ProviderError) as info:
        await collect(tts, TTSRequest("Hello.", voice="xx-nowhere"))
    assert info.value.code == "backend_error" and "xx-nowhere" in info.value.message
    assert await collect(tts, TTSRequest("")) == []  # nothing to say, no pieces
    pieces = await collect(tts, TTSRequest("And we carry on."))
    assert pieces[0].samples.size > 0


def test_split_sentences_shares_a_pause_across_the_cut() -> None:
    from bridge.providers.tts.espeak import split_sentences

    result = phonemize.synthesize("One. Two.")
    pieces = split_sentences(result)
    assert len(pieces) == 2
    assert sum(p.samples.size for p in pieces) == result.samples.size
    cut_ms = 1000 * pieces[0].samples.size / result.sample_rate
    assert pieces[0].phonemes[-1].end_ms == pytest.approx(cut_ms)
    assert pieces[1].phonemes[0].start_ms == pytest.approx(cut_ms)
