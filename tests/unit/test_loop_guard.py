"""The loop guard on its own: real loops seen from the small models, fed token by token."""

from __future__ import annotations

import re

import pytest

from bridge.providers.llm.loop_guard import LoopGuard, awaiting_speech, cannot_echo, copy_bans, echoes, first_sentence, opening_bans, restated_lines, restates


def tokens(text: str) -> list[str]:
    """Split like a BPE stream would: words with their leading space, punctuation apart."""
    return re.findall(r" ?[\w']+|[^\w\s]|\s+", text)


def run(text: str, **options: object) -> tuple[str, LoopGuard, int]:
    """Feed `text`; return what came out, the guard, and how many tokens it read before stopping."""
    guard = LoopGuard(**options)  # type: ignore[arg-type]
    out, read = [], 0
    for token in tokens(text):
        read += 1
        out.append(guard.feed(token))
        if guard.stopped:
            break
    else:
        out.append(guard.finish())
    return "".join(out), guard, read


# Replies the old default (SmolLM2-135M) gave, from ../shared/embedded-llm-candidates.md and issue 13.
LOOPS = [
    ("The tavern's a fairytale, I'm sure. The tavern's a little, a little, and the tavern's a little, a little, a little, a little, a little.", "The tavern's a fairytale, I'm sure. The tavern's a little, a little, and the tavern's a little,"),
    ("The old mill, it's said to be cursed. Aye, aye, aye, the old mill, it's said to be cursed. Aye, aye, aye, aye.", "The old mill, it's said to be cursed. Aye, aye, aye,"),
    ("The old man's eyes crinkled. I don't have no, I don't have no, I don't have no, I don't have no.", "The old man's eyes crinkled. I don't have no,"),
    ("I'm a friendly, warm, curious, and sassy, just like you! I'm Mira, the Copper Kettle, I'm a friendly, warm, curious, and sassy, just like you!", "I'm a friendly, warm, curious, and sassy, just like you! I'm Mira, the Copper Kettle,"),
]


@pytest.mark.parametrize(("looping", "kept"), LOOPS)
def test_a_loop_ends_at_the_last_good_clause(looping: str, kept: str) -> None:
    out, guard, read = run(looping)
    assert guard.stopped == "loop"
    assert out.strip() == kept
    assert read < len(tokens(looping))  # generation stopped before the stream ran out


def test_a_loop_without_punctuation_is_caught_too() -> None:
    out, guard, _ = run("Well " + "aye the mill is cursed " * 40, max_clause_chars=80)
    assert guard.stopped == "loop"
    assert out == ""


@pytest.mark.parametrize(
    "fine",
    [
        "Welcome to the Copper Kettle, traveller! We have lamb stew tonight, and fresh bread.",
        "No, no, no! Put that torch down, or the guard will hear of it.",
        "A room is ten coppers. The stew is three coppers, and the ale is two coppers.",
    ],
)
def test_an_ordinary_reply_passes_unchanged(fine: str) -> None:
    out, guard, _ = run(fine)
    assert guard.stopped is None
    assert out == fine


def test_max_sentences_caps_the_reply() -> None:
    out, guard, _ = run("One. Two! Three? Four. Five.", max_sentences=3)
    assert guard.stopped == "length"
    assert out.strip() == "One. Two! Three?"


def test_text_is_released_clause_by_clause() -> None:
    guard = LoopGuard()
    assert guard.feed("Hello") == ""
    assert guard.feed(",") == ""  # not yet: "," could be part of ",,," or a number
    assert guard.feed(" trav") == "Hello,"
    assert guard.feed("eller!") == ""
    assert guard.finish() == " traveller!"


# --------------------------------------------------------------------------- echoes

