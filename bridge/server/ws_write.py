"""Several WebSocket messages in one socket write.

Why: a crowd's paced audio is released in bursts (the speakers of one connection wake in
the same scheduler batch), so the writer often finds dozens of frames queued at once.
`websockets` writes each message with its own `send_all`: one system call per frame, and on
loopback or a LAN each call also wakes the client's reader. Framing all of them first and
writing the bytes once does the same on the wire (the same frames, in the same order) for
one call.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.trio.connection import Connection


async def send_in_one_write(ws: Connection, messages: Sequence[bytes | str]) -> None:
    """Send `messages` (bytes: binary, str: text frames) as `ws.send` would, one after the
    other, but hand the socket their frames in one write.

    Uses the documented way of writing from user code (`send_context` around the sans-I/O
    protocol's `send_*`), which checks the state and raises `ConnectionClosed` as `send`
    does; the frames the protocol queued are then joined, unless a half-close is among them.
    """
    while ws.send_in_progress is not None:  # a fragmented message is being sent: as send() does
        await ws.send_in_progress.wait()
    async with ws.send_context():
        for message in messages:
            if isinstance(message, str):
                ws.protocol.send_text(message.encode())
            else:
                ws.protocol.send_binary(message)
        writes = ws.protocol.writes
        if len(writes) > 1 and all(writes):  # b"" is the end of the stream: keep it apart
            ws.protocol.writes = [b"".join(writes)]


async def send_frames(ws: Connection, messages: Sequence[bytes | str]) -> None:
    """What a connection's writer does with the frames it took from its outbox: one frame
    is a plain `ws.send`, several go out in one write."""
    if len(messages) == 1:
        await ws.send(messages[0])
    else:
        await send_in_one_write(ws, messages)
