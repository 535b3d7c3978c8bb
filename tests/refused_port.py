"""A 127.0.0.1 port that refuses connections for as long as a test needs it.

Binding port 0 and closing the socket ("a free port") leaves a window in which any other
process on this shared machine (another suite's bridge or fake server binding port 0) can
be given that port, and the "unreachable" server answers. A socket that stays bound but
never listens keeps the port for us, and the kernel refuses every connection to it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refused_port() -> Iterator[int]:
    """A port on 127.0.0.1 that nobody listens on until the block ends."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
