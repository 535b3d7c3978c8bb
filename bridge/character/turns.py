"""Which kind of turn a request starts.

Kept apart from the runtime so that the turns (`conversation`) can use the runtime without
the runtime importing them back: the connection and the microphone listener ask here for a
request's handler, and the handler gets the entity's runtime.
"""

from __future__ import annotations

from bridge.character.conversation import ConversationTurn, SpeakTurn
from bridge.character.entity import TurnHandler
from bridge.character.runtime import CharacterRuntime
from bridge.protocol.envelope import Event
from bridge.protocol.errors import ErrorCode, ProtocolError


def handler_for(runtime: CharacterRuntime, request: Event) -> TurnHandler:
    """The handler of the turn `request` starts; the runtime remembers it as the current one."""
    handler: ConversationTurn | SpeakTurn
    if request.type in ("user.utterance", "world.event"):
        handler = ConversationTurn(runtime)
    elif request.type == "tts.say":
        handler = SpeakTurn(runtime)
    else:
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE, f"{request.type} does not start a turn", event_type=request.type, event_id=request.id, entity=request.entity
        )
    runtime.current_handler = handler
    return handler