# (player, reply, echo?) - the echoes are the 0.5B default's replies from docs/quickstart.md
# and from trying fixes; the others are answers that share words with the line.
ECHOES = [
    ("Hello there!", "Hello there! How can I assist you today?", True),
    ("Hand over your coin or I'll burn this place down!", "Hand over your coin or I'll burn this place down!", True),
    ("Hand over your coin or I'll burn this place down!", "I'll burn this place down.", True),
    ("This is the best ale I've ever had.", "This was the best ale I've ever had.", True),
    ("I must be going. Farewell!", "I must be going. Farewell!", True),
    ("Hello there!", "Hi there! How can I help?", False),
    ("I must be going. Farewell!", "Farewell, traveller!", False),
    ("Do you have a room for the night?", "Yes, I have a room upstairs for the night.", False),
    ("How much for a bowl of stew?", "A bowl of lamb stew costs three coppers.", False),
    ("Heard any rumours lately?", "Heard rumors lately about strange lights at the old mill.", False),
    ("Hello!", "Hello!", False),  # one word back is a greeting, not an echo
]


@pytest.mark.parametrize(("line", "reply", "echo"), ECHOES)
def test_echoes_tells_a_parrot_from_an_answer(line: str, reply: str, echo: bool) -> None:
    assert echoes(line, first_sentence(reply)) is echo


def test_the_guard_drops_an_echoed_opening_and_keeps_the_answer() -> None:
    line = "Hand over your coin or I'll burn this place down!"
    out, guard, _ = run("Hand over your coin, or I'll burn it! Not a copper, you brute.", echo_of=line)
    assert out == "Not a copper, you brute."
    assert guard.dropped == "Hand over your coin, or I'll burn it!" and not guard.echo_only


def test_the_guard_says_when_the_whole_reply_was_an_echo() -> None:
    out, guard, _ = run("This is the best ale I've ever had.", echo_of="This is the best ale I've ever had.")
    assert out == "" and guard.echo_only


def test_an_opening_without_words_is_not_sent() -> None:
    """The 0.5B model, its first word banned, opened with a lone ":" (": We should leave ...")."""
    line = "We should leave before the guard change shifts."
    out, guard, _ = run(": We should leave before the guard shifts.", echo_of=line)
    assert out == "" and guard.echo_only  # the echo is seen as an echo, the ":" never sent
    out, _, _ = run(": The silver sword costs twenty crowns.", echo_of="How much for the sword?")
    assert out == "The silver sword costs twenty crowns."
    out, _, _ = run("\n\nWelcome in, traveller.")
    assert out == "Welcome in, traveller."
    assert run("Well... yes, it is.")[0] == "Well... yes, it is."  # punctuation after a word stays


def test_an_echo_after_an_opening_action_is_still_an_echo() -> None:
    """Seen from the 0.5B model: "*smiles*: We should leave before the guard shifts." The
    action went out, the ":" and the echo must not (the reply parser shows the action)."""
    line = "We should leave before the guard change shifts."
    out, guard, _ = run("*smiles*: We should leave before the guard shifts.", echo_of=line)
    assert out == "*smiles*" and guard.echo_only and not guard.spoke_any
    out, guard, _ = run("*smiles*: Aye, the gate opens at dawn.", echo_of=line)
    assert out == "*smiles* Aye, the gate opens at dawn." and guard.spoke_any


def test_words_of_the_line_later_in_the_reply_are_not_touched() -> None:
    line = "Do you have a room for the night?"
    text = "Aye, love. A room for the night is ten coppers."
    out, guard, _ = run(text, echo_of=line)
    assert out == text and not guard.dropped  # only the opening is checked


def test_opening_bans_name_the_first_word_as_the_model_spells_it() -> None:
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(piece, len(vocab)) for piece in tokens(text)]

    bans = opening_bans("  This is the best ale.", tokenize)
    assert bans == {vocab["This"], vocab[" This"]}
    assert opening_bans("Hello!", tokenize) == set()  # one word: answering in kind is fine
    # The ban lands on the first spoken word (after the action), never on the action marker.
    assert opening_bans("*waves* Hello there", tokenize) == {vocab["Hello"], vocab[" Hello"]}
    assert vocab.get("*") not in opening_bans("*waves* Hello there", tokenize)


# --------------------------------------------------------------------------- stream_first


def pieces(text: str, **options: object) -> list[tuple[int, str]]:
    """(tokens read, text released) for every non-empty release, fed token by token."""
    guard = LoopGuard(**options)  # type: ignore[arg-type]
    out: list[tuple[int, str]] = []
    read = 0
    for read, token in enumerate(tokens(text), 1):
        released = guard.feed(token)
        if released:
            out.append((read, released))
        if guard.stopped:
            return out
    rest = guard.finish()
    if rest:
        out.append((read + 1, rest))
    return out


