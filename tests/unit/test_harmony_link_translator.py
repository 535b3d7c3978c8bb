"""The Harmony Link translator, event by event, both directions (sans-I/O: no sockets)."""

from __future__ import annotations

import base64
import io
import json
import wave
from pathlib import Path

import numpy as np
import pytest

from bridge.compat.harmony_link import (
    Answer,
    Listen,
    MicrophoneData,
    DeleteFile,
    HarmonyLinkError,
    HLEvent,
    InitEntity,
    Send,
    Submit,
    Translator,
    error_event,
    parse_event,
)
from bridge.config import parse_config
from bridge.protocol.envelope import Event


def make(tmp_path: Path, output_type: str = "file") -> Translator:
    config = parse_config(
        {
            "characters": {"mira": {"display_name": "Mira", "persona": "Innkeeper.", "gender": "female"}},
            "compat": {"harmony_link": {"enabled": True, "working_dir": str(tmp_path), "output_type": output_type, "entities": {"kaji": "mira"}}},
        },
        "test",
    )
    return Translator(config.harmony_link, config.characters)


def ev(event_type: str, payload: object = None, event_id: str = "e1") -> HLEvent:
    return HLEvent(event_id, event_type, "NEW", payload)


def ready(tmp_path: Path, output_type: str = "file") -> Translator:
    t = make(tmp_path, output_type)
    [step] = t.receive(ev("INIT_ENTITY", {"entity_id": "kaji"}, "init_entity"))
    assert isinstance(step, InitEntity) and step.character.name == "mira"
    t.entity_started("kaji")
    return t


def test_envelope_always_has_exactly_four_keys() -> None:
    wire = json.loads(HLEvent("a", "AI_STATUS", "SUCCESS", {"x": 1}).to_text())
    assert list(wire) == ["event_id", "event_type", "status", "payload"]
    assert list(json.loads(error_event(HarmonyLinkError("bad", "a", "X")).to_text())) == ["event_id", "event_type", "status", "payload"]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{}", "text frames"),
        ("nope", "not JSON"),
        ("[1]", "JSON object"),
        ('{"event_type": "X"}', "event_id"),
        ('{"event_id": "a", "event_type": ""}', "event_type"),
        ('{"event_id": "a", "event_type": "X", "status": 3}', "status"),
    ],
)
def test_bad_frames_are_refused_with_a_readable_message(data: str | bytes, needle: str) -> None:
    with pytest.raises(HarmonyLinkError, match=needle):
        parse_event(data)


def test_extra_keys_in_and_defaults() -> None:
    event = parse_event('{"event_id": "a", "event_type": "CHAT_HISTORY", "extra": 1}')
    assert (event.status, event.payload) == ("NEW", None)


def test_init_entity_success_only_and_one_entity_per_socket(tmp_path: Path) -> None:
    t = ready(tmp_path)
    assert t.init_succeeded("init_entity") == HLEvent("init_entity", "INIT_ENTITY", "SUCCESS", None)
    [again] = t.receive(ev("INIT_ENTITY", {"entity_id": "kaji"}))
    assert isinstance(again, Send) and again.event.status == "SUCCESS"
    with pytest.raises(HarmonyLinkError, match="one socket per entity"):
        t.receive(ev("INIT_ENTITY", {"entity_id": "other"}))
    with pytest.raises(HarmonyLinkError, match="entity_id"):
        make(tmp_path).receive(ev("INIT_ENTITY", None))
    with pytest.raises(HarmonyLinkError, match="no character"):
        make(tmp_path).receive(ev("INIT_ENTITY", {"entity_id": "ghost"}))
    # a character's own name maps without an entities entry; the docs' character_id is read too
    assert isinstance(make(tmp_path).receive(ev("INIT_ENTITY", {"character_id": "mira"}))[0], InitEntity)


def test_nothing_before_init(tmp_path: Path) -> None:
    with pytest.raises(HarmonyLinkError, match="INIT_ENTITY"):
        make(tmp_path).receive(ev("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hi"}))


