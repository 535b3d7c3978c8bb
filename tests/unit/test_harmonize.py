"""Harmonizer: utterances, world events and history rendered as LLM messages."""

from __future__ import annotations

import pytest

from bridge.character.harmonize import MESSAGE_OVERHEAD_TOKENS, Harmonizer, estimate_tokens
from bridge.character.reply_parser import Action, EmotionTag, SpeechText, parse_reply
from bridge.memory.history import HistoryMessage
from bridge.providers.base import EMOTIONS, ChatMessage


def mira(**kwargs: object) -> Harmonizer:
    return Harmonizer("Mira", "You keep the Copper Kettle tavern.", **kwargs)  # type: ignore[arg-type]


def user(text: str, speaker: str = "Player", kind: str = "verbal", at: int = 0) -> HistoryMessage:
    return HistoryMessage(speaker=speaker, role="user", text=text, kind=kind, at=at)


def said(text: str, interrupted: bool = False, at: int = 0) -> HistoryMessage:
    return HistoryMessage(speaker="Mira", role="assistant", text=text, kind="speech", at=at, interrupted=interrupted)


# ---------------------------------------------------------------- utterances


@pytest.mark.parametrize(
    ("kind", "text", "speaker", "expected"),
    [
        ("verbal", "Hi", None, "Hi"),
        ("verbal", "  Hi   there\n friend ", None, "Hi there friend"),
        ("nonverbal", "hugs you", None, "*hugs you*"),
        ("nonverbal", "*hugs you*", None, "*hugs you*"),
        ("combined", "*smiles* Hi", None, "*smiles* Hi"),
        ("verbal", "Hi", "Player", "Hi"),
        ("verbal", "Hi", "player", "Hi"),
        ("verbal", "Hi", "", "Hi"),
        ("verbal", "Hi", "Bob", "Bob: Hi"),
        ("nonverbal", "waves", "Bob", "Bob: *waves*"),
    ],
)
def test_utterance_rendering(kind: str, text: str, speaker: str | None, expected: str) -> None:
    assert mira().utterance(kind, text, speaker) == expected


def test_custom_player_name_is_the_default_speaker() -> None:
    h = mira(player_name="Ayla")
    assert h.utterance("verbal", "Hi", "Ayla") == "Hi"
    assert h.utterance("verbal", "Hi", "Player") == "Player: Hi"


def test_delayed_nonverbal_is_held_and_prefixed_to_the_next_utterance() -> None:
    h = mira()
    assert h.utterance("nonverbal_delayed", "sits down at the bar") is None
    assert h.utterance("nonverbal_delayed", "taps the counter") is None
    assert h.held_actions == ("*sits down at the bar*", "*taps the counter*")
    assert h.utterance("verbal", "An ale, please.") == "*sits down at the bar* *taps the counter* An ale, please."
    # Delivered once only.
    assert h.held_actions == ()
    assert h.utterance("verbal", "Thanks.") == "Thanks."


def test_delayed_actions_of_other_speakers_keep_their_names() -> None:
    h = mira()
    assert h.utterance("nonverbal_delayed", "waves", "Bob") is None
    assert h.utterance("nonverbal_delayed", "nods") is None
    assert h.utterance("verbal", "Hello!") == "Bob: *waves*\n*nods* Hello!"


def test_delayed_actions_go_with_a_nonverbal_one_too_and_alone_if_verbal_is_empty() -> None:
    h = mira()
    h.utterance("nonverbal_delayed", "smiles")
    assert h.utterance("nonverbal", "hugs you") == "*smiles* *hugs you*"
    h.utterance("nonverbal_delayed", "smiles")
    assert h.utterance("verbal", "   ") == "*smiles*"


def test_bad_utterances() -> None:
    h = mira()
    with pytest.raises(ValueError, match="unknown utterance kind 'shout'"):
        h.utterance("shout", "Hi")
    with pytest.raises(ValueError, match="nothing to say"):
        h.utterance("verbal", "  ")
    with pytest.raises(ValueError, match="needs some text"):
        h.utterance("nonverbal_delayed", "")
    h.utterance("nonverbal_delayed", "waves")
    h.drop_held()
    assert h.utterance("verbal", "Hi") == "Hi"


# ---------------------------------------------------------------- system prompt