def test_stream_first_sends_the_first_clause_a_word_at_a_time_once_it_cannot_echo() -> None:
    """Seen from the 0.5B default: a first sentence without a comma was held to its end."""
    line = "Halt, who goes there at this hour of the night?"
    reply = "The Copper Kettle tavern is open at this late hour. Come in."
    held = pieces(reply, echo_of=line)
    streamed = pieces(reply, echo_of=line, stream_first=True)
    assert "".join(t for _, t in streamed) == "".join(t for _, t in held) == reply
    assert held[0] == (len(tokens("The Copper Kettle tavern is open at this late hour.")) + 1, "The Copper Kettle tavern is open at this late hour.")
    # "The Copper Kettle" shares no word with the line: it goes out as soon as a word follows it.
    assert streamed[0] == (len(tokens("The Copper Kettle tavern")), "The Copper Kettle")
    assert all(not t.endswith((" ", "\u00a0")) for _, t in streamed[:-1])  # whole words, the space stays with the next
    assert streamed[-1][1] == " Come in."  # after the first clause: a clause at a time as before


def test_stream_first_holds_a_start_that_could_still_become_an_echo() -> None:
    line = "We should leave before the guard change shifts."
    # A run of the line's words: held, then dropped whole as the echo it is.
    out = pieces("we should leave before the guard shifts. Not tonight, love.", echo_of=line, stream_first=True)
    assert "".join(t for _, t in out) == "Not tonight, love."
    # One word of four outside the line could still grow into an echo: held to its comma.
    out = pieces("We should leave now, before the gate closes.", echo_of=line, stream_first=True)
    assert out[0] == (len(tokens("We should leave now,")) + 1, "We should leave now,")


@pytest.mark.parametrize(("line", "reply", "echo"), ECHOES)
def test_stream_first_never_lets_out_an_echo_the_held_guard_would_drop(line: str, reply: str, echo: bool) -> None:
    held, _, _ = run(reply, echo_of=line)
    streamed, _, _ = run(reply, echo_of=line, stream_first=True)
    assert streamed == held


@pytest.mark.parametrize(("line", "reply", "echo"), [case for case in ECHOES if case[2]])
def test_cannot_echo_is_never_true_on_the_way_to_an_echo(line: str, reply: str, echo: bool) -> None:
    words = first_sentence(reply).split()
    for n in range(1, len(words) + 1):
        assert not cannot_echo(line, " ".join(words[:n])), words[:n]


def test_cannot_echo_frees_an_answer_early() -> None:
    assert cannot_echo("Do you have a room for the night?", "Aye, ten coppers")
    assert not cannot_echo("Do you have a room for the night?", "a room for")  # a run of the line
    assert not cannot_echo("Do you have a room for the night?", "Aye")  # one word: wait
    assert cannot_echo("Hello!", "Hello")  # a one-word line is never echoed


@pytest.mark.parametrize(("text", "spoke"), [("[neutral]", False), ("[emotion: sad]", False), ("*nods* [happy]", False), ("[[open_door]]", True), ('[[give {"item": "ale"}]]', True), ("[happy] Aye.", True)])
def test_spoke_any_follows_what_the_reply_parser_speaks(text: str, spoke: bool) -> None:
    # Tags are never spoken (a bare "[neutral]" left the turn with an empty reply); an
    # inline [[call]] is acted on, so a reply of only a call must not be generated again.
    out, guard, _ = run(text)
    assert out == text and guard.spoke_any is spoke


# --------------------------------------------------------------------------- the voice bench's echoes

# (player, reply): the four echoes of `bench.embedded_stack --sentences 8` at 04:01 UTC on
# 2026-12-02, as they reached the player. Each is one the guard drops whole, so they went out
# as the last resort after three tries that were all echoes (local.py sends the first one).
BENCH_ECHOES = [
    ("We should leave before the guard change shifts.", "We should leave before the guard changes shifts."),
    ("Follow me and stay close. The bridge is not safe.", "Follow me and stay close."),
    ("I found the missing letter under the old oak tree.", "— You found the missing letter under the old oak tree."),
    ("Open the gate. We have a wounded man with us.", "— Open the gate."),
]

