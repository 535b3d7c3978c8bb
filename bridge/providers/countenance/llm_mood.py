"""`llm`: mood read by a language model, for when tags are missing and nuance matters.

A short prompt asks any configured `LLM` module for the one emotion word that fits a line;
the answer is parsed leniently, because models decorate one-word answers ("Emotion: *Happy*.",
"I'd say anger"), and anything we cannot read becomes neutral rather than an error: a face
that stays calm is a better failure than a turn that fails.

Use a stateless chat backend (openai, textgen, local). Backends that keep the conversation on
their side (kindroid, kajiwoto, characterai) would store these questions in the character's
own history.

`create(spec)` cannot reach the app's other modules, so it records the module name from the
`llm` option (`llm_module`) and the app hands the instance over with `attach(llm)` before the
first `assess`. Tests and embedders pass an LLM to the constructor directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import trio

from bridge.providers.base import EMOTIONS, LLM, ChatMessage, ConfigError, LLMRequest, Mood, ProviderError
from bridge.providers.countenance.tags import TAG_BASE, cue_intensity, mood_from_hint
from bridge.providers.registry import ModuleSpec

SYSTEM_PROMPT = (
    "You label the emotion of a line spoken by a game character. Answer with exactly one word "
    "from this list: " + ", ".join(EMOTIONS) + ". No other words."
)

#: Words a model may answer with instead of our labels (stems and synonyms), lower case.
SYNONYMS: Mapping[str, str] = {
    **{e: e for e in EMOTIONS},
    "calm": "neutral", "none": "neutral", "indifferent": "neutral", "neutrality": "neutral",
    "joy": "happy", "joyful": "happy", "happiness": "happy", "glad": "happy", "cheerful": "happy",
    "excited": "happy", "delighted": "happy", "content": "happy", "amused": "happy",
    "sadness": "sad", "sorrow": "sad", "sorrowful": "sad", "grief": "sad", "melancholy": "sad",
    "unhappy": "sad", "depressed": "sad",
    "anger": "angry", "mad": "angry", "furious": "angry", "rage": "angry", "annoyed": "angry",
    "irritated": "angry", "frustrated": "angry",
    "surprise": "surprised", "shocked": "surprised", "astonished": "surprised",
    "amazed": "surprised", "startled": "surprised",
    "fear": "afraid", "scared": "afraid", "fearful": "afraid", "frightened": "afraid",
    "terrified": "afraid", "anxious": "afraid", "nervous": "afraid",
    "disgust": "disgusted", "revulsion": "disgusted", "repulsed": "disgusted",
    "grossed": "disgusted", "revolted": "disgusted",
}

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_NEGATIONS = ("not", "no", "never", "isn't", "wasn't", "doesn't", "don't")
#: Stop reading after this much text: the answer is in the first words, and closing the
#: stream early stops a rambling model from spending tokens.
MAX_REPLY_CHARS = 80
DEFAULT_TIMEOUT_S = 10.0


def parse_emotion(reply: str) -> str:
    """The first emotion word in `reply` (label or synonym, any case or decoration) that is not
    negated ("not angry"); neutral when there is none."""
    words = _WORD.findall(reply.lower())
    for i, word in enumerate(words):
        found = SYNONYMS.get(word)
        if found is not None and (i == 0 or words[i - 1] not in _NEGATIONS):
            return found
    return "neutral"


class LLMMoodCountenance:
    """The `Countenance` provider backed by a language model."""

    def __init__(
        self,
        llm: LLM | None = None,
        *,
        llm_module: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        use_hint: bool = True,
        options: Mapping[str, object] | None = None,
    ) -> None:
        self.name = "llm"
        self.llm = llm
        self.llm_module = llm_module
        self.timeout_s = timeout_s
        self.use_hint = use_hint
        # Ask for a short, stable answer; a module may still ignore these.
        self.options = dict(options) if options is not None else {"temperature": 0, "max_tokens": 5}

    def attach(self, llm: LLM) -> None:
        """Give the module its LLM (the app calls this with the instance of `llm_module`)."""
        self.llm = llm

    def request_for(self, text: str) -> LLMRequest:
        question = f"Line: {text}\nEmotion:"
        return LLMRequest(
            messages=[ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", question)],
            new_message=question,
            character="countenance",
            scope="countenance",
            options=self.options,
        )

    async def ask(self, text: str) -> str:
        """The model's raw answer (first `MAX_REPLY_CHARS` characters at most)."""
        if self.llm is None:
            raise ProviderError(
                "backend_unavailable",
                f"countenance `llm` has no language model attached (module {self.llm_module!r})",
            )
        parts: list[str] = []
        size = 0
        with trio.move_on_after(self.timeout_s) as scope:
            async with self.llm.stream(self.request_for(text)) as deltas:
                async for delta in deltas:
                    parts.append(delta)
                    size += len(delta)
                    if size >= MAX_REPLY_CHARS:
                        break
        if scope.cancelled_caught:
            raise ProviderError("timeout", f"countenance `llm`: no answer within {self.timeout_s:g} s")
        return "".join(parts)

    async def assess(self, text: str, hint: str | None = None) -> Mood:
        if self.use_hint and hint in EMOTIONS:
            return mood_from_hint(hint, text)
        if not text.strip():
            return Mood("neutral", 0.0)
        emotion = parse_emotion(await self.ask(text))
        if emotion == "neutral":
            return Mood("neutral", 0.0)
        return Mood(emotion, cue_intensity(text, TAG_BASE))

    async def aclose(self) -> None:
        return None  # the LLM belongs to the app, which closes it


def create(spec: ModuleSpec) -> LLMMoodCountenance:
    llm_module = spec.option("llm")
    if not isinstance(llm_module, str) or not llm_module:
        raise ConfigError(f"module {spec.name!r} (countenance/llm) needs `llm = \"<name of an llm module>\"`")
    options = spec.option("llm_options")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"module {spec.name!r}: `llm_options` must be a table")
    return LLMMoodCountenance(
        llm_module=llm_module,
        timeout_s=float(spec.option("timeout", DEFAULT_TIMEOUT_S)),
        use_hint=bool(spec.option("use_hint", True)),
        options=options,
    )
