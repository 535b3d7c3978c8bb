"""Issue 11 item 1 over the real CLI: inputs that crashed libespeak-ng inside the bridge.

Before native synthesis moved into worker processes, each of these killed the whole
`entity-bridge` process (and every client with it): an inline character with the voice
"en-us+" and ~40 letters (abort on its first line), and `tts.say` of "a." * 150 on the
default piper voice (segfault). Now the first is a `backend_error` for that request, the
second is spoken, and a hung or killed worker is replaced while other clients carry on.
"""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import pytest
import trio

from entity_bridge_sdk import BridgeClient
from tests.test_cli import _start

pytestmark = pytest.mark.embedded

CONFIG = textwrap.dedent(
    """
    [server]
    history_path = ":memory:"

    [characters.robot]
    modules = { llm = "echo", tts = "espeak", stt = "none", vad = "none", countenance = "none" }

    [characters.joe]
    modules = { llm = "echo", tts = "piper", stt = "none", vad = "none", countenance = "none" }

    [characters.ava]
    modules = { llm = "echo", tts = "none", stt = "none", vad = "none", countenance = "none" }
    """
)
UNPACED = {"sample_rate": 16000, "chunk_ms": 100, "lead_ms": 10000}  # no waiting for real time


def native_workers(pid: int) -> list[int]:
    """The bridge's native worker processes (its children running native_worker)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"bridge.media.native_worker" in cmdline:
                found.append(int(child))
    return found


async def test_crashing_inputs_cost_one_request_and_nobody_else_notices(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path, config=CONFIG)
    try:
        async with BridgeClient.connect(url, audio_out=UNPACED) as attacker, BridgeClient.connect(url) as bystander:
            ava = await bystander.init_entity("ava-1", "ava")
            hostile = {"name": "hostile", "voice": "en-us+" + "abcdefghij" * 4,
                       "modules": {"llm": "echo", "tts": "espeak", "stt": "none", "vad": "none", "countenance": "none"}}
            npc = await attacker.init_entity("npc-1", hostile)
            result = await npc.speak("Hello there.", check=False, timeout=60)
            assert result.reply.status == "error" and result.reply.payload["code"] == "backend_error"
            assert "variant" in result.reply.payload["message"]
            assert (await ava.say("still there?")).payload["reply"] == "You said: still there?"

            joe = await attacker.init_entity("joe-1", "joe")
            spoken = await joe.speak("a." * 150, timeout=120)
            assert spoken.reply.status == "success" and len(spoken.of_type("ai.speech.audio")) > 10
            assert (await ava.say("and now?")).payload["reply"] == "You said: and now?"
            assert proc.poll() is None
    finally:
        proc.kill()
        await proc.wait()


async def test_a_hung_or_killed_worker_is_replaced(tmp_path: Path) -> None:
    proc, url = await _start(tmp_path, config=CONFIG)
    try:
        async with BridgeClient.connect(url, audio_out=UNPACED) as client, BridgeClient.connect(url) as bystander:
            robot = await client.init_entity("robot-1", "robot")
            ava = await bystander.init_entity("ava-1", "ava")
            assert (await robot.speak("Ready.", timeout=60)).reply.status == "success"
            workers = native_workers(proc.pid)
            assert len(workers) == 2  # started and warmed when the espeak module was built
            for pid in workers:
                os.kill(pid, signal.SIGSTOP)  # a worker that never answers
            async with trio.open_nursery() as nursery:
                hung: list = []

                async def speak_into_the_hang() -> None:
                    hung.append(await robot.speak("Nobody answers this.", check=False, timeout=60))

                nursery.start_soon(speak_into_the_hang)
                # Meanwhile other clients are served as usual.
                assert (await ava.say("busy?")).payload["reply"] == "You said: busy?"
            assert hung[0].reply.status == "error" and hung[0].reply.payload["code"] == "backend_error"
            assert "did not answer" in hung[0].reply.payload["message"]
            left = [pid for pid in workers if pid in native_workers(proc.pid)]
            assert len(left) == 1  # the hung one was killed and reaped
            os.kill(left[0], signal.SIGKILL)  # the idle one dies too
            os.kill(left[0], signal.SIGCONT)
            with trio.fail_after(10):  # dead (a zombie until the bridge reaps it)
                while Path(f"/proc/{left[0]}/stat").read_text().split(") ", 1)[1][0] != "Z":
                    await trio.sleep(0.01)
            again = await robot.speak("Back again.", timeout=60)
            assert again.reply.status == "success" and again.of_type("ai.speech.audio")
            assert not set(native_workers(proc.pid)) & set(workers)  # both were replaced
            assert proc.poll() is None
    finally:
        proc.kill()
        await proc.wait()
