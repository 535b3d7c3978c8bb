"""Counting the requests a fake HTTP server is still answering.

A connection count cannot tell whether a client abandoned a request: httpx keeps finished
connections in its pool, so a healthy client holds one open long after its last reply.
What a fault test wants to know is narrower: has every request handler returned? A handler
that hangs on purpose returns only when the client hangs up (see
`tests.fakes.stt_support.hang_until_disconnect`), so "nothing in flight" after a timeout
proves the client closed the connection it gave up on.

    inflight = InFlight()
    async with serve_http(inflight.wrap(handler)) as http: ...
    assert await inflight.wait_idle(2.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from tests.fakes.http_server import FakeRequest, Handler, Responder


@dataclass
class InFlight:
    """How many requests are being answered now, and how many ever were."""

    count: int = 0
    started: int = 0
    peak: int = 0  # the most answered at once

    def wrap(self, handler: Handler) -> Handler:
        async def counted(req: FakeRequest, res: Responder) -> None:
            self.count += 1
            self.started += 1
            self.peak = max(self.peak, self.count)
            try:
                await handler(req, res)
            finally:
                self.count -= 1

        return counted

    async def wait_idle(self, timeout: float = 2.0) -> bool:
        """True once no request is being answered; False if some still is after `timeout`."""
        with trio.move_on_after(timeout):
            while self.count:
                await trio.sleep(0.005)
            return True
        return False