@pytest.mark.parametrize(
    ("hl", "ours"),
    [("UTTERANCE_VERBAL", "verbal"), ("UTTERANCE_NONVERBAL", "nonverbal"), ("UTTERANCE_COMBINED", "combined"), ("UTTERANCE_NONVERBAL_DELAYED", "nonverbal_delayed")],
)
def test_user_utterance_all_four_types(tmp_path: Path, hl: str, ours: str) -> None:
    t = ready(tmp_path)
    [step] = t.receive(ev("USER_UTTERANCE", {"type": hl, "content": "waves", "entity_id": "user"}))
    assert isinstance(step, Submit)
    assert (step.request.type, step.request.entity, step.request.payload) == ("user.utterance", "kaji", {"kind": ours, "text": "waves"})


def test_user_utterance_bad_shapes(tmp_path: Path) -> None:
    t = ready(tmp_path)
    for payload in ("hi", {"type": "UTTERANCE_X", "content": "hi"}, {"type": "UTTERANCE_VERBAL", "content": "  "}, {"type": "UTTERANCE_VERBAL"}):
        with pytest.raises(HarmonyLinkError):
            t.receive(ev("USER_UTTERANCE", payload))


def test_tts_generate_speech_object_or_string(tmp_path: Path) -> None:
    t = ready(tmp_path)
    for payload in ({"type": "UTTERANCE_VERBAL", "content": "Halt!"}, "Halt!"):
        [step] = t.receive(ev("TTS_GENERATE_SPEECH", payload))
        assert isinstance(step, Submit) and (step.request.type, step.request.payload) == ("tts.say", {"text": "Halt!"})


def test_environment_loaded_and_unknown(tmp_path: Path) -> None:
    t = ready(tmp_path)
    step, ask = t.receive(ev("ENVIRONMENT_LOADED", {}, "environment_loaded"))
    assert isinstance(step, Send) and step.event == HLEvent("environment_loaded", "ENVIRONMENT_LOADED", "SUCCESS", None)
    assert isinstance(ask, Send) and (ask.event.event_type, ask.event.status) == ("MOVEMENT_V1_REQUEST_ACTIONS", "SUCCESS")
    with pytest.raises(HarmonyLinkError, match="AI_UTTERANCE"):
        t.receive(ev("AI_UTTERANCE", {}))


def speak(t: Translator, speech: str = "b1.1", text: str = "Hello.", rate: int = 22050, n: int = 2205) -> list[Send]:
    tone = (np.sin(np.arange(n) * 0.1) * 8000).astype("<i2")
    assert t.outbound(Event("ai.speech.start", "o1", {"speech": speech, "text": text, "sample_rate": rate, "encoding": "pcm_s16le"}, entity="kaji", ref="h1")) == []
    half = n // 2
    for part in (tone[:half], tone[half:]):
        assert t.outbound(Event("ai.speech.audio", "o2", {"speech": speech, "seq": 0, "t": 0, "audio": part.tobytes()}, entity="kaji", ref="h1")) == []
    return t.outbound(Event("ai.speech.end", "o3", {"speech": speech, "duration_ms": 100}, entity="kaji", ref="h1"))


