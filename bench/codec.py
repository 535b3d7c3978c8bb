"""Cost per event of the protocol core: decode + validate (inbound) and encode (outbound).

    python -m bench.codec [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import time

import msgpack

from bench.common import machine, table
from bridge.protocol.codec import Framing
from bridge.protocol.envelope import Event
from bridge.protocol.limits import Limits
from bridge.protocol.schema import registry
from bridge.protocol.session import ProtocolSession

UTTERANCE = {"type": "user.utterance", "id": "u1", "entity": "npc-1", "payload": {"kind": "verbal", "text": "Hello there, how are you today?"}}
MIC = {"type": "stt.audio", "id": "a1", "entity": "npc-1", "payload": {"audio": b"\x01\x00" * 320, "seq": 1}}
AUDIO_OUT = Event(
    "ai.speech.audio",
    "b1",
    {"speech": "s1", "seq": 3, "t": 120, "audio": b"\x01\x00" * 960, "visemes": [[120, "aa", 1.0], [150, "PP", 1.0]], "volume": [0.5, 0.6, 0.4, 0.3]},
    entity="npc-1",
    ref="u1",
)


def measure(n: int) -> list[tuple[str, float]]:
    results = []
    for framing in (Framing.MSGPACK, Framing.JSON):
        session = ProtocolSession(registry(), Limits(events_per_second=10**9, event_burst=10**9), time.monotonic)
        hello = {"type": "session.hello", "id": "h", "payload": {"protocol": 1}}
        encode = (lambda w: msgpack.packb(w, use_bin_type=True)) if framing is Framing.MSGPACK else (lambda w: json.dumps(w, default=lambda b: __import__("base64").b64encode(b).decode()))
        session.receive(encode(hello))
        for name, wire in (("user.utterance", UTTERANCE), ("stt.audio 20 ms", MIC)):
            frame = encode(wire)
            for _ in range(200):
                session.receive(frame)
            start = time.perf_counter()
            for _ in range(n):
                session.receive(frame)
            results.append((f"{framing.value} decode+validate {name}", (time.perf_counter() - start) / n * 1e6))
        for _ in range(200):
            session.encode(AUDIO_OUT, framing)
        start = time.perf_counter()
        for _ in range(n):
            session.encode(AUDIO_OUT, framing)
        results.append((f"{framing.value} encode ai.speech.audio 40 ms", (time.perf_counter() - start) / n * 1e6))
    return results


def main(argv: list[str] | None = None) -> list[tuple[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args(argv)
    rows = [(name, f"{us:.1f} us/event") for name, us in measure(args.n)]
    print(table(rows, f"codec and validation cost ({machine()})"))
    return rows


if __name__ == "__main__":
    main()
