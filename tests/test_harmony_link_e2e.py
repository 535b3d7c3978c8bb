"""Harmony Link plugins against the real bridge: the second listener, over a real WebSocket.

The client is `tests/harmony_link_client.py`, written from the wire notes (JSON text frames,
one socket per entity, a strict four-key decoder). The voice is the embedded piper voice.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bridge.config import parse_config
from tests.conftest import ECHO_CONFIG, start_bridge
from tests.harmony_link_client import plugin

pytestmark = pytest.mark.embedded
LINE = "Hello there, traveller. The stew is hot tonight."


def config(tmp_path: Path, **compat: Any) -> Any:
    mira = {
        "display_name": "Mira",
        "persona": "The innkeeper.",
        "gender": "female",
        "modules": {"llm": "scripted", "tts": "steady_piper", "stt": "none", "vad": "none", "countenance": "tags"},
        "expressions": {"happy": "smile_big"},
    }
    data = {
        **ECHO_CONFIG,
        "modules": {
            **ECHO_CONFIG["modules"],
            "scripted": {"kind": "llm", "provider": "echo", "replies": [f"*waves* [happy] {LINE}"]},
            "steady_piper": {"kind": "tts", "provider": "piper", "noise_scale": 1e-4, "noise_w": 1e-4},
        },
        "characters": {
            **ECHO_CONFIG["characters"],
            "mira": mira,
            # one segment for a whole long line: too long for a single base64 frame
            "orator": {**mira, "segmenter": {"clause_split": False, "max_chars": 2000, "first_min_words": 150, "first_max_words": 200}},
        },
        "compat": {
            "harmony_link": {
                "enabled": True,
                "port": 0,
                "working_dir": str(tmp_path / "harmony-tmp"),
                "entities": {"kaji": {"character": "mira"}, "proj": {"character": "mira", "output_type": "base64"}},
                **compat,
            }
        },
    }
    return parse_config(data, "test")


def wav_seconds(data: bytes) -> tuple[float, int, np.ndarray]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        frames = reader.readframes(reader.getnframes())
        assert reader.getnchannels() == 1 and reader.getsampwidth() == 2
        return reader.getnframes() / reader.getframerate(), reader.getframerate(), np.frombuffer(frames, "<i2")


async def test_init_utterance_speech_files_and_playback_done(tmp_path: Path) -> None:
    async with start_bridge(config(tmp_path)) as running:
        assert running.harmony_link_url is not None
        async with plugin(running.harmony_link_url) as kaji:
            init = await kaji.init("kaji")
            assert (init.event_id, init.status, init.payload) == ("init_entity", "SUCCESS", None)
            assert not [e for e in kaji.received if e.status == "PENDING"]
            await kaji.send("ENVIRONMENT_LOADED", {}, "environment_loaded")
            assert (await kaji.wait_for("ENVIRONMENT_LOADED")).status == "SUCCESS"

            await kaji.send("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hello"}, "utterance_1")
            speeches = []
            while " ".join(s.payload["content"] for s in speeches) != LINE:
                event = await kaji.next(120)
                if event.event_type == "AI_SPEECH":
                    speeches.append(event)
            types = [e.event_type for e in kaji.received]
            assert "AI_ACTION" in types and types.index("AI_ACTION") < types.index("AI_SPEECH")
            action = next(e for e in kaji.received if e.event_type == "AI_ACTION")
            assert action.payload == {"type": "UTTERANCE_NONVERBAL", "content": "waves", "audio_file": ""}
            face = next(e for e in kaji.received if e.event_type == "AI_COUNTENANCE_UPDATE")
            assert face.payload == {"emotional_state": "happy", "facial_expression": "smile_big"}
            status = next(e for e in kaji.received if e.event_type == "AI_STATUS")
            assert set(status.payload) == {"gender", "name", "mood", "behaviour", "persona", "status_message"}
            assert (status.payload["name"], status.payload["gender"], status.payload["mood"]) == ("Mira", "female", "happy")
            assert len(speeches) >= 2, "one AI_SPEECH per sentence, as Harmony Link sends them"
            for speech in speeches:
                assert speech.status == "SUCCESS" and speech.payload["type"] == "UTTERANCE_VERBAL"
                path = Path(speech.payload["audio_file"])
                assert path.is_file() and path.parent == (tmp_path / "harmony-tmp").resolve()
                seconds, rate, samples = wav_seconds(path.read_bytes())
                assert rate == 22050
                # piper speaks at roughly 50-120 ms per character; silence would fail the RMS check
                chars = len(speech.payload["content"])
                assert 0.03 * chars < seconds < 0.2 * chars, (seconds, speech.payload["content"])
                assert float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) > 300

            for speech in speeches:
                await kaji.send("TTS_PLAYBACK_DONE", speech.payload["audio_file"], "playback_done")
            # The plugin's next request is answered after the playback events were handled.
            await kaji.send("CHAT_HISTORY", None, "update_history")
            history = await kaji.wait_for("CHAT_HISTORY")
            assert history.status == "SUCCESS"
            assert history.payload[0] == {"Name": "Player", "Message": "hello"}
            assert history.payload[-1]["Name"] == "Mira" and "stew" in history.payload[-1]["Message"]
            for speech in speeches:
                assert not Path(speech.payload["audio_file"]).exists(), "TTS_PLAYBACK_DONE removes the file"
            assert not [e for e in kaji.received if e.status == "ERROR"]


async def test_the_wav_matches_what_eep1_streams_for_the_same_line(tmp_path: Path, connect) -> None:
    """Same voice, same text: the WAV holds exactly the samples EEP/1 streams in chunks."""
    async with start_bridge(config(tmp_path)) as running:
        async with connect(running, audio_out={"encoding": "pcm_s16le", "sample_rate": 22050, "chunk_ms": 40, "lead_ms": 0}, visemes="none") as client:
            mira = await client.init_entity("mira-1", "mira")
            result = await mira.speak("The stew is hot tonight.")
        streamed = np.concatenate([np.frombuffer(e.payload["audio"], "<i2") for e in result.events if e.type == "ai.speech.audio"])
        async with plugin(running.harmony_link_url) as proj:
            assert (await proj.init("proj")).status == "SUCCESS"
            await proj.send("TTS_GENERATE_SPEECH", {"type": "UTTERANCE_VERBAL", "content": "The stew is hot tonight."}, "tts_1")
            speech = await proj.wait_for("AI_SPEECH", timeout=120)
    assert "audio_file" not in speech.payload and speech.payload["audio_type"] == "wav"
    seconds, rate, samples = wav_seconds(base64.b64decode(speech.payload["audio"]))
    assert rate == 22050
    assert samples.size == streamed.size
    # piper's residual noise (noise_scale 1e-4) differs run to run by a few LSB
    diff = samples.astype(np.float64) - streamed.astype(np.float64)
    assert np.sqrt(np.mean(diff**2)) < 0.02 * np.sqrt(np.mean(streamed.astype(np.float64) ** 2))


async def test_bad_events_get_error_replies_and_the_socket_stays_open(tmp_path: Path) -> None:
    async with start_bridge(config(tmp_path)) as running:
        async with plugin(running.harmony_link_url) as p:
            await p.send("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hi"}, "too_early")
            early = await p.next()
            assert (early.event_id, early.event_type, early.status) == ("too_early", "USER_UTTERANCE", "ERROR")
            assert "INIT_ENTITY" in early.payload["message"]

            await p.send("INIT_ENTITY", {"entity_id": "nobody"}, "init_entity")
            unknown = await p.next()
            assert (unknown.event_type, unknown.status) == ("INIT_ENTITY", "ERROR") and "nobody" in unknown.payload["message"]
            assert (await p.init("kaji")).status == "SUCCESS"

            await p.send_raw("this is not json")
            assert (await p.next()).status == "ERROR"
            await p.send_raw(b'{"event_id": "x", "event_type": "AI_STATUS", "status": "NEW", "payload": null}')
            binary = await p.next()
            assert binary.status == "ERROR" and "text frames" in binary.payload["message"]
            await p.send_raw(json.dumps([1, 2]))
            assert (await p.next()).status == "ERROR"
            await p.send("NO_SUCH_EVENT", {}, "odd")
            odd = await p.next()
            assert (odd.event_id, odd.event_type, odd.status) == ("odd", "NO_SUCH_EVENT", "ERROR")
            await p.send("USER_UTTERANCE", {"type": "UTTERANCE_SHOUTED", "content": "hi"}, "u_bad")
            assert "UTTERANCE_SHOUTED" in (await p.next()).payload["message"]
            await p.send("USER_UTTERANCE", "hello", "u_str")
            assert (await p.next()).status == "ERROR"
            await p.send("TTS_PLAYBACK_DONE", "/etc/passwd", "playback_done")
            refused = await p.next()
            assert refused.status == "ERROR" and Path("/etc/passwd").exists()
            # Extra keys from a plugin are ignored, not fatal.
            await p.send_raw(json.dumps({"event_id": "env", "event_type": "ENVIRONMENT_LOADED", "status": "NEW", "payload": {}, "extra": 1}))
            assert (await p.next()).status == "SUCCESS"
            assert (await p.next()).event_type == "MOVEMENT_V1_REQUEST_ACTIONS"
            # A frame over 1 MiB (plugins may send up to Harmony Link's 8 MB buffer) is answered, not fatal.
            await p.send("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "", "pad": "x" * (1200 * 1024)}, "big")
            assert (await p.next()).status == "ERROR"
            # ...and after all that the socket still drives the entity.
            await p.send("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hello"}, "u_ok")
            assert (await p.wait_for("AI_SPEECH", timeout=120)).status == "SUCCESS"


async def test_base64_speech_too_long_for_one_frame_is_refused_not_sent(tmp_path: Path) -> None:
    long_line = " ".join(["The road north runs past the old mill and the river bend"] * 6) + "."
    async with start_bridge(config(tmp_path, sample_rate=48000, output_type="base64")) as running:
        async with plugin(running.harmony_link_url) as proj:
            assert (await proj.init("orator")).status == "SUCCESS"  # a character's own name maps too
            await proj.send("TTS_GENERATE_SPEECH", long_line, "tts_long")
            first = await proj.wait_for("AI_SPEECH", timeout=180)
            # Every frame passed the plugin's 1 MiB limit (checked in Plugin.next); the too
            # long one went out without audio, followed by an ERROR that says why.
            if first.payload["audio"] == "":
                error = await proj.wait_for("AI_SPEECH", "ERROR", timeout=30)
                assert "output_type" in error.payload["message"]
            else:
                pytest.fail(f"expected a segment too long for one base64 frame at 48 kHz, got {len(first.payload['audio'])} bytes of base64")


async def test_off_by_default_nothing_listens_nothing_imported() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trio\n"
        "from bridge.config import parse_config\n"
        "from bridge.server.app import BridgeApp\n"
        "from bridge.server.serve import serve_bridge\n"
        "async def main():\n"
        "    async with trio.open_nursery() as n:\n"
        "        r = await n.start(serve_bridge, BridgeApp(parse_config({'server': {'history_path': ':memory:'}}, 't')), '127.0.0.1', 0)\n"
        "        print(r.harmony_link is None, 'bridge.server.harmony_link' in sys.modules, 'bridge.compat.harmony_link' in sys.modules)\n"
        "        await r.aclose(); n.cancel_scope.cancel()\n"
        "trio.run(main)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


# ----------------------------------------------------------------------------- speech in

SENTENCE = "Do you have a room for the night?"


def stt_config(tmp_path: Path) -> Any:
    base = config(tmp_path)
    data = {
        **ECHO_CONFIG,
        "modules": {**ECHO_CONFIG["modules"], "steady_piper": {"kind": "tts", "provider": "piper", "noise_scale": 1e-4, "noise_w": 1e-4}},
        "characters": {
            **ECHO_CONFIG["characters"],
            "ear": {"display_name": "Ear", "modules": {"llm": "echo", "tts": "steady_piper", "stt": "whisper", "vad": "silero", "countenance": "none"}},
        },
        "compat": {"harmony_link": {"enabled": True, "port": 0, "working_dir": base.harmony_link.working_dir, "entities": {"proj": {"character": "ear", "output_type": "base64"}}}},
    }
    return parse_config(data, "test")


async def test_stt_pull_mode_return_vnge_style(tmp_path: Path) -> None:
    """VNGE/VTS: the bridge pulls ranges of the plugin's ring buffer; result_mode "return"
    sends the transcript, which the plugin sends back as USER_UTTERANCE; the answer follows."""
    from tests.speech_samples import speech_sample

    ring = speech_sample(SENTENCE).at_rate(44100).astype("<i2").tobytes()
    async with start_bridge(stt_config(tmp_path)) as running:
        async with plugin(running.harmony_link_url) as ear:
            assert (await ear.init("ear")).status == "SUCCESS"
            await ear.send("STT_START_LISTEN", {"auto_vad": True, "result_mode": "return", "channels": 1, "bit_depth": 16, "sample_rate": 44100}, "start_listen")
            pulls = []
            with trio.fail_after(120):
                while True:
                    event = await ear.next(120)
                    if event.event_type == "STT_FETCH_MICROPHONE":
                        assert event.status == "SUCCESS"
                        start, count = event.payload["start_byte"], event.payload["bytes_count"]
                        assert start == sum(len(p) for p in pulls), "ranges follow each other"
                        piece = ring[start : start + count]
                        pulls.append(piece)
                        await ear.send("STT_FETCH_MICROPHONE_RESULT", {"audio_bytes": base64.b64encode(piece).decode(), "channels": 1, "bit_depth": 16, "sample_rate": 44100}, event.event_id)
                    elif event.event_type == "STT_OUTPUT_TEXT":
                        transcript = event
                        break
            types = [e.event_type for e in ear.received]
            assert types.index("STT_SPEECH_STARTED") < types.index("STT_SPEECH_STOPPED") < types.index("STT_OUTPUT_TEXT")
            assert transcript.payload["type"] == "UTTERANCE_VERBAL"
            words = transcript.payload["content"].lower()
            assert "room" in words and "night" in words
            await ear.send("STT_STOP_LISTEN", {}, "stop_listen")
            # What VNGE does with the transcript: add entity_id, send it back as an utterance.
            await ear.send("USER_UTTERANCE", {**transcript.payload, "type": "UTTERANCE_COMBINED", "entity_id": "user"}, "actor_user_VAD_utterance_processed")
            with trio.fail_after(120):
                while (event := await ear.next(120)).event_type != "AI_SPEECH":
                    if event.event_type == "STT_FETCH_MICROPHONE":  # one pull may have been under way
                        await ear.send("STT_FETCH_MICROPHONE_RESULT", {"audio_bytes": "", "channels": 1, "bit_depth": 16, "sample_rate": 44100}, event.event_id)
            assert Path(event.payload["audio_file"]).is_file()
            assert not [e for e in ear.received if e.status == "ERROR"]


async def test_stt_push_mode_process_projectp_style(tmp_path: Path) -> None:
    """ProjectP: STT_START_LISTEN with a null payload, then STT_INPUT_AUDIO pushes; in result_mode
    "process" the bridge answers the speech itself (no STT_OUTPUT_TEXT to echo back)."""
    from tests.speech_samples import speech_sample

    audio = speech_sample(SENTENCE).at_rate(16000).astype("<i2").tobytes()
    async with start_bridge(stt_config(tmp_path)) as running:
        async with plugin(running.harmony_link_url) as proj:
            assert (await proj.init("proj")).status == "SUCCESS"
            await proj.send("STT_START_LISTEN", None, "start_listen")
            step = 16000 * 2 // 10  # 100 ms
            for start in range(0, len(audio), step):
                await proj.send("STT_INPUT_AUDIO", {"AudioBytes": base64.b64encode(audio[start : start + step]).decode()}, "input_audio")
            speech = await proj.wait_for("AI_SPEECH", timeout=120)
            types = [e.event_type for e in proj.received]
            assert "STT_SPEECH_STARTED" in types and "STT_SPEECH_STOPPED" in types and "STT_OUTPUT_TEXT" not in types
            assert "night" in speech.payload["content"].lower()  # the echo LLM answers with what it heard
            assert speech.payload["audio"]
            await proj.send("STT_STOP_LISTEN", None, "stop_listen")
            await proj.send("STT_STOP_LISTEN", None, "stop_again")
            assert (await proj.wait_for("STT_STOP_LISTEN")).status == "ERROR"
            # Not listening: STT_INPUT_AUDIO is a one-shot recording, answered as STT_OUTPUT_TEXT.
            await proj.send("STT_INPUT_AUDIO", {"audio_bytes": base64.b64encode(audio).decode(), "sample_rate": 16000, "channels": 1}, "one_shot")
            text = await proj.wait_for("STT_OUTPUT_TEXT", timeout=120)
            assert text.event_id == "one_shot" and "room" in text.payload["content"].lower()


# ----------------------------------------------------------------------------- Movement V1


async def test_movement_v1_register_scene_and_perform(tmp_path: Path) -> None:
    data = {
        **ECHO_CONFIG,
        "modules": {
            **ECHO_CONFIG["modules"],
            "mover": {"kind": "llm", "provider": "echo", "replies": ['[[move {"target": "Chair"}]] On my way.']},
        },
        "characters": {
            **ECHO_CONFIG["characters"],
            # scene_max_age_s: each turn asks for a fresh scene first (MOVEMENT_V1_REQUEST_SCENE_DATA)
            "kaji": {"display_name": "Kaji", "scene_max_age_s": 0.001, "modules": {"llm": "mover", "tts": "none", "stt": "none", "vad": "none", "countenance": "none"}},
        },
        "compat": {"harmony_link": {"enabled": True, "port": 0, "working_dir": str(tmp_path)}},
    }
    async with start_bridge(parse_config(data, "test")) as running:
        async with plugin(running.harmony_link_url) as kaji:
            assert (await kaji.init("kaji")).status == "SUCCESS"
            await kaji.send("ENVIRONMENT_LOADED", {}, "environment_loaded")
            ask = await kaji.wait_for("MOVEMENT_V1_REQUEST_ACTIONS")
            assert ask.status == "SUCCESS"
            actions = [{"name": "move", "description": "normal walking", "examples": ["{{character}} walks over to {{object}}"], "confirmations": [], "rejections": []}]
            await kaji.send("MOVEMENT_V1_REGISTER_ACTIONS", {"actions": actions}, ask.event_id)
            await kaji.send("MOVEMENT_V1_REGISTER_ACTION", {"name": "sit", "description": "sit down on something"}, "register_sit")
            await kaji.send("MOVEMENT_V1_REGISTER_ACTIONS", "not a list", "bad_register")
            assert (await kaji.wait_for("MOVEMENT_V1_REGISTER_ACTIONS")).status == "ERROR"
            await kaji.send("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "Come here."}, "utt")
            request = await kaji.wait_for("MOVEMENT_V1_REQUEST_SCENE_DATA")
            scene = {
                "characters": [{"name": "kaji", "position": [0, 0, 0], "orientation": [0, 90, 0], "current_action": "idle"}],
                "objects": [{"name": "Chair", "position": [3, 0, 1], "orientation": [0, 0, 0]}],
            }
            await kaji.send("MOVEMENT_V1_UPDATE_SCENE_DATA", scene, request.event_id)
            perform = await kaji.wait_for("MOVEMENT_V1_PERFORM_ACTIONS", timeout=60)
            assert perform.status == "SUCCESS"
            assert perform.payload == {"actions": [{"name": "move", "target": "Chair", "args": {"target": "Chair"}}]}
            speech = await kaji.wait_for("AI_SPEECH", timeout=60)  # no voice: the text, no audio
            await kaji.send("CHAT_HISTORY", None, "update_history")
            history = await kaji.wait_for("CHAT_HISTORY")
    assert speech.payload["content"] == "On my way."
    # The action went into memory with its result, as for EEP/1 entities.
    assert any("move" in row["Message"] for row in history.payload)
    assert not [e for e in kaji.received if e.status == "ERROR" and e.event_type != "MOVEMENT_V1_REGISTER_ACTIONS"]


# ----------------------------------------------------------------------------- HTTP fallback


async def test_http_fallback_round_trip_on_the_same_port(tmp_path: Path) -> None:
    """VNGE without WebSockets: POST events with Harmony-Session-Id / Harmony-Result-Port to the
    listener's port; results come back as POSTs to the plugin's own server with the session id."""
    import httpx

    from tests.fakes.http_server import serve_http

    results: trio.MemorySendChannel[Any]
    results, inbox = trio.open_memory_channel[Any](100)

    async def result_server(req: Any, res: Any) -> None:
        await res.send(200, b"")
        results.send_nowait((req.headers.get("harmony-session-id"), req.json()))

    async def next_result(event_type: str) -> tuple[str, dict[str, Any]]:
        with trio.fail_after(120):
            while True:
                session, event = await inbox.receive()
                assert list(event) == ["event_id", "event_type", "status", "payload"]
                if event["event_type"] == event_type:
                    return session, event

    async with start_bridge(config(tmp_path)) as running, serve_http(result_server) as plugin_server:
        base = running.harmony_link_url.replace("ws://", "http://")
        headers = {"Accept": "application/json", "Content-Type": "application/json", "Harmony-Result-Port": str(plugin_server.port)}
        async with httpx.AsyncClient(timeout=30) as http:
            init = {"event_id": "init_entity", "event_type": "INIT_ENTITY", "status": "NEW", "payload": {"entity_id": "kaji"}}
            first = await http.post(base, json=init, headers={**headers, "Harmony-Session-Id": ""})
            assert first.status_code == 200
            session = first.headers["Harmony-Session-Id"]
            assert session
            got_session, reply = await next_result("INIT_ENTITY")
            assert (got_session, reply["status"]) == (session, "SUCCESS")

            utterance = {"event_id": "u1", "event_type": "USER_UTTERANCE", "status": "NEW", "payload": {"type": "UTTERANCE_VERBAL", "content": "hello"}}
            again = await http.post(base, json=utterance, headers={**headers, "Harmony-Session-Id": session})
            assert again.status_code == 200 and again.headers["Harmony-Session-Id"] == session
            got_session, speech = await next_result("AI_SPEECH")
            assert got_session == session and Path(speech["payload"]["audio_file"]).is_file()

            bad = await http.post(base, content=b"not json", headers={**headers, "Harmony-Session-Id": session})
            assert bad.status_code == 200
            assert (await next_result("ERROR"))[1]["status"] == "ERROR"
            no_port = await http.post(base, json=init, headers={"Harmony-Session-Id": ""})
            assert no_port.status_code == 400 and "Harmony-Result-Port" in no_port.text
        # WebSocket plugins still work on the same port.
        async with plugin(running.harmony_link_url) as kaji:
            assert (await kaji.init("kaji")).status == "SUCCESS"


async def test_one_socket_per_entity_the_players_too(tmp_path: Path) -> None:
    """VNGE/VTS open one socket per entity, the player's ("user") included: each is its own
    entity, and one entity's speech goes to its own socket only."""
    data = config(tmp_path)
    from dataclasses import replace

    from bridge.config import HarmonyLinkEntity

    settings = replace(data.harmony_link, entities={**data.harmony_link.entities, "user": HarmonyLinkEntity("ava")})
    async with start_bridge(replace(data, harmony_link=settings)) as running:
        async with plugin(running.harmony_link_url) as kaji, plugin(running.harmony_link_url) as user:
            assert (await kaji.init("kaji")).status == "SUCCESS"
            assert (await user.init("user")).status == "SUCCESS"
            await kaji.send("USER_UTTERANCE", {"type": "UTTERANCE_COMBINED", "content": "hello", "entity_id": "user"}, "actor_user_VAD_utterance_processed")
            speech = await kaji.wait_for("AI_SPEECH", timeout=120)
            await user.send("CHAT_HISTORY", None, "update_history")
            history = await user.wait_for("CHAT_HISTORY")
    assert speech.status == "SUCCESS"
    assert history.payload == [] and [e.event_type for e in user.received] == ["INIT_ENTITY", "CHAT_HISTORY"]