def test_ai_speech_as_a_wav_file_then_playback_done_deletes_it(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [sent] = speak(t)
    assert sent.event.event_type == "AI_SPEECH" and sent.event.status == "SUCCESS"
    assert sent.write is not None and str(sent.write[0]) == sent.event.payload["audio_file"]
    with wave.open(io.BytesIO(sent.write[1])) as reader:
        assert (reader.getframerate(), reader.getnframes()) == (22050, 2205)
    assert sent.event.payload["content"] == "Hello." and sent.event.payload["type"] == "UTTERANCE_VERBAL"
    steps = t.receive(ev("TTS_PLAYBACK_DONE", sent.event.payload["audio_file"], "playback_done"))
    assert isinstance(steps[0], DeleteFile) and str(steps[0].path) == sent.event.payload["audio_file"]
    assert isinstance(steps[1], Submit) and steps[1].request.payload == {"speech": "b1.1"}
    with pytest.raises(HarmonyLinkError, match="no audio_file of ours"):  # a second time, or a foreign path
        t.receive(ev("TTS_PLAYBACK_DONE", sent.event.payload["audio_file"]))


def test_ai_speech_as_base64(tmp_path: Path) -> None:
    t = ready(tmp_path, "base64")
    [sent] = speak(t)
    assert sent.write is None and "audio_file" not in sent.event.payload
    with wave.open(io.BytesIO(base64.b64decode(sent.event.payload["audio"]))) as reader:
        assert reader.getnframes() == 2205


def test_base64_over_one_mebibyte_is_not_sent(tmp_path: Path) -> None:
    t = ready(tmp_path, "base64")
    sent = speak(t, rate=48000, n=48000 * 9)  # 9 s: 864 kB of PCM, 1.15 MB as base64
    assert [s.event.status for s in sent] == ["SUCCESS", "ERROR"]
    assert all(len(s.event.to_text().encode()) < 1024 * 1024 for s in sent)
    assert sent[0].event.payload["audio"] == ""


def test_interrupted_speech_is_dropped(tmp_path: Path) -> None:
    t = ready(tmp_path)
    t.outbound(Event("ai.speech.start", "o1", {"speech": "s", "text": "Hi.", "sample_rate": 22050}, entity="kaji"))
    assert t.outbound(Event("ai.speech.interrupted", "o2", {"speech": "s", "played_ms": 0, "heard_text": ""}, entity="kaji")) == []
    assert t.outbound(Event("ai.speech.end", "o3", {"speech": "s", "duration_ms": 0}, entity="kaji")) == []


@pytest.mark.parametrize("output_type", ["file", "base64"])
def test_ai_action_carries_the_audio_key_the_plugins_read(tmp_path: Path, output_type: str) -> None:
    t = ready(tmp_path, output_type)
    [sent] = t.outbound(Event("ai.action", "o1", {"text": "waves", "kind": "nonverbal"}, entity="kaji"))
    key = "audio_file" if output_type == "file" else "audio"
    assert sent.event.event_type == "AI_ACTION" and sent.event.payload == {"type": "UTTERANCE_NONVERBAL", "content": "waves", key: ""}


def test_status_and_countenance(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [status] = t.outbound(Event("ai.status", "o1", {"mood": "happy", "behaviour": "speaking"}, entity="kaji"))
    assert status.event.payload == {"gender": "female", "name": "Mira", "mood": "happy", "behaviour": "speaking", "persona": "Innkeeper.", "status_message": "speaking"}
    [face] = t.outbound(Event("ai.countenance", "o2", {"emotion": "sad", "intensity": 0.5, "expression": "frown", "speech": "s", "t": 0}, entity="kaji"))
    assert (face.event.event_type, face.event.payload) == ("AI_COUNTENANCE_UPDATE", {"emotional_state": "sad", "facial_expression": "frown"})


def test_a_quota_queue_notice_is_not_an_ai_status_of_harmony_link(tmp_path: Path) -> None:
    """A queue-only ai.status would reach the plugin as AI_STATUS with a made-up mood."""
    t = ready(tmp_path)
    queue = {"state": "waiting", "module": "brain", "kind": "llm", "ahead": 1}
    assert t.outbound(Event("ai.status", "o1", {"queue": queue}, entity="kaji", ref="u1")) == []


def test_replies_pending_success_and_error_and_chat_history(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [submit] = t.receive(ev("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hi"}, "utt_7"))
    assert isinstance(submit, Submit)
    assert t.outbound(submit.request.reply("pending")) == []
    [error] = t.outbound(submit.request.error_reply("backend_error", "openai: HTTP 500"))
    assert error.event == HLEvent("utt_7", "USER_UTTERANCE", "ERROR", {"message": "openai: HTTP 500"})
    [history] = t.receive(ev("CHAT_HISTORY", None, "update_history"))
    assert isinstance(history, Submit)
    messages = [{"speaker": "Player", "text": "hi", "kind": "verbal", "at": 1}, {"speaker": "mira", "text": "Hello.", "kind": "verbal", "at": 2}]
    [sent] = t.outbound(history.request.reply("success", {"messages": messages}))
    assert sent.event == HLEvent("update_history", "CHAT_HISTORY", "SUCCESS", [{"Name": "Player", "Message": "hi"}, {"Name": "Mira", "Message": "Hello."}])
    # a success of a turn sends nothing (the speech already went); an unknown reply neither
    [turn] = t.receive(ev("TTS_GENERATE_SPEECH", "Hi."))
    assert isinstance(turn, Submit) and t.outbound(turn.request.reply("success", {"duration_ms": 3})) == []


def test_leftover_files_are_handed_back_for_removal(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [sent] = speak(t)
    assert t.leftover_files() == [Path(sent.event.payload["audio_file"])]
    assert t.leftover_files() == []


def test_stt_start_listen_pull_push_and_bad_formats(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [listen] = t.receive(ev("STT_START_LISTEN", {"auto_vad": True, "result_mode": "return", "channels": 2, "bit_depth": 16, "sample_rate": 44100}))
    assert isinstance(listen, Listen) and listen.request.payload == {"mode": "vad"}
    assert (listen.sample_rate, listen.respond, listen.pull_bytes) == (44100, False, 44100 * 2 * 2 // 5)
    fetch = t.fetch_request(0, 100)
    assert (fetch.event_type, fetch.status, fetch.payload) == ("STT_FETCH_MICROPHONE", "SUCCESS", {"start_byte": 0, "bytes_count": 100})
    stereo = np.array([[100, 300], [-100, -300]], dtype="<i2").tobytes()
    [data] = t.receive(ev("STT_FETCH_MICROPHONE_RESULT", {"audio_bytes": base64.b64encode(stereo).decode()}, fetch.event_id))
    assert isinstance(data, MicrophoneData) and data.raw_bytes == 8
    assert np.frombuffer(data.audio, "<i2").tolist() == [200, -200], "stereo is mixed down"
    with pytest.raises(HarmonyLinkError, match="is waiting"):  # the same answer twice, or one never asked
        t.receive(ev("STT_FETCH_MICROPHONE_RESULT", {"audio_bytes": ""}, fetch.event_id))
    [stop] = t.receive(ev("STT_STOP_LISTEN", {}))
    assert isinstance(stop, Submit) and stop.request.type == "stt.listen.stop"
    with pytest.raises(HarmonyLinkError, match="not listening"):
        t.receive(ev("STT_STOP_LISTEN", {}))
    [push] = t.receive(ev("STT_START_LISTEN", None))
    assert isinstance(push, Listen) and (push.pull_bytes, push.respond) == (None, True)
    [chunk] = t.receive(ev("STT_INPUT_AUDIO", {"AudioBytes": base64.b64encode(b"\x01\x00\x02\x00").decode()}))
    assert isinstance(chunk, Submit) and (chunk.request.type, chunk.request.payload) == ("stt.audio", {"audio": b"\x01\x00\x02\x00"})
    for bad in ({"sample_rate": 11025}, {"bit_depth": 8}, {"channels": 3}, {"result_mode": "later"}, "yes"):
        with pytest.raises(HarmonyLinkError):
            t.receive(ev("STT_START_LISTEN", bad))
    for bad_audio in ({"AudioBytes": "***"}, {"audio_bytes": base64.b64encode(b"abc").decode()}, {}):
        with pytest.raises(HarmonyLinkError):
            t.receive(ev("STT_INPUT_AUDIO", bad_audio))


def test_stt_events_out_and_one_shot(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [started] = t.outbound(Event("stt.speech.started", "o1", {"t": 10}, entity="kaji"))
    [stopped] = t.outbound(Event("stt.speech.stopped", "o2", {"t": 900}, entity="kaji"))
    assert [started.event.event_type, stopped.event.event_type] == ["STT_SPEECH_STARTED", "STT_SPEECH_STOPPED"]
    [text] = t.outbound(Event("stt.transcript", "o3", {"text": "a room", "final": True}, entity="kaji"))
    assert (text.event.event_type, text.event.payload) == ("STT_OUTPUT_TEXT", {"type": "UTTERANCE_VERBAL", "content": "a room"})
    t.receive(ev("STT_START_LISTEN", {"result_mode": "process", "sample_rate": 16000}))
    assert t.outbound(Event("stt.transcript", "o4", {"text": "a room", "final": True}, entity="kaji")) == [], "process: we answer it"
    t.receive(ev("STT_STOP_LISTEN", {}))
    [once] = t.receive(ev("STT_INPUT_AUDIO", {"audio_bytes": base64.b64encode(b"\x00\x00").decode(), "sample_rate": 22050}, "one_shot"))
    assert isinstance(once, Submit) and once.request.type == "stt.transcribe" and once.request.payload["sample_rate"] == 22050
    [result] = t.outbound(once.request.reply("success", {"text": "hello"}))
    assert result.event == HLEvent("one_shot", "STT_OUTPUT_TEXT", "SUCCESS", {"type": "UTTERANCE_VERBAL", "content": "hello"})


def test_movement_v1_both_ways(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [register] = t.receive(ev("MOVEMENT_V1_REGISTER_ACTIONS", {"actions": [{"name": "move", "description": "walk", "examples": ["{{character}} walks over to {{object}}"]}]}))
    assert isinstance(register, Submit) and register.request.type == "movement.actions"
    [spec] = register.request.payload["actions"]
    assert spec["examples"] == ["Mira walks over to {{object}}"] and spec["params"]["target"]["optional"] is True
    [more] = t.receive(ev("MOVEMENT_V1_REGISTER_ACTION", {"name": "sit"}))
    assert isinstance(more, Submit) and [a["name"] for a in more.request.payload["actions"]] == ["move", "sit"]
    with pytest.raises(HarmonyLinkError):
        t.receive(ev("MOVEMENT_V1_REGISTER_ACTION", {"description": "no name"}))
    scene = {"characters": [{"name": "kaji", "position": [1, 2, 3], "orientation": [0, 90, 0], "current_action": "idle"}], "objects": [{"name": "Chair", "position": [3, 0]}]}
    [update] = t.receive(ev("MOVEMENT_V1_UPDATE_SCENE_DATA", scene))
    assert isinstance(update, Submit) and update.request.payload == {
        "characters": [{"name": "kaji", "position": {"x": 1.0, "y": 2.0, "z": 3.0}, "orientation": {"x": 0.0, "y": 90.0, "z": 0.0}, "action": "idle"}],
        "objects": [{"name": "Chair", "position": {"x": 3.0, "y": 0.0}}],
    }
    [asked] = t.outbound(Event("movement.scene.request", "b9", None, entity="kaji"))
    assert (asked.event.event_type, asked.event.status) == ("MOVEMENT_V1_REQUEST_SCENE_DATA", "SUCCESS")
    [answer] = t.receive(ev("MOVEMENT_V1_UPDATE_SCENE_DATA", scene))
    assert isinstance(answer, Answer) and (answer.event.id, answer.event.status) == ("b9", "success")
    [perform] = t.outbound(Event("movement.perform", "b10", {"actions": [{"name": "move", "args": {"target": "Chair"}}]}, entity="kaji", ref="h1"))
    assert perform.event.payload == {"actions": [{"name": "move", "target": "Chair", "args": {"target": "Chair"}}]}
    assert perform.answer is not None and (perform.answer.id, perform.answer.status) == ("b10", "success")
    assert t.receive(ev("MOVEMENT_V1_PERFORM_ACTIONS", {})) == []


def test_voiceless_turn_still_gets_ai_speech(tmp_path: Path) -> None:
    t = ready(tmp_path)
    [submit] = t.receive(ev("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hi"}))
    assert isinstance(submit, Submit)
    [speech] = t.outbound(submit.request.reply("success", {"reply": "Hello.", "spoken": "Hello."}))
    assert speech.event.payload == {"type": "UTTERANCE_VERBAL", "content": "Hello.", "audio_file": "", "audio_type": "wav"}
    [voiced] = t.receive(ev("USER_UTTERANCE", {"type": "UTTERANCE_VERBAL", "content": "hi"}))
    assert isinstance(voiced, Submit)
    t.outbound(Event("ai.speech.start", "o1", {"speech": "s1", "text": "Hello.", "sample_rate": 22050}, entity="kaji", ref=voiced.request.id))
    assert t.outbound(voiced.request.reply("success", {"reply": "Hello.", "spoken": "Hello."})) == []


def test_turns_of_the_microphone_leave_no_state_behind(tmp_path: Path) -> None:
    """A turn the listener started has no final reply here: nothing of it may be kept."""
    t = ready(tmp_path)
    for n in range(3):
        speak(t, speech=f"mic{n}.1")  # ref "h1" of speak() is no request of this socket
    assert t._voiced == set() and t._collecting == {}
