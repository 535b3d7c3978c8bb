"""A character's runtime for one entity: its config, its providers, and its kinds of turn.

The connection layer knows only "this request starts a turn with this handler"
(`bridge.character.turns`); what a turn does (ask the LLM, speak) lives in
`bridge.character.conversation`, which uses the runtime built here. Per-entity state
that outlives a turn lives here too: the harmonizer (world events, held actions, scene),
the mood smoothing of the face, and the playback positions the engine reports.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from bridge.character.entity import Turn
from bridge.character.harmonize import Harmonizer
from bridge.character.ports import Services, World
from bridge.config import CharacterConfig
from bridge.providers.base import ProviderError
from bridge.providers.redact import clip
from bridge.speech.countenance import MoodSmoother, expression_for
from bridge.speech.segmenter import Segmenter
from bridge.speech.speaker import AudioOut, Speaker, client_ms

log = logging.getLogger(__name__)

DEFAULT_TOKEN_BUDGET = 1500
DEFAULT_HISTORY_LIMIT = 60


class CharacterRuntime:
    def __init__(self, app: Services, config: CharacterConfig, hello: dict[str, Any]) -> None:
        self.app = app
        self.config = config
        self.hello = hello
        self.name = config.name
        self.scope = str(hello.get("scope") or "default")
        if config.inline:  # never the history of a configured character that has the same name
            self.scope = "inline:" + self.scope
        self.text_deltas = bool(hello.get("text_deltas", False))
        self.audio_out = AudioOut.from_hello(hello)
        options = config.options
        self.player_name = str(options.get("player_name", "Player"))
        self.token_budget = int(options.get("token_budget", DEFAULT_TOKEN_BUDGET))
        self.history_limit = int(options.get("history_limit", DEFAULT_HISTORY_LIMIT))
        self.segmenter_options = dict(options.get("segmenter", {}))
        self.harmonizer = Harmonizer(
            config.display_name,
            config.persona,
            config.greeting,
            world_event_cap=int(options.get("world_event_cap", 20)),
            style=str(options.get("prompt_style", "full")),
            player_name=self.player_name,
        )
        #: What is around the character (`ports.World`), set by whoever creates the entity.
        self.world: World | None = None
        self.emotion_hint: str | None = None
        self.smoother: Any = None
        self.shown_mood: str | None = None  # the emotion the face shows now (ai.status mood)
        self.mood_changed = False
        self.current_handler: Any = None

    @property
    def modules(self) -> dict[str, str]:
        return dict(self.config.modules)

    @property
    def llm_chain(self) -> list[str]:
        return [self.config.modules["llm"], *self.config.fallback_llms]

    async def memory(self) -> Any:
        return await self.app.history()

    async def tts(self) -> Any | None:
        module = self.config.modules.get("tts")
        return await self.app.provider(module) if module else None

    def new_segmenter(self, first_words: int | None = None) -> Segmenter:
        """A segmenter for one reply; `first_words` (a TTS fed words as they are written)
        ends the first segment after at most that many words."""
        options = dict(self.segmenter_options)
        if first_words is not None:
            options["first_max_words"] = min(int(options.get("first_max_words", 12)), first_words)
            options["first_min_words"] = min(int(options.get("first_min_words", 4)), options["first_max_words"])
        return Segmenter(**options)

    async def mood_for(self, text: str) -> dict[str, Any] | None:
        """The countenance of one spoken segment, smoothed, with the character's preset name."""
        module = self.config.modules.get("countenance")
        if not module:
            return None
        countenance = await self.app.provider(module)
        if getattr(countenance, "llm_module", None) and getattr(countenance, "llm", None) is None:
            countenance.attach(await self.app.provider(countenance.llm_module))
        try:
            mood = await countenance.assess(text, self.emotion_hint)
        except ProviderError as exc:
            # A face that stays as it was beats a turn that fails over its expression.
            log.warning("countenance %s failed: %s", module, clip(exc.message))
            return None
        if self.smoother is None:
            self.smoother = MoodSmoother()
        smoothed = self.smoother.update(mood, int(trio.current_time() * 1000))
        self.mood_changed = smoothed.emotion != self.shown_mood
        self.shown_mood = smoothed.emotion
        return {
            "emotion": smoothed.emotion,
            "intensity": round(float(smoothed.intensity), 3),
            "expression": expression_for(smoothed.emotion, self.config.expressions),
        }

    def speaker_for(self, turn: Turn, tts: Any) -> Speaker:
        """The speech-out pipeline of one turn, with this character's voice and face."""

        def report_mood() -> dict[str, Any] | None:
            """The ai.status the speaker sends, in order with its speech, when the mood changed."""
            return self.status() if self.mood_changed else None

        max_chars = int(self.segmenter_options.get("max_chars", 300))
        return Speaker(
            turn, tts, self.audio_out, voice=self.config.voice, mood_for=self.mood_for, on_mood=report_mood, max_chars=max_chars
        )

    def status(self) -> dict[str, Any]:
        """The `ai.status` payload: the current mood (and what the character is doing)."""
        return {"mood": self.shown_mood or "neutral", "behaviour": "speaking"}

    def playback(self, speech: str, played_ms: int | None, done: bool) -> bool:
        """Record what the engine reports having played; False if no such speech is known."""
        speaker = getattr(self.current_handler, "speaker", None)
        if speaker is None:
            return False
        for segment in speaker.segments:
            if segment.speech == speech:
                if played_ms is not None:
                    segment.played_ms = client_ms(played_ms)
                if done:
                    segment.done = True
                    segment.played_ms = segment.sent_ms
                return True
        return False
