"""Config errors say what and where, before READY, with exit status 2 and no traceback.

Through the real CLI (`entity-bridge serve` in a subprocess) on files in a fresh temporary
directory: unknown keys anywhere (with a "did you mean"), wrong types, a module a character
names but nobody defined, a provider that does not exist, a non-UTF-8 file, a module that
refuses its options at construction, and a history file that cannot be opened.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.config import load_config

ROOT = Path(__file__).resolve().parents[1]

GOOD = textwrap.dedent(
    """\
    [server]
    history_path = ":memory:"

    [modules.scripted]
    kind = "llm"
    provider = "echo"
    replies = ["Hello."]

    [characters.ava]
    display_name = "Ava"
    modules = { llm = "scripted", tts = "none", stt = "none", vad = "none", countenance = "none" }
    """
)


def serve(tmp_path: Path, text: str | bytes) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "bridge.toml"
    if isinstance(text, bytes):
        cfg.write_bytes(text)
    else:
        cfg.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )


CASES = [
    pytest.param(GOOD.replace('history_path = ":memory:"', 'history_path = ":memory:"\ntokne = "s3cret"'),
                 ["bridge.toml:3:", "[server]", "`tokne`", "did you mean `token`?"], id="server-typo"),
    pytest.param(GOOD + '\n[limitz]\nmax_entities = 3\n', ["bridge.toml:13:", "`limitz`", "did you mean `limits`?"], id="top-level-typo"),
    pytest.param(GOOD + "\n[limits]\nmax_entitees = 3\n", ["[limits] `max_entitees`", "did you mean `max_entities`?"], id="limits-typo"),
    pytest.param(GOOD.replace('replies = ["Hello."]', 'replies = ["Hello."]\nrepleis = ["x"]'),
                 ["bridge.toml:8:", "[modules.scripted] `repleis`", "did you mean `replies`?"], id="module-option-typo"),
    pytest.param(GOOD + '\n[modules.gpt]\nkind = "llm"\nprovider = "openai"\napi_kye_env = "K"\n',
                 ["`api_kye_env`", "did you mean `api_key_env`?"], id="secret-option-typo"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\npersonna = "x"'),
                 ["bridge.toml:11:", "[characters.ava] `personna`", "did you mean `persona`?"], id="character-typo"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nsegmenter = { max_char = 80 }'),
                 ["[characters.ava.segmenter] `max_char`", "did you mean `max_chars`?"], id="segmenter-typo"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nend_of_turn = "smart"'),
                 ["[characters.ava] `end_of_turn`", 'must be "adaptive" or "fixed"'], id="end-of-turn-value"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nend_of_turn_complete = 200'),
                 ["`end_of_turn_complete`", "did you mean `end_of_turn_complete_ms`?"], id="end-of-turn-typo"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\npartial_interval_ms = 20'),
                 ["`partial_interval_ms`", "must be an integer of milliseconds >= 100, or 0"], id="partial-interval-too-small"),
    pytest.param(GOOD.replace('[server]', '[server]\nport = "8765"'), ["[server] `port`", "must be an integer"], id="wrong-type-port"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\ntoken_budget = "lots"'),
                 ["[characters.ava] `token_budget`", "must be a positive integer", "a string 'lots'"], id="wrong-type-option"),
    pytest.param(GOOD + '\n[modules.gpt]\nkind = "llm"\nprovider = "openai"\nbase_url = "http://127.0.0.1:1/v1"\ntimeout = "30s"\n',
                 ["bridge.toml:17:", "[modules.gpt] `timeout`", "must be a number of seconds > 0, got a string '30s'"], id="wrong-type-module-option"),
    pytest.param(GOOD.replace('display_name = "Ava"', "display_name = 7"), ["`display_name`", "must be a string, got an integer"], id="wrong-type-name"),
    pytest.param(GOOD.replace('llm = "scripted"', 'llm = "scriptd"'),
                 ["[characters.ava] `modules`", "`scriptd`", "not a configured module", "did you mean `scripted`?", "define it under [modules.scriptd]"],
                 id="module-not-defined"),
    pytest.param(GOOD.replace('provider = "echo"', 'provider = "openia"'),
                 ["bridge.toml:6:", "no llm provider `openia`", "did you mean `openai`?", "characterai, echo, kajiwoto, kindroid, local, openai, textgen"],
                 id="provider-does-not-exist"),
    pytest.param(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nexpressions = { hapy = "smile_big" }'),
                 ["bridge.toml:11:", "[characters.ava.expressions] `hapy`", "unknown emotion", "did you mean `happy`?"], id="expression-emotion-typo"),
    pytest.param(GOOD.replace('kind = "llm"', 'knd = "llm"'),
                 ["bridge.toml:5:", "[modules.scripted] `knd`", "did you mean `kind`?"], id="module-kind-typo"),
    pytest.param(GOOD + '\n[modules.brain]\nkind = "llm"\nprovider = "local"\nno_echo = "yes"\n',
                 ["bridge.toml:13: [modules.brain]:", "module 'brain'", "`no_echo` must be true or false"], id="local-no-echo-type"),
    pytest.param(GOOD.replace('replies = ["Hello."]', 'replies = "Hello."'),
                 ["bridge.toml:4: [modules.scripted]:", "`replies` must be a list of strings"], id="wrong-type-provider-option"),
    pytest.param(GOOD.replace('replies = ["Hello."]', 'replies = ["Hello."]\nfirst_token_ms = "soon"'),
                 ["bridge.toml:4: [modules.scripted]:", "module 'scripted'", "refused its options"], id="module-refuses-its-options"),
    pytest.param(GOOD + '\n[modules.gpt]\nkind = "llm"\nprovider = "openai"\napi_key_env = "ENTITY_BRIDGE_TEST_UNSET_KEY"\n',
                 ["module 'gpt'", "ENTITY_BRIDGE_TEST_UNSET_KEY"], id="module-missing-its-key"),
    pytest.param(GOOD.replace('history_path = ":memory:"', 'history_path = "not-a-db.txt"'),
                 ["history_path", "not a usable chat history database"], id="history-unusable"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needles"), CASES)
def test_config_error_says_what_and_where_before_ready(tmp_path: Path, text: str, needles: list[str]) -> None:
    (tmp_path / "not-a-db.txt").write_text("this is a text file, not SQLite\n" * 100)
    run = serve(tmp_path, text)
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "READY" not in run.stdout
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("entity-bridge: config error: "), run.stderr
    for needle in needles:
        assert needle in run.stderr, f"{needle!r} not in {run.stderr!r}"


#: The cases that are wrong in the file itself; `check` stops at them before trying any module.
FILE_CASES = [case for case in CASES if case.id not in ("module-refuses-its-options", "module-missing-its-key", "history-unusable", "local-no-echo-type", "wrong-type-provider-option")]


@pytest.mark.parametrize(("text", "needles"), FILE_CASES)
def test_check_reports_the_same_config_errors(tmp_path: Path, text: str, needles: list[str]) -> None:
    """`entity-bridge check` (finding ./bridge.toml by itself) says the same, with exit status 2."""
    (tmp_path / "bridge.toml").write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "check"], capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL
    )
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith("entity-bridge: config error: "), run.stderr
    for needle in needles:
        assert needle in run.stderr, f"{needle!r} not in {run.stderr!r}"


def test_the_options_first_hour_added_are_known(tmp_path: Path) -> None:
    """What `init` writes for the embedded brain, and the local module's and the prompt's own
    options, load (they were refused once the config check came in)."""
    cfg = tmp_path / "bridge.toml"
    text = GOOD + textwrap.dedent(
        """
        [modules.local]
        kind = "llm"
        provider = "local"
        model = "smollm2-135m"
        max_sentences = 2
        repeat_penalty = 1.2
        no_echo = true
        seed = 7

        [characters.mira]
        display_name = "Mira"
        prompt_style = "compact"
        modules = { llm = "local", tts = "none", stt = "none", vad = "none", countenance = "none" }
        """
    )
    cfg.write_text(text)
    config = load_config(cfg)
    assert config.modules["local"].options["model"] == "smollm2-135m"
    assert config.characters["mira"].options["prompt_style"] == "compact"


def test_non_utf8_config_is_a_clean_error(tmp_path: Path) -> None:
    run = serve(tmp_path, GOOD.encode() + b'\n# caf\xe9 in Latin-1\n')
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert "bridge.toml:13: not UTF-8" in run.stderr, run.stderr


def test_good_config_still_starts(tmp_path: Path) -> None:
    """The checks refuse mistakes, not working files: GOOD reaches READY (then stdin EOF ends it)."""
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(GOOD)
    run = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "serve", "--config", str(cfg), "--port", "0", "--exit-on-stdin-eof"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("READY ws://127.0.0.1:")


def test_history_limit_zero_means_no_history_and_is_accepted(tmp_path: Path) -> None:
    """`history_limit = 0` (the benches' characters: no history) is valid; a negative one is not."""
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nhistory_limit = 0'))
    assert load_config(cfg).characters["ava"].options["history_limit"] == 0
    run = serve(tmp_path, GOOD.replace('display_name = "Ava"', 'display_name = "Ava"\nhistory_limit = -1'))
    assert run.returncode == 2 and "`history_limit`" in run.stderr, run.stderr


def test_example_config_and_module_docs_use_only_known_options() -> None:
    """Every option the example config sets is in the provider table (no stale names)."""
    from bridge.providers.options import OPTIONS

    config = load_config(ROOT / "bridge.example.toml")
    for spec in config.modules.values():
        assert set(spec.options) <= OPTIONS[(spec.kind, spec.provider)]


async def test_stt_module_that_refuses_its_config_answers_instead_of_dropping_the_connection(connect) -> None:
    """The test left open last time: `stt.transcribe` on a module whose construction raises
    ConfigError (here: its API key variable is unset) killed the connection with 1011, and a
    client waiting for its reply waited on. Bridges started from the CLI now refuse such a
    config before READY; a bridge started in-process (the test server, an embedding app)
    answers `backend_unavailable` and keeps the connection."""
    import trio

    from bridge.config import parse_config
    from tests.conftest import ECHO_CONFIG, start_bridge

    data = {
        **ECHO_CONFIG,
        "modules": {**ECHO_CONFIG["modules"], "ear": {"kind": "stt", "provider": "openai", "api_key_env": "ENTITY_BRIDGE_TEST_UNSET_KEY"}},
        "characters": {**ECHO_CONFIG["characters"], "c": {"modules": {"llm": "echo", "tts": "none", "stt": "ear", "vad": "none", "countenance": "none"}}},
    }
    async with start_bridge(parse_config(data, "test")) as running:
        async with connect(running) as client:
            await client.init_entity("e", "c")
            ava = await client.init_entity("a", "ava")
            with trio.fail_after(20):
                reply = await client.request(
                    "stt.transcribe", {"audio": b"\0\0" * 1600, "format": "pcm_s16le", "sample_rate": 16000}, entity="e", check=False
                )
            assert reply.status == "error" and reply.payload["code"] == "backend_unavailable"
            assert "ENTITY_BRIDGE_TEST_UNSET_KEY" in reply.payload["message"]
            assert (await ava.say("still here?")).payload["reply"] == "You said: still here?"
