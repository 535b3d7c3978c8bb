"""Where a turn's time went, as the bridge measured it: the optional `timing` block of a
turn's final reply (user.utterance, world.event with respond, tts.say).

Times are integer milliseconds from the moment the bridge accepted the request (so a turn
that waited behind another includes the wait), on the bridge's monotonic clock:

- `llm_first_token_ms`: the first non-empty delta of the LLM stream;
- `first_segment_ms`: the first piece of speech handed to the voice (a clause or sentence);
- `tts_first_audio_ms`: the first `ai.speech.audio` chunk put on the connection;
- `total_ms`: when the final reply was built;
- `queued_ms`: not a moment but a duration: how long the turn's provider requests waited
  in module quota queues, summed (left out when nothing waited).

A mark that did not happen (no voice, no LLM) is left out. The dev console draws these
beside the times it saw frames arrive, which tells a slow LLM from a slow voice or network.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class TurnTiming:
    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)
    queued_s: float = 0.0

    def mark(self, name: str) -> None:
        """Record the first time `name` happened; later calls keep the first."""
        self.marks.setdefault(name, time.monotonic())

    def queued(self, seconds: float) -> None:
        """A provider request of the turn waited this long for its module's quota."""
        self.queued_s += seconds

    def payload(self) -> dict[str, int]:
        block = {f"{name}_ms": int(round((at - self.started) * 1000)) for name, at in self.marks.items()}
        block["total_ms"] = int(round((time.monotonic() - self.started) * 1000))
        if self.queued_s > 0:
            block["queued_ms"] = int(round(self.queued_s * 1000))
        return block
