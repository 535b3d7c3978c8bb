"""The turns a character takes: answering an utterance (or a world event), and speaking a line.

An utterance turn runs the data flow of DESIGN.md inside the turn's nursery: the harmonizer
builds the prompt from memory, the LLM streams, the reply parser splits actions and
emotion tags from speech, the segmenter cuts speech into segments as it arrives, and the
speaker (when the character has a voice) turns each segment into audio while the LLM is
still writing the next. Memory keeps both sides; an interrupted reply is kept as heard.
"""

from __future__ import annotations

from typing import Any

import trio

from bridge.character.entity import Turn, TurnFailed
from bridge.character.reply_parser import Action, EmotionTag, ReplyParser, SpeechText
from bridge.character.runtime import CharacterRuntime
from bridge.protocol.errors import ErrorCode
from bridge.providers.base import LLMRequest, ProviderError
from bridge.speech.speaker import Speaker


class ConversationTurn:
    """`user.utterance`, and `world.event` with `respond: true`."""

    def __init__(self, character: CharacterRuntime) -> None:
        self.character = character
        self.speaker: Speaker | None = None
        self.speech_parts: list[str] = []
        self.actions: list[str] = []

    def _llm_text(self, turn: Turn) -> str | None:
        payload = turn.request.payload or {}
        harmonizer = self.character.harmonizer
        try:
            if turn.request.type == "world.event":
                return harmonizer.world_reaction_prompt(str(payload.get("text", "")), payload.get("actor"))
            return harmonizer.utterance(str(payload.get("kind", "verbal")), str(payload.get("text", "")), payload.get("speaker"))
        except ValueError as exc:
            raise TurnFailed(ErrorCode.BAD_EVENT, str(exc)) from None

    async def run(self, turn: Turn) -> dict[str, Any]:
        character = self.character
        payload = turn.request.payload or {}
        held_before = bool(character.harmonizer.held_actions)
        llm_text = self._llm_text(turn)
        if llm_text is None:  # nonverbal_delayed: held, and remembered with the next utterance
            return {"reply": "", "spoken": "", "actions": [], "interrupted": False, "held": True}
        memory = await character.memory()
        if turn.request.type == "user.utterance":
            speaker_name = str(payload.get("speaker") or character.player_name)
            # With held actions in front, remember the line as the LLM saw it, once.
            text, kind = (llm_text, "combined") if held_before else (str(payload.get("text", "")), str(payload.get("kind", "verbal")))
            await memory.add(character.name, character.scope, speaker_name, text, kind, role="user")

        history = await memory.recent(character.name, character.scope, character.history_limit)
        if turn.request.type == "user.utterance" and history:
            history = history[:-1]  # the line just stored is the new message itself
        messages = character.harmonizer.build_messages(history, llm_text, character.token_budget)
        request = LLMRequest(messages=messages, new_message=llm_text, character=character.name, scope=character.scope)

        tts = await character.tts()
        emotion: str | None = None
        async with trio.open_nursery() as nursery:
            if tts is not None:
                self.speaker = character.speaker_for(turn, tts)
                nursery.start_soon(self.speaker.run)
            try:
                emotion = await self._stream_reply(turn, request)
            finally:
                if self.speaker is not None:
                    self.speaker.finish()

        spoken = "".join(self.speech_parts).strip()
        if not spoken and not self.actions:
            raise ProviderError("backend_error", "the LLM returned an empty reply")
        reply = _visible_text(self.actions, spoken)
        await memory.add(character.name, character.scope, character.name, reply, "speech", role="assistant")
        result: dict[str, Any] = {"reply": reply, "spoken": spoken, "actions": self.actions, "interrupted": False}
        if emotion:
            result["emotion"] = emotion
        return result

    async def _stream_reply(self, turn: Turn, request: LLMRequest) -> str | None:
        """Stream from the first LLM of the chain that starts answering; returns the emotion."""
        parser = ReplyParser()
        segmenter = self.character.new_segmenter()
        emotion: str | None = None
        text_deltas = self.character.text_deltas

        async def handle(pieces: list[Any]) -> None:
            nonlocal emotion
            for piece in pieces:
                if isinstance(piece, SpeechText):
                    self.speech_parts.append(piece.text)
                    if text_deltas:
                        await turn.emit("ai.text", {"delta": piece.text})
                    if self.speaker is not None:
                        for segment in segmenter.feed(piece.text):
                            self.speaker.say(segment)
                elif isinstance(piece, Action):
                    self.actions.append(piece.text)
                    await turn.emit("ai.action", {"text": piece.text, "kind": "nonverbal"})
                elif isinstance(piece, EmotionTag):
                    emotion = piece.emotion
                    self.character.emotion_hint = piece.emotion

        errors: list[str] = []
        for module_name in self.character.llm_chain:
            llm = await self.character.app.provider(module_name)
            started = False
            try:
                async with llm.stream(request) as deltas:
                    async for delta in deltas:
                        if delta:
                            started = True
                            await handle(parser.feed(delta))
                await handle(parser.finish())
                if self.speaker is not None:
                    for segment in segmenter.flush():
                        self.speaker.say(segment)
                return emotion
            except ProviderError as exc:
                if started or module_name == self.character.llm_chain[-1]:
                    if errors:
                        exc.message = f"{exc.message} (after fallbacks failed: {'; '.join(errors)})"
                    raise
                errors.append(f"{module_name}: {exc.code}")
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
            self.speaker.say(segment)
        self.speaker.finish()
        await self.speaker.run()
        total = sum(s.sent_ms for s in self.speaker.segments)
        return {"duration_ms": int(round(total))}

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

