"""Events in, LLM messages out: what the character knows when it replies.

The engine speaks in events (a player's utterance, a world happening, a scene change); an
LLM wants a list of chat messages. The harmonizer keeps the little state that bridges the
two (recent world events, the scene, nonverbal actions waiting for the next utterance)
and renders prompts deterministically: the same state and inputs always give the same
messages, so prompts can be tested, cached and replayed.

Conventions the LLM is told about, and that ``bridge.reply_parser`` reads back:
``*actions*`` between asterisks (shown, not spoken) and an optional ``[emotion]`` tag.

Player input is rendered the same way: a nonverbal utterance becomes ``*hugs you*``, and
a line from anyone but the default player starts with their name (``Bob: Hi``). The
runtime should store in history the text ``utterance`` returned; rendering history is
idempotent, so storing the raw text with its kind works as well.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bridge.character.reply_parser import SpeechText, parse_reply
from bridge.memory.history import HistoryMessage
from bridge.providers.base import EMOTIONS, ChatMessage

UTTERANCE_KINDS: Final = ("verbal", "nonverbal", "combined", "nonverbal_delayed")
#: "full" explains every reply convention; "compact" is for small local models, which
#: misread the list of emotion tags as the reply they should give (measured with the
#: 0.5B default: a bare "[neutral]") and echo the greeting line back.
PROMPT_STYLES: Final = ("full", "compact")
DEFAULT_PLAYER: Final = "Player"

#: Characters per token assumed for ASCII text: English under GPT/Llama-style BPE averages
#: about 4. Other characters count one token each (CJK is about that; accented Latin is
#: over-counted, which errs on the safe side of a context limit).
ASCII_CHARS_PER_TOKEN: Final = 4
#: Delayed nonverbal actions held for the next utterance: at most this many, this much text
#: in all. They are state a client builds up without a turn, so they are bounded.
MAX_HELD_ACTIONS: Final = 16
MAX_HELD_CHARS: Final = 4000

#: Tokens a chat template spends around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS: Final = 4


def estimate_tokens(text: str) -> int:
    """A cheap, deterministic upper-ish estimate of a message's token count.

    No tokenizer is loaded: the bridge talks to many models with different tokenizers,
    and the budget only needs to keep the prompt safely under the context size.
    """
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    other = len(text) - ascii_chars
    return -(-ascii_chars // ASCII_CHARS_PER_TOKEN) + other + MESSAGE_OVERHEAD_TOKENS


class HeldActionsFull(ValueError):
    """A nonverbal_delayed action that would go over the held-action caps."""


_SPOKEN_WORD = re.compile(r"\w")


def _says_a_word(text: str) -> bool:
    """Does `text` speak a word? What counts as speech (not *actions*, [tags] or [[calls]])
    is the reply parser's to say, as it is for the audio."""
    return any(isinstance(piece, SpeechText) and _SPOKEN_WORD.search(piece.text) for piece in parse_reply(text))


@dataclass(frozen=True, slots=True)
class WorldEvent:
    """Something that happened in the game, kept as context (``at_ms`` is game-supplied)."""

    text: str
    actor: str | None = None
    at_ms: int | None = None

    def render(self) -> str:
        return f"{self.actor}: {self.text}" if self.actor else self.text


def _clean(text: str) -> str:
    return " ".join(text.split())


def _as_action(text: str) -> str:
    """``hugs you`` -> ``*hugs you*``; text that already marks its actions is kept."""
    cleaned = _clean(text)
    if not cleaned or "*" in cleaned:
        return cleaned
    return f"*{cleaned}*"


