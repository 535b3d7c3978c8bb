"""Who may connect, and how often: the checks made before a connection becomes a session.

Kept apart from the socket code so each rule is one small function with a reason:

- **Host header (DNS rebinding).** A web page on `evil.example` can make its own name
  resolve to 127.0.0.1 and then talk to the local bridge as a same-origin page would. The
  browser still sends `Host: evil.example:8765`, so only IP literals, `localhost` and the
  names in `[server] allowed_hosts` are accepted. Native engines connect by IP or localhost.
- **Origin.** Browsers send one, native engines do not; a page may drive the bridge only if
  its origin is in `[server] allowed_origins`. `/health` answers a foreign origin with
  liveness only: no characters, config path or connection count for a page to read.
- **Connection caps.** At most `max_connections` sessions in total and
  `max_connections_per_peer` from one address, so one client cannot take every socket.
- **Token attempts.** A wrong token is logged (the peer, never the token) and each further
  failure from that address within a minute waits longer before its answer, so guessing
  costs time; a success does not reset another peer's count.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LOCAL_NAMES = frozenset({"localhost", "localhost."})
#: Token failures from one peer are remembered this long...
AUTH_WINDOW_S = 60.0
#: ...and the n-th failure inside the window waits min(AUTH_MAX_DELAY_S, AUTH_BASE_DELAY_S * 2**(n-1)).
AUTH_BASE_DELAY_S = 0.25
AUTH_MAX_DELAY_S = 8.0


def host_name(header: str) -> str:
    """The name part of a Host header: `[::1]:8765` -> `::1`, `Box.Local:80` -> `box.local`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        return header.rsplit(":", 1)[0]
    return header


def host_allowed(header: str | None, allowed: frozenset[str]) -> bool:
    """Is this Host header one a rebinding page could not have produced?"""
    if header is None:
        return True  # HTTP/1.0-style clients; a browser always sends Host
    name = host_name(header)
    if name in LOCAL_NAMES or name in allowed:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@dataclass
class PeerCounter:
    """Open sessions, in total and per peer address."""

    total_cap: int
    peer_cap: int
    total: int = 0
    per_peer: Counter[str] = field(default_factory=Counter)

    def refusal(self, peer: str) -> str | None:
        """Why a new connection from `peer` is refused now, or None if it may come in."""
        if self.total >= self.total_cap:
            return f"the bridge has {self.total} connections (its limit); try again later"
        if self.per_peer[peer] >= self.peer_cap:
            return f"{peer} already has {self.per_peer[peer]} connections (the per-peer limit)"
        return None

    def opened(self, peer: str) -> None:
        self.total += 1
        self.per_peer[peer] += 1

    def closed(self, peer: str) -> None:
        self.total -= 1
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]


@dataclass
class AuthThrottle:
    """Failed token attempts per peer, and how long the next answer waits."""

    clock: Callable[[], float] = time.monotonic
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def failed(self, peer: str) -> float:
        """Record a failure; returns the delay before answering it (seconds)."""
        now = self.clock()
        recent = self.failures.setdefault(peer, deque())
        while recent and now - recent[0] > AUTH_WINDOW_S:
            recent.popleft()
        recent.append(now)
        if len(self.failures) > 10_000:  # forget the oldest peers rather than grow without bound
            for stale in list(self.failures)[:5_000]:
                del self.failures[stale]
        delay = min(AUTH_MAX_DELAY_S, AUTH_BASE_DELAY_S * 2 ** (len(recent) - 1))
        log.warning("refused a session from %s: missing or wrong token (%d failure(s) in %.0f s)", peer, len(recent), AUTH_WINDOW_S)
        return delay


class RateLimitedLog(logging.Filter):
    """Turns a storm of identical errors (trio's accept loop on EMFILE logs one with a full
    traceback every 0.1 s) into one line per `every_s`, without the traceback."""

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._last = -1e18
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        now = self.clock()
        if now - self._last < self.every_s:
            self._suppressed += 1
            return False
        if self._suppressed:
            record.msg = f"{record.msg} ({self._suppressed} more like it in the last {self.every_s:.0f} s)"
        self._last, self._suppressed = now, 0
        return True


def peer_of(ws: object) -> str:
    """The remote address of a connection, as a string ("?" when the socket is gone)."""
    try:
        address = ws.remote_address  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a closed socket has none; the caps still need a key
        return "?"
    if isinstance(address, tuple) and address:
        return str(address[0])
    return str(address or "?")