# Answers that share words with those lines but say something new: never echoes.
BENCH_ANSWERS = [
    ("We should leave before the guard change shifts.", "Then we leave now, before the bells."),
    ("We should leave before the guard change shifts.", "The guard changes at midnight, love."),
    ("Follow me and stay close. The bridge is not safe.", "Stay close? I have walked that bridge a hundred times."),
    ("I found the missing letter under the old oak tree.", "A letter under the oak? Whose hand wrote it?"),
    ("Open the gate. We have a wounded man with us.", "The gate stays shut until dawn."),
    ("Open the gate. We have a wounded man with us.", "Bring the wounded man inside, quickly."),
]


@pytest.mark.parametrize(("line", "reply"), BENCH_ECHOES)
def test_the_bench_echoes_are_echoes_and_dropped_whole(line: str, reply: str) -> None:
    """An inflected word, a pronoun swap, the first sentence alone, a leading dash: all echoes."""
    assert echoes(line, first_sentence(reply))
    for stream_first in (False, True):
        out, guard, _ = run(reply, echo_of=line, stream_first=stream_first)
        assert out == "" and guard.echo_only  # nothing spoken: local.py tries again


@pytest.mark.parametrize(("line", "reply"), BENCH_ANSWERS)
def test_the_bench_lines_answered_are_not_echoes(line: str, reply: str) -> None:
    assert not echoes(line, first_sentence(reply))
    out, guard, _ = run(reply, echo_of=line, stream_first=True)
    assert out == reply and not guard.dropped


def test_a_dropped_echo_loses_the_dash_before_it() -> None:
    """The last resort sends the dropped echo: "— Open the gate." reached the player dash first."""
    _, guard, _ = run("— Open the gate.", echo_of="Open the gate. We have a wounded man with us.")
    assert guard.dropped == "Open the gate."
    _, guard, _ = run('"Open the gate."', echo_of="Open the gate. We have a wounded man with us.")
    assert guard.dropped == '"Open the gate."'  # a quote keeps its closing twin


def test_opening_bans_skip_the_marks_before_the_first_word() -> None:
    """A dropped "— You found ..." must ban "You" on the next try, not nothing."""
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(piece, len(vocab)) for piece in tokens(text)]

    bans = opening_bans("— You found the missing letter under the old oak tree.", tokenize)
    assert bans == {vocab["You"], vocab[" You"]}
    assert opening_bans('"We should leave now."', tokenize) == {vocab["We"], vocab[" We"]}
    assert opening_bans("*smiles* *smiles* — You found the missing letter.", tokenize) == {vocab["You"], vocab[" You"]}



# --------------------------------------------------------------------------- actions hide no echo

# The bench's four echoes as the model wrote them (bench.embedded_stack shows only the first
# TTS segment, which has no action): each behind an opening *smiles*.
BENCH_ECHOES_WITH_ACTIONS = [
    ("We should leave before the guard change shifts.", "*smiles* We should leave before the guard changes shifts."),
    ("Follow me and stay close. The bridge is not safe.", "*smiles* Follow me and stay close. The bridge is not safe."),
    ("I found the missing letter under the old oak tree.", "*smiles* *smiles* — You found the missing letter under the old oak tree."),
    ("Open the gate. We have a wounded man with us.", "*smiles* *smiles* — Open the gate. We have a wounded man with us."),
    ("We should leave before the guard change shifts.", "*smiles warmly at you* We should leave before the guard changes shifts."),
    ("Follow me and stay close. The bridge is not safe.", "[happy] *nods* Follow me and stay close."),
]


@pytest.mark.parametrize(("line", "reply"), BENCH_ECHOES_WITH_ACTIONS)
def test_an_opening_action_does_not_hide_an_echo(line: str, reply: str) -> None:
    """The action's words counted as said: 7 of 9 words in the line is under 80%, so all four
    echoes went out on the first try (the module never retried)."""
    assert echoes(line, first_sentence(reply))
    for stream_first in (False, True):
        out, guard, _ = run(reply, echo_of=line, stream_first=stream_first)
        assert out == "" and guard.echo_only, (stream_first, out)


