/** Speech player scheduling against a fake AudioContext whose clock the test moves. */
import { describe, expect, it } from "vitest";
import { pcm16ToFloat32, SpeechPlayer, type AudioContextLike } from "../src/player.js";

class FakeSource {
  buffer: { data: Float32Array; rate: number; getChannelData(c: number): Float32Array } | null = null;
  startedAt: number | null = null;
  stopped = false;
  connect(): void {}
  start(when = 0): void {
    this.startedAt = when;
  }
  stop(): void {
    this.stopped = true;
  }
}

class FakeContext implements AudioContextLike {
  currentTime = 0;
  readonly sampleRate = 48000;
  readonly destination = {};
  readonly sources: FakeSource[] = [];
  createBuffer(_channels: number, length: number, rate: number) {
    const data = new Float32Array(length);
    return { data, rate, getChannelData: () => data };
  }
  createBufferSource() {
    const s = new FakeSource();
    this.sources.push(s);
    return s as never;
  }
}

const RATE = 16000;
/** A chunk of `ms` of PCM at RATE whose samples are all `value`. */
function chunk(ms: number, value = 1000): Uint8Array {
  const n = (RATE * ms) / 1000;
  const out = new Uint8Array(n * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) view.setInt16(i * 2, value, true);
  return out;
}

describe("speech player", () => {
  it("converts s16le to floats", () => {
    const pcm = new Uint8Array([0x00, 0x80, 0xff, 0x7f, 0x00, 0x00]);
    expect(Array.from(pcm16ToFloat32(pcm))).toEqual([-1, 32767 / 32768, 0]);
  });

  it("schedules chunks back to back after the jitter buffer, whatever their arrival times", () => {
    const ctx = new FakeContext();
    const player = new SpeechPlayer(ctx, { jitterMs: 60 });
    ctx.currentTime = 1.0;
    player.start("sp-1", RATE);
    player.push("sp-1", chunk(40), 0);
    ctx.currentTime = 1.01; // the next chunk arrives 10 ms later
    player.push("sp-1", chunk(40), 40);
    ctx.currentTime = 1.05;
    player.push("sp-1", chunk(20), 80);
    const starts = ctx.sources.map((s) => s.startedAt!);
    expect(starts[0]).toBeCloseTo(1.06, 9);
    expect(starts[1]).toBeCloseTo(1.1, 9);
    expect(starts[2]).toBeCloseTo(1.14, 9);
    expect(player.samplesScheduled).toBe(640 + 640 + 320);
    expect(player.underruns).toBe(0);
  });

  it("starts the next segment where the previous one ends", () => {
    const ctx = new FakeContext();
    const player = new SpeechPlayer(ctx, { jitterMs: 50 });
    player.start("a", RATE);
    player.push("a", chunk(100), 0);
    player.end("a");
    player.start("b", RATE);
    ctx.currentTime = 0.02;
    player.push("b", chunk(40), 0);
    expect(ctx.sources[0]!.startedAt).toBeCloseTo(0.05, 9);
    expect(ctx.sources[1]!.startedAt).toBeCloseTo(0.15, 9);
  });

  it("moves the segment on after an underrun instead of overlapping", () => {
    const ctx = new FakeContext();
    const player = new SpeechPlayer(ctx, { jitterMs: 50 });
    player.push("a", chunk(40), 0, RATE); // plays 0.05 .. 0.09
    ctx.currentTime = 0.2; // chunk 1 was due at 0.09: late
    player.push("a", chunk(40), 40);
    expect(player.underruns).toBe(1);
    expect(ctx.sources[1]!.startedAt).toBeCloseTo(0.25, 9);
    player.push("a", chunk(40), 80);
    expect(ctx.sources[2]!.startedAt).toBeCloseTo(0.29, 9);
  });

  it("reports progress while playing and done once the last sample has played", () => {
    const ctx = new FakeContext();
    const progress: Array<[string, number]> = [];
    const done: string[] = [];
    const player = new SpeechPlayer(ctx, {
      jitterMs: 0,
      progressIntervalMs: 100,
      onProgress: (s, ms) => progress.push([s, ms]),
      onDone: (s) => done.push(s),
    });
    for (let i = 0; i < 10; i++) player.push("sp", chunk(40), i * 40, RATE); // 400 ms
    player.end("sp");
    for (let t = 0; t <= 0.5; t += 0.05) {
      ctx.currentTime = t;
      player.tick();
    }
    expect(done).toEqual(["sp"]);
    expect(progress[progress.length - 1]).toEqual(["sp", 400]);
    const during = progress.slice(0, -1).map(([, ms]) => ms);
    expect(during.length).toBeGreaterThanOrEqual(3);
    expect(during).toEqual([...during].sort((a, b) => a - b));
    expect(player.position()).toBeNull();
  });

  it("does not report done before the segment's end event", () => {
    const ctx = new FakeContext();
    const done: string[] = [];
    const player = new SpeechPlayer(ctx, { jitterMs: 0, onDone: (s) => done.push(s) });
    player.push("sp", chunk(40), 0, RATE);
    ctx.currentTime = 1;
    player.tick();
    expect(done).toEqual([]);
    player.end("sp");
    player.tick();
    expect(done).toEqual(["sp"]);
  });

  it("knows which segment is heard and flushes everything on interrupt", () => {
    const ctx = new FakeContext();
    const player = new SpeechPlayer(ctx, { jitterMs: 0 });
    for (let i = 0; i < 5; i++) player.push("sp", chunk(40), i * 40, RATE);
    ctx.currentTime = 0.07;
    expect(player.position()!.speech).toBe("sp");
    expect(player.position()!.ms).toBeCloseTo(70, 6);
    expect(player.playing).toBe(true);
    expect(player.flush()).toEqual({ speech: "sp", playedMs: 70 });
    expect(ctx.sources.every((s) => s.stopped)).toBe(true);
    expect(player.playing).toBe(false);
    expect(player.position()).toBeNull();
    player.push("sp2", chunk(40), 0, RATE);
    expect(ctx.sources[5]!.startedAt).toBeCloseTo(0.07, 9);
  });
});
