"""The conversation turn: a player's utterance in, the character's reply out.

This is the core path of a turn; the harmonizer, reply parser, segmenter, memory and speech
plug into it (see DESIGN.md's data flow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bridge.entity import Turn
from bridge.providers.base import ChatMessage, LLMRequest, ProviderError

if TYPE_CHECKING:
    from bridge.character import CharacterRuntime


class ConversationTurn:
    def __init__(self, character: "CharacterRuntime") -> None:
        self.character = character

    async def run(self, turn: Turn) -> dict[str, Any]:
        payload = turn.request.payload or {}
        text = str(payload.get("text", ""))
        cfg = self.character.config
        messages = [
            ChatMessage("system", f"You are {cfg.display_name}. {cfg.persona}".strip()),
            ChatMessage("user", text),
        ]
        request = LLMRequest(messages=messages, new_message=text, character=cfg.name, scope=self.character.scope)
        llm = await self.character.llm()
        parts: list[str] = []
        turn.state["reply"] = parts
        async with llm.stream(request) as deltas:
            async for delta in deltas:
                if not delta:
                    continue
                parts.append(delta)
                if self.character.text_deltas:
                    await turn.emit("ai.text", {"delta": delta})
        reply = "".join(parts).strip()
        if not reply:
            raise ProviderError("backend_error", f"{getattr(llm, 'name', 'the LLM')} returned an empty reply")
        return {"reply": reply, "spoken": reply, "actions": [], "interrupted": False}

    async def interrupted(self, turn: Turn) -> dict[str, Any] | None:
        heard = "".join(turn.state.get("reply", []))
        return {"heard_text": heard}
