"""The turns a character takes: answering an utterance (or a world event), and speaking a line.

An utterance turn runs the data flow of DESIGN.md inside the turn's nursery: the harmonizer
builds the prompt from memory, the LLM streams, the reply parser splits actions and
emotion tags from speech, the segmenter cuts speech into segments as it arrives, and the
speaker (when the character has a voice) turns each segment into audio while the LLM is
still writing the next. Memory keeps both sides; an interrupted reply is kept as heard.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import trio

from bridge.character.entity import Turn, TurnFailed
from bridge.character.reply_parser import Action, ActionCall, EmotionTag, ReplyParser, SpeechText
from bridge.character.harmonize import HeldActionsFull
from bridge.character.runtime import CharacterRuntime
from bridge.protocol.errors import ErrorCode
from bridge.providers.base import ChatMessage, LLMRequest, ProviderError, ToolCall
from bridge.providers.log_context import current_module
from bridge.speech.speaker import Speaker

log = logging.getLogger(__name__)


class ConversationTurn:
    """`user.utterance`, and `world.event` with `respond: true`."""

    def __init__(self, character: CharacterRuntime) -> None:
        self.character = character
        self.speaker: Speaker | None = None
        self.speech_parts: list[str] = []
        self.actions: list[str] = []
        self.acts: Any = None  # the turn's ports.ActionRun, when the character has a world
        #: What starts once the first LLM has answered the request (`_answered`).
        self._on_answer: list[Callable[[], None]] = []
        self._answered_yet = False

    def _llm_text(self, turn: Turn) -> str | None:
        payload = turn.request.payload or {}
        harmonizer = self.character.harmonizer
        try:
            if turn.request.type == "world.event":
                return harmonizer.world_reaction_prompt(str(payload.get("text", "")), payload.get("actor"))
            return harmonizer.utterance(str(payload.get("kind", "verbal")), str(payload.get("text", "")), payload.get("speaker"))
        except ValueError as exc:
            code = ErrorCode.TOO_LARGE if isinstance(exc, HeldActionsFull) else ErrorCode.BAD_EVENT
            raise TurnFailed(code, str(exc)) from None

    async def run(self, turn: Turn) -> dict[str, Any]:
        character = self.character
        payload = turn.request.payload or {}
        held_before = bool(character.harmonizer.held_actions)
        llm_text = self._llm_text(turn)
        if llm_text is None:  # nonverbal_delayed: held, and remembered with the next utterance
            return {"reply": "", "spoken": "", "actions": [], "interrupted": False, "held": True}
        memory = await character.memory()
        async with trio.open_nursery() as remembering:
            stored: list[bool] = []
            if turn.request.type == "user.utterance":
                speaker_name = str(payload.get("speaker") or character.player_name)
                # With held actions in front, remember the line as the LLM saw it, once.
                text, kind = (llm_text, "combined") if held_before else (str(payload.get("text", "")), str(payload.get("kind", "verbal")))
                line = (memory, speaker_name, text, kind)
                self._on_answer.append(lambda: remembering.start_soon(self._remember_user_line, *line, stored))
            try:
                first_reply, follow_up, emotion = await self._converse(turn, memory, llm_text)
            finally:
                if turn.request.type == "user.utterance" and not self._answered_yet:
                    # No LLM answered (it failed, the turn was cut): the line is still stored.
                    with trio.CancelScope(shield=True):
                        await self._remember_user_line(*line, stored)
        # The user's line is stored now (the nursery waited for it): the character's lines follow it.
        spoken = "".join(self.speech_parts).strip()
        results = list(self.acts.results) if self.acts is not None else []
        if not spoken and not self.actions and not results:
            raise ProviderError("backend_error", "the LLM returned an empty reply")
        first_visible = _visible_text(self.actions, first_reply)
        if first_visible:
            await memory.add(character.name, character.scope, character.name, first_visible, "speech", role="assistant")
        await self._remember_results(results)
        if follow_up:
            await memory.add(character.name, character.scope, character.name, follow_up, "speech", role="assistant")
        result: dict[str, Any] = {"reply": _visible_text(self.actions, spoken), "spoken": spoken, "actions": self.actions, "interrupted": False}
        if results:
            result["performed"] = [r.to_payload() for r in results]
        if follow_up:
            result["follow_up"] = follow_up
        if emotion:
            result["emotion"] = emotion
        result["timing"] = turn.timing.payload()
        return result

    async def _remember_user_line(self, memory: Any, speaker: str, text: str, kind: str, stored: list[bool]) -> None:
        """Store the user's line once the LLM has answered, not before its request.

        The write is a worker-thread hop (SQLite), which measured 0.1-0.5 ms on a quiet
        machine and several ms on a loaded one: time the LLM request would wait for nothing,
        since the prompt is built from the history read before it. It runs while the LLM
        thinks (started by `_answered`). Whatever ends the turn first (an interrupt, a failed
        LLM, a bug), the line is still stored (`run` stores it when no LLM answered), once
        (`stored`), and before any of the character's own lines of this turn.
        """
        if stored:
            return
        stored.append(True)
        with trio.CancelScope(shield=True):
            await memory.add(self.character.name, self.character.scope, speaker, text, kind, role="user")

    def _after_answer(self, start: Callable[[], None], *, now: bool = False) -> None:
        """Start a task of the turn that waits for the LLM's reply once the LLM has answered
        (`now`: at once). A task started before the request is out runs its first step
        inside the request's path: trio runs it at the turn's first checkpoint, and the HTTP
        client has several before its write (~0.1 ms of CPU a task at one entity)."""
        if now or self._answered_yet:
            start()
        else:
            self._on_answer.append(start)

    def _answered(self) -> None:
        """The first LLM answered the request (its stream opened): start what waited for it."""
        if self._answered_yet:
            return
        self._answered_yet = True
        starts, self._on_answer = self._on_answer, []
        for start in starts:
            start()

    async def _converse(self, turn: Turn, memory: Any, llm_text: str) -> tuple[str, str, str | None]:
        """Prompt, stream the reply, speak it: returns (first reply, follow-up, emotion)."""
        character = self.character
        world = character.world
        if world is not None:
            await world.prepare_turn()

        # Read before this turn's line is stored: the new message is `llm_text` itself.
        history = await memory.recent(character.name, character.scope, character.history_limit)
        primary = await character.app.provider(character.llm_chain[0])
        tools = world.tools() if world is not None and getattr(primary, "supports_tools", False) else []
        sections = world.prompt_sections(tools=bool(tools)) if world is not None else []
        messages = character.harmonizer.build_messages(history, llm_text, character.token_budget, sections)
        request = LLMRequest(messages=messages, new_message=llm_text, character=character.name, scope=character.scope, tools=tools)

        tts = await character.tts()
        emotion: str | None = None
        follow_up = ""
        first_reply = ""
        self.acts = world.start_actions(turn.id) if world is not None else None
        async with trio.open_nursery() as nursery:
            if tts is not None:
                speaker = self.speaker = character.speaker_for(turn, tts)
                # A TTS fed words as they are written opens its stream now: its handshake
                # overlaps the LLM's wait. Others have nothing to do before the first segment.
                self._after_answer(lambda: nursery.start_soon(speaker.run), now=speaker.first_words is not None)
            try:
                async with trio.open_nursery() as performing:
                    acts = self.acts
                    if acts is not None:
                        self._after_answer(lambda: performing.start_soon(acts.run))
                    try:
                        emotion = await self._stream_reply(turn, request, self.acts)
                    finally:
                        if self.acts is not None:
                            self.acts.close()  # run() returns once the last action is answered
                first_reply = "".join(self.speech_parts).strip()
                if self.acts is not None and self.acts.results and world is not None and world.react_to_action_result:
                    follow_up = await self._follow_up(turn, messages, first_reply)
            finally:
                if self.speaker is not None:
                    self.speaker.finish()
        return first_reply, follow_up, emotion

    async def _remember_results(self, results: list[Any]) -> None:
        """Each performed action and the engine's answer, in order, for chat.history and the LLM."""
        if not results:
            return
        character = self.character
        memory = await character.memory()
        for performed in results:
            call = f"[[{performed.name} {json.dumps(performed.args)}]]" if performed.args else f"[[{performed.name}]]"
            await memory.add(character.name, character.scope, character.name, call, "action", role="assistant")
            await memory.add(character.name, character.scope, "game", performed.memory_text(), "action_result", role="user")

    async def _follow_up(self, turn: Turn, messages: list[Any], first_reply: str) -> str:
        """One short line reacting to what the engine answered (`react_to_action_result`)."""
        assert self.acts is not None
        results = "; ".join(r.memory_text() for r in self.acts.results)
        prompt = f"(What happened: {results} React to it in one short spoken line, in character. Take no further actions.)"
        history = list(messages)
        if first_reply:
            history.append(ChatMessage("assistant", _visible_text(self.actions, first_reply)))
        history.append(ChatMessage("user", prompt))
        request = LLMRequest(messages=history, new_message=prompt, character=self.character.name, scope=self.character.scope)
        before = len(self.speech_parts)
        await self._stream_reply(turn, request, None, separator=True)
        return "".join(self.speech_parts[before:]).strip()

    async def _stream_reply(self, turn: Turn, request: LLMRequest, acts: Any, *, separator: bool = False) -> str | None:
        """Stream from the first LLM of the chain that starts answering; returns the emotion.

        Actions the LLM picks (inline ``[[name {...}]]`` or tool calls) go to `acts` as
        soon as each is complete; without `acts` they are dropped with a log line.
        """
        parser = ReplyParser()
        segmenter = self.character.new_segmenter(self.speaker.first_words if self.speaker is not None else None)
        emotion: str | None = None
        text_deltas = self.character.text_deltas
        needs_space = separator and bool(self.speech_parts)

        def take_action(name: str, args: Any, source: str) -> None:
            if acts is None:
                log.warning("%s: dropped the %s action %r: no actions are taken in this reply", turn.entity.name, source, name)
                return
            acts.submit(name, args, source)

        async def handle(pieces: list[Any]) -> None:
            nonlocal emotion, needs_space
            for piece in pieces:
                if isinstance(piece, SpeechText):
                    text = piece.text
                    if needs_space:
                        text, needs_space = " " + text, False
                    self.speech_parts.append(text)
                    if text_deltas:
                        await turn.emit("ai.text", {"delta": text})
                    if self.speaker is not None:
                        for segment in segmenter.feed(text):
                            turn.timing.mark("first_segment")
                            self.speaker.say(segment)
                        self.speaker.wrote(text)
                elif isinstance(piece, Action):
                    self.actions.append(piece.text)
                    await turn.emit("ai.action", {"text": piece.text, "kind": "nonverbal"})
                elif isinstance(piece, EmotionTag):
                    emotion = piece.emotion
                    self.character.emotion_hint = piece.emotion
                elif isinstance(piece, ActionCall):
                    if piece.error is not None:
                        log.warning("%s: dropped an inline action %r: %s", turn.entity.name, piece.raw[:80], piece.error)
                    else:
                        take_action(piece.name, piece.args, "inline")

        def tool_call(call: ToolCall) -> None:
            try:
                args = json.loads(call.arguments) if call.arguments.strip() else {}
            except ValueError as exc:
                log.warning("%s: dropped the tool call %r: its arguments are not JSON (%s)", turn.entity.name, call.name, exc)
                return
            take_action(call.name, args, "tool")

        errors: list[str] = []
        for module_name in self.character.llm_chain:
            current_module.set(module_name)
            llm = await self.character.app.provider(module_name)
            started = False
            try:
                async with llm.stream(request) as deltas:
                    self._answered()
                    async for delta in deltas:
                        if isinstance(delta, ToolCall):
                            started = True
                            turn.timing.mark("llm_first_token")
                            tool_call(delta)
                        elif delta:
                            started = True
                            turn.timing.mark("llm_first_token")
                            await handle(parser.feed(delta))
                await handle(parser.finish())
                if self.speaker is not None:
                    for segment in segmenter.flush():
                        turn.timing.mark("first_segment")
                        self.speaker.say(segment)
                    self.speaker.text_done()
                return emotion
            except ProviderError as exc:
                if started or module_name == self.character.llm_chain[-1]:
                    if errors:
                        exc.message = f"{exc.message} (after fallbacks failed: {'; '.join(errors)})"
                    raise
                errors.append(f"{module_name}: {exc.code}")
                log.warning("LLM module %s failed (%s: %s); falling back", module_name, exc.code, exc.message)
        raise AssertionError("unreachable: the LLM chain is never empty")

    async def interrupted(self, turn: Turn) -> dict[str, Any] | None:
        character = self.character
        played = turn.interrupt_played_ms
        if self.speaker is not None and self.speaker.segments:
            segment, played_ms, heard = self.speaker.heard(played)
            if segment is not None:
                await turn.emit(
                    "ai.speech.interrupted", {"speech": segment.speech, "played_ms": int(round(played_ms)), "heard_text": heard}
                )
        elif self.speaker is not None:
            heard = ""  # nothing was played yet
        else:
            heard = "".join(self.speech_parts).strip()  # no voice: the streamed text was "heard"
        memory = await character.memory()
        with trio.CancelScope(shield=True):
            text = _visible_text(self.actions, heard)
            if text:
                await memory.add(character.name, character.scope, character.name, text, "speech", True, role="assistant")
            if self.acts is not None:
                await self._remember_results(list(self.acts.results))
        return {"heard_text": heard}


