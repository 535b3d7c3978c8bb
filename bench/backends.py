"""Fake LLM and TTS backends of known speed, in a process of their own, for benchmarks.

Run by `bench.speech_latency`: a fake OpenAI chat server (first token after `--llm-ms`, then
`--tps` tokens a second) and a fake OpenAI speech server (first audio after `--tts-ms`, then
audio at real-time factor `--rtf`) on 127.0.0.1. They run apart from the bridge and the
benchmark's client so that their own CPU time does not slow either down, and they log, per
request, when it arrived and when each piece of the answer went out (`time.monotonic()`,
the same clock in every process on Linux). That log is what lets a benchmark subtract the
fakes' own time, overshoot included, from what its client measured.

Every reply carries the tag found in the user's message (`Q<entity>x<turn>`), so the
speech requests that follow can be matched to the turn that caused them.

    python -m bench.backends --llm-ms 200 --tps 40 --tts-ms 150 --rtf 0.25 --trace FILE

Prints one line `READY {"llm": {...options}, "tts": {...options}}`, serves until its stdin
closes, then writes the trace (a JSON list) to FILE and exits.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import trio

from tests.fakes.http_server import FakeRequest
from tests.fakes.openai_chat import fake_openai_chat
from tests.fakes.openai_speech import fake_openai_speech

TAG = re.compile(r"Q\d+x\d+")
#: What the fake character says; `{tag}` becomes the asking turn's tag (one token).
REPLY = (
    "Well now, traveller {tag} from the south, the road north is closed tonight because the old "
    "bridge washed out in the storm. The ferryman will not cross until morning."
)


def reply_for(body: dict[str, Any]) -> str:
    """The reply, tagged with the tag of the last user message (`Q0x0` when it has none)."""
    users = [m.get("content") for m in body.get("messages", []) if m.get("role") == "user"]
    found = TAG.search(str(users[-1])) if users else None
    return REPLY.format(tag=found.group(0) if found else "Q0x0")


def trace_entry(kind: str, request: FakeRequest) -> dict[str, Any]:
    """What the benchmark needs of one request: its tag, arrival and write times."""
    try:
        body = request.json()
    except ValueError:
        body = {}
    text = json.dumps(body.get("messages") if kind == "llm" else body.get("input"))
    found = TAG.search(text)
    return {
        "kind": kind,
        "tag": found.group(0) if found else None,
        "received_at": request.received_at,
        "writes": request.write_times,
    }


async def serve(args: argparse.Namespace) -> None:
    async with fake_openai_chat(reply=reply_for, first_token_delay=args.llm_ms / 1000, tokens_per_s=args.tps) as llm, fake_openai_speech(ttfa=args.tts_ms / 1000, rtf=args.rtf) as tts:
        ready = {"llm": llm.options(), "tts": tts.options(model="tts-1", voice="alloy")}
        print("READY " + json.dumps(ready), flush=True)
        stdin = trio.lowlevel.FdStream(sys.stdin.fileno())
        while await stdin.receive_some(4096):
            pass
        trace = [trace_entry("llm", r) for r in llm.requests] + [trace_entry("tts", r) for r in tts.http.requests]
        Path(args.trace).write_text(json.dumps(trace))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm-ms", type=float, default=200, help="LLM time to first token")
    parser.add_argument("--tps", type=float, default=40, help="LLM tokens a second after the first")
    parser.add_argument("--tts-ms", type=float, default=150, help="TTS time to first audio")
    parser.add_argument("--rtf", type=float, default=0.25, help="TTS real-time factor after the first audio")
    parser.add_argument("--trace", required=True, help="where to write the request log at exit")
    trio.run(serve, parser.parse_args(argv))


if __name__ == "__main__":
    main()
