import { describe, expect, it } from "vitest";
import { readLog, SessionRecorder } from "../src/recorder.js";

describe("session recorder", () => {
  it("writes the Python recorder's format: meta line, then timed frames with $bin bytes", () => {
    let now = 1000;
    const rec = new SessionRecorder("msgpack", () => now);
    rec.write("out", { type: "session.hello", id: "h1", payload: { protocol: 1 } });
    now = 1012.5;
    rec.write("in", { type: "ai.speech.audio", id: "b1", entity: "n", payload: { audio: Uint8Array.of(1, 2, 3) } });
    const lines = rec.toText().trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ t_ms: 0, dir: "meta", framing: "msgpack" });
    expect(lines[1]).toEqual({ t_ms: 0, dir: "out", event: { type: "session.hello", id: "h1", payload: { protocol: 1 } } });
    expect(lines[2].t_ms).toBe(12.5);
    expect(lines[2].event.payload.audio).toEqual({ $bin: "AQID" });
    const back = readLog(rec.toText());
    expect(back[2]!.event!.payload).toEqual({ audio: Uint8Array.of(1, 2, 3) });
    expect(rec.count).toBe(2);
  });
});