class SpeakTurn:
    """`tts.say`: the character speaks the given text, no LLM involved."""

    def __init__(self, character: CharacterRuntime) -> None:
        self.character = character
        self.speaker: Speaker | None = None

    async def run(self, turn: Turn) -> dict[str, Any]:
        tts = await self.character.tts()
        if tts is None:
            raise TurnFailed(ErrorCode.BACKEND_UNAVAILABLE, f"character {self.character.name!r} has no tts module")
        text = str((turn.request.payload or {}).get("text", "")).strip()
        if not text:
            raise TurnFailed(ErrorCode.BAD_EVENT, "tts.say needs some text")
        self.speaker = self.character.speaker_for(turn, tts)
        segmenter = self.character.new_segmenter()
        for segment in [*segmenter.feed(text), *segmenter.flush()]:
            turn.timing.mark("first_segment")
            self.speaker.say(segment)
        self.speaker.wrote(text)
        self.speaker.finish()
        await self.speaker.run()
        total = sum(s.sent_ms for s in self.speaker.segments)
        return {"duration_ms": int(round(total)), "timing": turn.timing.payload()}

    async def interrupted(self, turn: Turn) -> dict[str, Any] | None:
        if self.speaker is None or not self.speaker.segments:
            return {"heard_text": ""}
        segment, played_ms, heard = self.speaker.heard(turn.interrupt_played_ms)
        if segment is not None:
            await turn.emit("ai.speech.interrupted", {"speech": segment.speech, "played_ms": int(round(played_ms)), "heard_text": heard})
        return {"heard_text": heard}


def _visible_text(actions: list[str], spoken: str) -> str:
    """The reply as the character's history shows it: actions in asterisks, then speech."""
    parts = [f"*{a}*" for a in actions]
    if spoken:
        parts.append(spoken)
    return " ".join(parts)

