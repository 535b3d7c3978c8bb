"""Who a piece of work is for, as context variables: the entity, the turn, the module.

The character stage sets them when a turn starts (trio copies context variables into the
tasks a turn spawns), providers read the entity for their fair queue, and the server's JSON
log formatter puts all three on every line. They live here, below every stage that needs
them, so none has to import a stage above it.
"""

from __future__ import annotations

import contextvars

current_entity: contextvars.ContextVar[str] = contextvars.ContextVar("entity_bridge_entity", default="")
current_turn: contextvars.ContextVar[str] = contextvars.ContextVar("entity_bridge_turn", default="")
current_module: contextvars.ContextVar[str] = contextvars.ContextVar("entity_bridge_module", default="")