def test_a_later_clause_that_repeats_the_line_is_dropped() -> None:
    """Seen after the fix above: the opening changed, the line's second sentence came back whole."""
    line = "Open the gate. We have a wounded man with us."
    out, guard, _ = run("*smiles* The gate is open. We have a wounded man with us.", echo_of=line, stream_first=True)
    assert out == "*smiles* The gate is open." and guard.later_echoes == 1 and guard.spoke_any
    # Three words of the line again later are an answer, not an echo.
    out, guard, _ = run("Ah, the old mill, nobody goes there.", echo_of="What happened at the old mill?", stream_first=True)
    assert out == "Ah, the old mill, nobody goes there." and guard.later_echoes == 0


def test_speech_is_awaited_through_actions_tags_and_marks() -> None:
    assert awaiting_speech("") and awaiting_speech("*smiles* *smiles* — ") and awaiting_speech("[happy] ")
    assert not awaiting_speech("*smiles* We")  # speech began
    assert not awaiting_speech("*smi") and not awaiting_speech("[hap")  # inside an action or tag any word may come


def test_copy_bans_forbid_the_next_word_of_a_run_of_the_line() -> None:
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(piece, len(vocab)) for piece in tokens(text)]

    line = "Follow me and stay close. The bridge is not safe."
    assert copy_bans(line, "*smiles* I'll", tokenize) == set()  # not a word of the line
    assert copy_bans(line, "", tokenize) == set() and copy_bans(line, "*stay", tokenize) == set()
    bans = copy_bans(line, "*smiles* I'll stay", tokenize)
    assert bans == {vocab[" close"], vocab[" Close"]}  # after a word, only a new word's token
    bans = copy_bans(line, "*smiles* Stay close.", tokenize)  # across the full stop: "close The"
    assert bans == {vocab[" The"], vocab[" the"], vocab["The"], vocab["the"]}
    # A first try may say three words of the line in a row, not four.
    assert copy_bans(line, "You can follow me", tokenize, longest=3) == set()
    assert copy_bans(line, "You can follow me and", tokenize, longest=3) == {vocab[" stay"], vocab[" Stay"]}


# --------------------------------------------------------------------------- restatements

# (player, reply): the line said back AT the player. The first four are the default
# character's replies in `bench.embedded_stack --sentences 8` at 07:38 UTC on 2026-12-02
# (after the verbatim echoes were stopped); the next three the seeded model's at the same
# points (10:27 UTC); the rest are the same changes the other way round and in other words.
RESTATEMENTS = [
    ("We should leave before the guards change shifts.", "You should leave before your guard changes shift."),
    ("Follow me and stay close, the bridge is not safe.", "You should follow me and keep close."),
    ("I found the missing letter under the old oak tree.", "You found a missing piece under that old tree."),
    ("Open the gate, we have a wounded man with us.", "You have a wounded person with you."),
    ("We should leave before the guard change shifts.", "*smiles* I'll leave before the guards change shifts."),
    ("I found the missing letter under the old oak tree.", "*smiles* You found a missing word under that oak."),
    ("Open the gate. We have a wounded man with us.", "*smiles* You'll open the gate."),
    ("I found the missing letter under the old oak tree.", "*smiles* You've found a missing word under that oak."),  # the first fix's retry
    ("You look tired tonight.", "I look tired tonight."),  # the listener's pronouns, swapped the other way
    ("You pour a fine ale, Mira.", "I pour a fine ale."),
    ("I'm looking for my brother.", "You're looking for your brother."),
    ("My horse threw a shoe on the north road.", "Your horse threw a shoe on the north road!"),
    ("Our ship sails at dawn.", "Your ship sails at dawn."),
    ("Bring me a bowl of stew.", "You must bring me a bowl of stew."),
    ("Put the sword down.", "You need to put the sword down."),
]

