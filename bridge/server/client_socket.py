"""What every client socket of the bridge shares, whichever protocol it speaks.

An EEP/1 connection (`bridge.server.connection`) and a Harmony Link plugin socket
(`bridge.server.harmony_link`) live the same way: counted in `app.connections`, one reader
loop, one writer task draining an `Outbox`, a bounded drain of queued final replies when the
reader ends, and `abort` for a client that stops reading. The lifecycle lives here once; each
protocol supplies its reader, its sender and what to tidy up.
"""

from __future__ import annotations

from typing import Any

import trio
from websockets.exceptions import ConnectionClosed

from bridge.server.app import BridgeApp
from bridge.server.outbox import Outbox
from bridge.speech.meter import current_meter

#: How long the writer may keep draining queued final replies after the reader has ended.
DRAIN_S = 2.0


class ClientSocket:
    """One client socket's lifecycle; subclasses set `outbox` and implement the hooks."""

    writer_name = "writer"

    def __init__(self, app: BridgeApp, ws: Any) -> None:
        self.app = app
        self.ws = ws
        self.outbox: Outbox
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        current_meter.set(self.app.metrics)  # this socket's speakers and entities report to /metrics
        self.app.connections += 1
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._write, name=self.writer_name)
                try:
                    await self._read()
                finally:
                    self._close_entities()
                    self.outbox.close()
                    # The writer drains what is queued (final replies), bounded in time.
                    nursery.cancel_scope.deadline = trio.current_time() + DRAIN_S
        finally:
            self.app.connections -= 1
            await self._after_close()

    def abort(self) -> None:
        """Drop a client that does not read: close its socket under the blocked writer."""
        stream = getattr(self.ws, "stream", None)
        if stream is not None and self._nursery is not None:
            self._nursery.start_soon(trio.aclose_forcefully, stream)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _write(self) -> None:
        metrics = self.app.metrics

        async def send(items: list[Any]) -> None:
            await self._send(items)
            metrics.written(len(items))

        try:
            await self.outbox.run_writer(send)
        except (ConnectionClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; the reader notices and ends the connection

    # ------------------------------------------------------------ per protocol

    async def _read(self) -> None:
        """Receive and handle frames until the connection is over."""
        raise NotImplementedError

    async def _send(self, items: list[Any]) -> None:
        """Put encoded outbox items on the wire, in order (all that were queued at once)."""
        raise NotImplementedError

    def _close_entities(self) -> None:
        """Stop this socket's entities (their turns end with the nursery)."""

    async def _after_close(self) -> None:
        """Tidy up once every task of the socket has ended (close frame, temporary files)."""