class Harmonizer:
    """Per-entity prompt state and rendering for one character."""

    def __init__(
        self,
        character_name: str,
        persona: str,
        greeting: str | None = None,
        world_event_cap: int = 20,
        player_name: str = DEFAULT_PLAYER,
        style: str = "full",
    ) -> None:
        if world_event_cap < 0:
            raise ValueError("world_event_cap must be >= 0")
        if style not in PROMPT_STYLES:
            raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, not {style!r}")
        self.style = style
        self.character_name = _clean(character_name)
        self.persona = persona.strip()
        self.greeting = _clean(greeting) if greeting else None
        self.player_name = _clean(player_name) or DEFAULT_PLAYER
        self._events: deque[WorldEvent] = deque(maxlen=world_event_cap)
        self._scene: str | None = None
        self._held: list[tuple[str | None, str]] = []  # (speaker or None for the player, action)

    # ------------------------------------------------------------------ state

    @property
    def world_events(self) -> tuple[WorldEvent, ...]:
        """Kept world events, oldest first."""
        return tuple(self._events)

    @property
    def scene(self) -> str | None:
        return self._scene

    @property
    def held_actions(self) -> tuple[str, ...]:
        """Delayed nonverbal actions waiting for the next utterance, as they will be shown."""
        return tuple(self._join([(speaker, body)]) for speaker, body in self._held)

    def add_world_event(self, text: str, actor: str | None = None, at_ms: int | None = None) -> WorldEvent:
        """Remember a happening; past ``world_event_cap`` events the oldest is dropped."""
        cleaned = _clean(text)
        if not cleaned:
            raise ValueError("a world event needs some text")
        event = WorldEvent(cleaned, _clean(actor) if actor else None, at_ms)
        self._events.append(event)
        return event

    def clear_world_events(self) -> None:
        self._events.clear()

    def set_scene(self, description: str | None) -> None:
        """Describe where the character is; None (or blank) removes the description."""
        self._scene = _clean(description) if description else None
        if not self._scene:
            self._scene = None

    def drop_held(self) -> None:
        """Forget delayed actions (e.g. on ``chat.clear``)."""
        self._held.clear()

    # ------------------------------------------------------------------ rendering

    def utterance(self, kind: str, text: str, speaker: str | None = None) -> str | None:
        """The text the LLM sees for a user utterance, or None when it is held.

        ``verbal`` is kept as said; ``nonverbal`` is wrapped as ``*action*``; ``combined``
        (``*smiles* Hi``) is kept; ``nonverbal_delayed`` is held and put before the next
        utterance that reaches the LLM (any other kind), as Harmony Link does. Actions held
        from several speakers keep their own name prefixes, one line per speaker.
        """
        if kind not in UTTERANCE_KINDS:
            raise ValueError(f"unknown utterance kind {kind!r}; expected one of {', '.join(UTTERANCE_KINDS)}")
        who = self._speaker_key(speaker)
        body = _as_action(text) if kind in ("nonverbal", "nonverbal_delayed") else _clean(text)
        if kind == "nonverbal_delayed":
            if not body:
                raise ValueError("a nonverbal_delayed utterance needs some text")
            held_chars = sum(len(b) for _, b in self._held) + len(body)
            if len(self._held) >= MAX_HELD_ACTIONS or held_chars > MAX_HELD_CHARS:
                raise HeldActionsFull(
                    f"{len(self._held)} delayed actions ({held_chars - len(body)} characters) are already held, the most an entity "
                    f"keeps ({MAX_HELD_ACTIONS} actions, {MAX_HELD_CHARS} characters); send an utterance to use them"
                )
            self._held.append((who, body))
            return None
        parts = [*self._held, (who, body)] if body else list(self._held)
        if not parts:
            raise ValueError(f"an empty {kind} utterance has nothing to say")
        self._held.clear()
        return self._join(parts)

    def world_reaction_prompt(self, text: str, actor: str | None = None) -> str:
        """The user message for a ``world.event`` with ``respond: true``.

        It does not add the event to the kept world events: the runtime decides whether to
        keep it too (if it does, the system prompt will list it once more, which is harmless).
        """
        cleaned = _clean(text)
        if not cleaned:
            raise ValueError("a world event needs some text")
        happening = WorldEvent(cleaned, _clean(actor) if actor else None).render()
        return f"(Something happens: {happening}. React to it, in character, as {self.character_name}.)"

    def system_prompt(self, sections: Sequence[str] = (), max_events: int | None = None) -> str:
        """The system message; `sections` are extra blocks (the world stage's perception and
        action list), placed before the reply conventions; `max_events` keeps only that many
        of the newest world events."""
        name = self.character_name
        events = list(self._events)
        if max_events is not None:
            events = events[len(events) - max_events :] if max_events > 0 else []
        lines = [f"You are {name}, a character in a game, talking with {self.player_name}."]
        if self.persona:
            lines.append(self.persona)
        if self.style == "compact":
            if self._scene:
                lines.append(f"Scene: {self._scene}")
            lines.extend(f"Earlier: {event.render()}" for event in events)
            lines.extend(section for section in sections if section)
            lines.append("Put actions between asterisks, like *smiles*.")
            return "\n".join(lines)
        if self.greeting:
            lines.append(f'You greet people with: "{self.greeting}"')
        if self._scene:
            lines.append(f"Scene: {self._scene}")
        if events:
            lines.append("Recent events, oldest first:")
            lines.extend(f"- {event.render()}" for event in events)
        lines.extend(section for section in sections if section)
        emotions = ", ".join(f"[{emotion}]" for emotion in EMOTIONS)
        lines.append(
            f"How to reply: speak as {name} only, in short spoken lines. Put actions between "
            f"asterisks, like *smiles*: they are shown, not spoken. You may start with one "
            f"emotion tag: {emotions}. Lines from anyone but {self.player_name} start with "
            f"the speaker's name."
        )
        return "\n".join(lines)

    def history_text(self, message: HistoryMessage) -> str:
        """How a remembered line is shown to the LLM (empty when there is nothing to show)."""
        if message.role == "assistant":
            text = _clean(message.text)
            if message.interrupted and not _says_a_word(text):
                # Cut off before a word was heard: only its *actions* were kept, and shown as
                # "*smiles*—" they taught the 0.5B model to answer "*smiles* —Here you go."
                # to every line of a voice conversation (bench.embedded_stack cuts each reply).
                return ""
            if text and message.interrupted and not text.endswith(("—", "-", "…")):
                text += "—"  # the player cut the character off: show it, so it can pick up
            return text
        body = _as_action(message.text) if message.kind in ("nonverbal", "nonverbal_delayed") else _clean(message.text)
        if not body:
            return ""
        who = self._speaker_key(message.speaker)
        if who is not None and not body.startswith(f"{who}:"):
            body = f"{who}: {body}"
        return body

    def build_messages(
        self, history: Sequence[HistoryMessage], new_text: str, token_budget: int, sections: Sequence[str] = ()
    ) -> list[ChatMessage]:
        """System prompt, then the newest history that fits ``token_budget``, then ``new_text``.

        The budget covers the whole prompt, world events included: world events are dropped
        oldest first until the system prompt and the new message fit, so what a client adds
        to the context (every `world.event`) cannot grow what each turn sends upstream. The
        persona and the new message are always included, even over budget (they are the
        turn; both have length limits). History is added newest first while it fits, and
        stops at the first line that does not, so the kept history is one unbroken recent
        stretch. Tokens are counted with ``estimate_tokens``.
        """
        user = ChatMessage("user", new_text)
        kept_events = len(self._events)
        system = ChatMessage("system", self.system_prompt(sections))
        remaining = token_budget - estimate_tokens(system.content) - estimate_tokens(user.content)
        while remaining < 0 and kept_events > 0:
            kept_events -= 1
            system = ChatMessage("system", self.system_prompt(sections, max_events=kept_events))
            remaining = token_budget - estimate_tokens(system.content) - estimate_tokens(user.content)
        # Compact style: the greeting is the character's first line rather than a rule, which
        # shows a small model whose turn is whose (it stopped echoing the player's lines).
        opening = [ChatMessage("assistant", self.greeting)] if self.style == "compact" and self.greeting else []
        remaining -= sum(estimate_tokens(m.content) for m in opening)
        kept: list[ChatMessage] = []
        for message in reversed(history):
            content = self.history_text(message)
            if not content:
                continue
            cost = estimate_tokens(content)
            if cost > remaining:
                break
            remaining -= cost
            kept.append(ChatMessage(message.role, content))
        kept.reverse()
        return [system, *opening, *kept, user]

    # ------------------------------------------------------------------ helpers

    def _speaker_key(self, speaker: str | None) -> str | None:
        """None for the default player (no prefix), else the cleaned name."""
        name = _clean(speaker) if speaker else ""
        if not name or name.casefold() == self.player_name.casefold():
            return None
        return name

    @staticmethod
    def _join(parts: Sequence[tuple[str | None, str]]) -> str:
        """Consecutive parts by one speaker share a line; each named speaker gets a prefix."""
        lines: list[str] = []
        current: str | None = None
        bodies: list[str] = []
        for index, (who, body) in enumerate(parts):
            if index and who != current:
                lines.append(Harmonizer._line(current, bodies))
                bodies = []
            current = who
            bodies.append(body)
        lines.append(Harmonizer._line(current, bodies))
        return "\n".join(lines)

    @staticmethod
    def _line(who: str | None, bodies: list[str]) -> str:
        text = " ".join(bodies)
        return f"{who}: {text}" if who else text
