"""The worker process behind `native_pool`: runs libespeak-ng calls (ours and piper's).

Started as `python -m bridge.media.native_worker` with pipes for stdin/stdout. It reads
one request frame, runs it, writes one reply frame, and exits when stdin closes (the
bridge is gone). A crash here kills only this process; the pool sees EOF and replaces it.

Operations (the only code the worker runs):
- `espeak_info`: sample rate, voice names and variants of libespeak-ng;
- `espeak_phonemes(text, voice)`: IPA clauses;
- `espeak_synth(text, voice, params, keep_audio)`: audio and phoneme events; a `stop`
  frame arriving while it renders aborts it at the next audio buffer;
- `piper_phonemes(config_path, text)`: piper's own phonemizer (its static espeak-ng) for
  the voice described by that piper config, exactly as `PiperVoice.phonemize` does it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from collections.abc import Callable
from typing import Any

from bridge.media import native_pool, phonemize

_PIPER_VOICES: dict[str, Any] = {}


def _stop_requested(fd: int) -> Callable[[], bool]:
    """While busy, the only frame the pool sends is `stop`; check for it without blocking."""
    stopped = False

    def check() -> bool:
        nonlocal stopped
        if not stopped and select.select([fd], [], [], 0)[0]:
            frame = native_pool.read_frame(fd)
            stopped = frame == (native_pool.STOP,)
        return stopped

    return check


def _piper_phonemes(config_path: str, text: str) -> list[list[str]]:
    """piper's phonemization for one voice config; the ONNX model itself is not loaded."""
    voice = _PIPER_VOICES.get(config_path)
    if voice is None:
        from piper.config import PiperConfig
        from piper.voice import PiperVoice

        with open(config_path, encoding="utf-8") as handle:
            config = PiperConfig.from_dict(json.load(handle))
        voice = PiperVoice(session=None, config=config)  # type: ignore[arg-type]
        _PIPER_VOICES[config_path] = voice
    return voice.phonemize(text)


def _run(op: str, args: tuple[Any, ...], stdin: int) -> Any:
    if op == "espeak_info":
        return phonemize.native_info()
    if op == "espeak_phonemes":
        return phonemize.native_phonemes(*args)
    if op == "espeak_synth":
        return phonemize.native_synth(*args, should_stop=_stop_requested(stdin))
    if op == "piper_phonemes":
        return _piper_phonemes(*args)
    raise ValueError(f"unknown operation {op!r}")


def main() -> None:
    # The bridge handles Ctrl-C for its process group; the worker ends with its stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sys.stdout = sys.stderr  # nothing but frames may reach the pipe
    while True:
        try:
            request = native_pool.read_frame(stdin)
        except EOFError:
            return
        if request == (native_pool.STOP,):
            continue  # a stop that arrived after its call had finished
        op, args = request
        try:
            reply: tuple[str, Any] = ("ok", _run(op, tuple(args), stdin))
        except Exception as exc:  # a clean failure goes back to the caller
            reply = ("err", (type(exc).__name__, str(exc)))
        native_pool.write_frame(stdout, reply)


if __name__ == "__main__":
    main()
    os._exit(0)
