"""`entity-bridge say "text"`: one line in a character's voice, to a WAV file with its face beside it.

For trying voices without a game. The line goes through `tts.say` on an in-process bridge,
so the audio, the visemes and the countenance are exactly what a game would receive. The
WAV holds every spoken segment in order; the JSON beside it (same name, `.json`) gives the
segments, the viseme keyframes and the emotions on one timeline in milliseconds from the
start of the file.
"""

from __future__ import annotations

import json
import wave
from pathlib import Path
from typing import Any

from bridge.config import BridgeConfig
from bridge.tools.session import client_on, pick_character
from entity_bridge_sdk.client import TurnResult

SAMPLE_RATE = 24000


def timeline(result: TurnResult, text: str) -> tuple[bytes, dict[str, Any]]:
    """The PCM of every segment in order, and the segments, visemes and emotions on one clock."""
    pcm = bytearray()
    offsets: dict[str, float] = {}
    segments: list[dict[str, Any]] = []
    visemes: list[list[Any]] = []
    emotions: list[dict[str, Any]] = []
    for event in result.events:
        payload = event.payload or {}
        if event.type == "ai.speech.start":
            offsets[payload["speech"]] = len(pcm) / 2 / SAMPLE_RATE * 1000
            segments.append({"speech": payload["speech"], "text": payload.get("text", ""), "start_ms": round(offsets[payload["speech"]], 1)})
        elif event.type == "ai.speech.audio":
            base = offsets.get(payload["speech"], 0.0)
            visemes += [[round(base + t, 1), name, weight] for t, name, weight in payload.get("visemes") or []]
            pcm += payload["audio"]
        elif event.type == "ai.countenance":
            entry = {k: payload[k] for k in ("emotion", "intensity", "expression") if k in payload}
            if "speech" in payload and "t" in payload:
                entry["t_ms"] = round(offsets.get(payload["speech"], 0.0) + payload["t"], 1)
            emotions.append(entry)
    return bytes(pcm), {
        "text": text,
        "sample_rate": SAMPLE_RATE,
        "duration_ms": round(len(pcm) / 2 / SAMPLE_RATE * 1000, 1),
        "segments": segments,
        "visemes": visemes,
        "emotions": emotions,
    }


async def run_say(config: BridgeConfig, text: str, character: str | None, wav_path: Path) -> str:
    chosen = pick_character(config, character)
    audio_out = {"sample_rate": SAMPLE_RATE, "chunk_ms": 40, "lead_ms": 5000}
    async with client_on(config, audio_out=audio_out, text_deltas=False) as client:
        entity = await client.init_entity("say", chosen.name)
        result = await entity.speak(text, timeout=300)
    pcm, face = timeline(result, text)
    if not pcm:
        raise RuntimeError(f"{chosen.name} has no voice (its tts slot is off)")
    with wave.open(str(wav_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm)
    json_path = wav_path.with_suffix(".json")
    json_path.write_text(json.dumps(face, indent=1) + "\n")
    return f"{chosen.name}: {face['duration_ms'] / 1000:.2f} s -> {wav_path} ({len(face['visemes'])} visemes, {len(face['emotions'])} emotions in {json_path})"