# Answers that share words with the line, swapped or not: a yes to a command, a statement
# answering a question, a question back, and new words.
ANSWERS = [
    ("Follow me and stay close. The bridge is not safe.", "I'll follow you and stay close."),
    ("Open the gate. We have a wounded man with us.", "I'll open the gate for you."),
    ("Open the gate. We have a wounded man with us.", "I'll open the gate."),
    ("Bring me a bowl of stew.", "I'll bring you a bowl right away."),
    ("Do you have a room for the night?", "I have a room upstairs for the night."),
    ("Are you the keeper of this tavern?", "I am the keeper of this tavern, love."),
    ("I found the missing letter under the old oak tree.", "You found it? Show me the letter!"),
    ("I found the missing letter under the old oak tree.", "A letter under the oak? Whose hand wrote it?"),
    ("We should leave before the guard change shifts.", "Yes, we should go now."),
    ("We should leave before the guard change shifts.", "The guard changes at midnight, love."),
    ("Open the gate, we have a wounded man with us.", "Bring the wounded man inside, quickly."),
    ("I need three healing potions and a map of the northern caves.", "You need a healer, not potions."),
    ("You look tired tonight.", "I am, it was a long day."),
    ("My horse threw a shoe on the north road.", "The smith can shoe your horse in the morning."),
    ("We should leave before the guard change shifts.", "We can't leave yet, the guard is still at the door."),
    ("I have a letter for the mayor.", "The mayor is at the mill tonight."),
]


@pytest.mark.parametrize(("line", "reply"), RESTATEMENTS)
def test_a_restatement_at_the_player_is_an_echo_and_dropped_whole(line: str, reply: str) -> None:
    assert restates(line, first_sentence(reply)) and echoes(line, first_sentence(reply))
    for stream_first in (False, True):
        out, guard, _ = run(reply, echo_of=line, stream_first=stream_first)
        assert out == "" and guard.echo_only, (stream_first, out)  # local.py tries again


@pytest.mark.parametrize(("line", "reply"), RESTATEMENTS)
def test_cannot_echo_is_never_true_on_the_way_to_a_restatement(line: str, reply: str) -> None:
    words = first_sentence(reply).split()
    for n in range(1, len(words) + 1):
        assert not cannot_echo(line, " ".join(words[:n])), words[:n]


@pytest.mark.parametrize(("line", "reply"), ANSWERS)
def test_an_answer_that_shares_the_lines_words_is_no_restatement(line: str, reply: str) -> None:
    assert not restates(line, reply) and not echoes(line, first_sentence(reply))
    out, guard, _ = run(reply, echo_of=line, stream_first=True)
    assert out == reply and not guard.dropped


def test_a_later_clause_that_restates_the_line_is_dropped() -> None:
    """The seeded 0.5B model at the bench's last line: a yes, then the line said back."""
    line = "Open the gate. We have a wounded man with us."
    out, guard, _ = run("*smiles* I'll open the gate. You have a wounded person with us.", echo_of=line, stream_first=True)
    assert out == "*smiles* I'll open the gate." and guard.later_echoes == 1


@pytest.mark.parametrize(
    ("line", "restated"),
    [
        ("We should leave before the guard change shifts.", ("you should leave before the guard change shifts",)),
        ("I'm sure you've seen my sword.", ("you're sure I've seen your sword",)),
        ("Open the gate, we have a wounded man with us.", ("open the gate you have a wounded man with you", "you have a wounded man with you")),
        ("Follow me and stay close.", ()),  # a command: "follow you" would be a yes
        ("Do you have a room?", ()),  # a question
    ],
)
def test_restated_lines_swap_the_speakers(line: str, restated: tuple[str, ...]) -> None:
    assert restated_lines(line) == restated


def test_copy_bans_forbid_carrying_on_the_line_as_restated() -> None:
    vocab: dict[str, int] = {}

    def tokenize(text: str) -> list[int]:
        return [vocab.setdefault(piece, len(vocab)) for piece in tokens(text)]

    line = "I found the missing letter under the old oak tree."
    # A first try: "You found the missing" would be four words of "you found the missing letter ...".
    assert copy_bans(line, "*smiles* You found", tokenize, longest=3) == set()
    assert copy_bans(line, "*smiles* You found the", tokenize, longest=3) == {vocab[" missing"], vocab[" Missing"]}
    # A retry: no two words in a row of the line, as said or as restated.
    assert copy_bans(line, "*smiles* You", tokenize) == {vocab[" found"], vocab[" Found"]}
    assert copy_bans(line, "*smiles* You've", tokenize) == {vocab[" found"], vocab[" Found"]}  # as "You" would go on
    assert copy_bans("Do you have a room?", "*smiles* I", tokenize) == set()  # a question is not restated