def test_system_prompt_has_persona_greeting_scene_events_and_the_conventions() -> None:
    h = mira(greeting="Welcome, traveller!")
    h.set_scene("A rainy evening; the tavern is half full.")
    h.add_world_event("draws a sword", actor="Guard", at_ms=1000)
    h.add_world_event("Thunder rolls over the hills.")
    prompt = h.system_prompt()
    lines = prompt.split("\n")
    assert lines[0] == "You are Mira, a character in a game, talking with Player."
    assert lines[1] == "You keep the Copper Kettle tavern."
    assert 'You greet people with: "Welcome, traveller!"' in lines
    assert "Scene: A rainy evening; the tavern is half full." in lines
    events = lines.index("Recent events, oldest first:")
    assert lines[events + 1 : events + 3] == ["- Guard: draws a sword", "- Thunder rolls over the hills."]
    assert "*smiles*" in lines[-1]
    assert all(f"[{emotion}]" in lines[-1] for emotion in EMOTIONS)

    h.set_scene(None)
    h.clear_world_events()
    bare = h.system_prompt()
    assert "Scene:" not in bare and "Recent events" not in bare


def test_world_events_are_capped_oldest_dropped() -> None:
    h = mira(world_event_cap=3)
    for n in range(5):
        h.add_world_event(f"event {n}")
    assert [e.text for e in h.world_events] == ["event 2", "event 3", "event 4"]
    prompt = h.system_prompt()
    assert "event 1" not in prompt and "- event 2\n- event 3\n- event 4" in prompt
    with pytest.raises(ValueError):
        h.add_world_event("   ")


def test_world_reaction_prompt() -> None:
    h = mira()
    assert h.world_reaction_prompt("kicks the door open", "Bandit") == (
        "(Something happens: Bandit: kicks the door open. React to it, in character, as Mira.)"
    )
    assert "A bell rings" in h.world_reaction_prompt("A bell rings")
    assert h.world_events == ()  # kept only if the runtime adds it


# ---------------------------------------------------------------- messages and budget


def test_build_messages_shape_and_history_rendering() -> None:
    h = mira()
    history = [
        user("Hello"),
        said("[happy] *waves* Welcome!"),
        user("hugs you", speaker="Bob", kind="nonverbal"),
        said("Well, I was about to", interrupted=True),
        said("", interrupted=True),  # cut off before a word was heard: not shown
        said("*smiles* [happy]", interrupted=True),  # nor when only its actions were kept
        user("Bob: *hugs you*", speaker="Bob", kind="nonverbal"),  # stored already rendered
    ]
    messages = h.build_messages(history, "What's on tonight?", token_budget=10_000)
    assert messages[0] == ChatMessage("system", h.system_prompt())
    assert messages[1:] == [
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "[happy] *waves* Welcome!"),
        ChatMessage("user", "Bob: *hugs you*"),
        ChatMessage("assistant", "Well, I was about to—"),
        ChatMessage("user", "Bob: *hugs you*"),
        ChatMessage("user", "What's on tonight?"),
    ]


def test_token_budget_keeps_the_newest_history_that_fits() -> None:
    h = mira()
    history = [user(f"line number {n:02d}", at=n) if n % 2 == 0 else said(f"reply number {n:02d}", at=n) for n in range(20)]
    fixed = estimate_tokens(h.system_prompt()) + estimate_tokens("Go on.")
    for room_for in (0, 1, 5, 20):
        budget = fixed + sum(estimate_tokens(h.history_text(m)) for m in history[len(history) - room_for :])
        messages = h.build_messages(history, "Go on.", budget)
        kept = [m.content for m in messages[1:-1]]
        assert kept == [h.history_text(m) for m in history[len(history) - room_for :]]
        # One token less drops the oldest kept line, never a newer one.
        if room_for:
            fewer = h.build_messages(history, "Go on.", budget - 1)
            assert [m.content for m in fewer[1:-1]] == kept[1:]
    # Over budget: system prompt and the new message still go.
    tiny = h.build_messages(history, "Go on.", 1)
    assert [m.role for m in tiny] == ["system", "user"]


def test_history_stops_at_the_first_line_that_does_not_fit() -> None:
    """A huge old line is not skipped to reach older ones: kept history is contiguous."""
    h = mira()
    history = [user("old"), said("x " * 2000), user("new")]
    budget = estimate_tokens(h.system_prompt()) + estimate_tokens("Now?") + 50
    messages = h.build_messages(history, "Now?", budget)
    assert [m.content for m in messages[1:]] == ["new", "Now?"]


def test_token_estimate() -> None:
    assert estimate_tokens("") == MESSAGE_OVERHEAD_TOKENS
    assert estimate_tokens("abcd") == 1 + MESSAGE_OVERHEAD_TOKENS
    assert estimate_tokens("abcde") == 2 + MESSAGE_OVERHEAD_TOKENS
    assert estimate_tokens("日本語") == 3 + MESSAGE_OVERHEAD_TOKENS
    # In the right range for English: ~4 chars a token.
    text = "The quick brown fox jumps over the lazy dog. " * 10
    assert 100 <= estimate_tokens(text) - MESSAGE_OVERHEAD_TOKENS <= 125


def test_deterministic() -> None:
    def build() -> list[ChatMessage]:
        h = mira(greeting="Hi!", world_event_cap=5)
        h.set_scene("Night.")
        for n in range(8):
            h.add_world_event(f"owl hoots {n}", actor="Owl", at_ms=n)
        h.utterance("nonverbal_delayed", "yawns")
        text = h.utterance("verbal", "Late, isn't it?")
        assert text is not None
        return h.build_messages([user("a"), said("b"), user("c", speaker="Bob")], text, 500)

    first = build()
    assert all(build() == first for _ in range(5))
    assert first[-1] == ChatMessage("user", "*yawns* Late, isn't it?")


def test_the_reply_conventions_round_trip_through_the_parser() -> None:
    """What the system prompt asks for is what the reply parser understands."""
    reply = "[happy] *smiles* Of course!"
    assert parse_reply(reply) == [EmotionTag("happy"), Action("smiles"), SpeechText("Of course!")]
    assert "*smiles*" in mira().system_prompt() and "[happy]" in mira().system_prompt()


def test_compact_style_for_small_models() -> None:
    """No list of emotion tags (a 0.5B model answered with a bare "[neutral]"); the greeting
    is the character's first line instead of a rule; scene and events are kept."""
    h = Harmonizer("Mira", "You keep the Copper Kettle.", "Welcome, traveller!", style="compact")
    h.set_scene("The tavern at night")
    h.add_world_event("the door slams", actor="Bob")
    prompt = h.system_prompt()
    assert "[neutral]" not in prompt and "emotion" not in prompt
    assert "You keep the Copper Kettle." in prompt and "The tavern at night" in prompt and "Bob: the door slams" in prompt
    assert "*smiles*" in prompt
    history = [HistoryMessage("Player", "user", "Hi", "verbal", 0), HistoryMessage("Mira", "assistant", "Hello!", "speech", 1)]
    messages = h.build_messages(history, "What's on the menu?", 2000)
    assert [(m.role, m.content) for m in messages[1:]] == [("assistant", "Welcome, traveller!"), ("user", "Hi"), ("assistant", "Hello!"), ("user", "What's on the menu?")]
    full = Harmonizer("Mira", "You keep the Copper Kettle.", "Welcome, traveller!")
    assert [m.role for m in full.build_messages([], "Hi", 2000)] == ["system", "user"]
    with pytest.raises(ValueError, match="prompt style"):
        Harmonizer("Mira", "", style="tiny")


def test_compact_style_keeps_the_world_stage_sections_and_the_token_budget() -> None:
    """The default character's style once dropped the perception/action blocks and ignored the
    event trimming, so its budget could not cover world events (issue 11 item 6)."""
    h = Harmonizer("Mira", "You keep the Copper Kettle.", "Welcome, traveller!", style="compact")
    actions = "You can act: open_gate(which)."
    assert actions in h.system_prompt(sections=[actions])
    for n in range(20):
        h.add_world_event(f"event {n} " + "x" * 200)
    prompt = h.system_prompt(max_events=2)
    assert "event 17" not in prompt and "event 18" in prompt and "event 19" in prompt
    messages = h.build_messages([], "Hello", 300, sections=[actions])
    system = messages[0].content
    assert actions in system and "event 19" in system and "event 0 " not in system
    assert estimate_tokens(system) + estimate_tokens("Hello") <= 300
