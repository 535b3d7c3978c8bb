import { describe, expect, it } from "vitest";
import { PcmFramer } from "../src/mic.js";

function tone(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  return Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Frequency by counting rising zero crossings. */
function pitch(samples: Int16Array, rate: number): number {
  let crossings = 0;
  for (let i = 1; i < samples.length; i++) if (samples[i - 1]! < 0 && samples[i]! >= 0) crossings++;
  return (crossings * rate) / samples.length;
}

function run(inRate: number, outRate: number, input: Float32Array, block = 128): { frames: Uint8Array[]; samples: Int16Array } {
  const frames: Uint8Array[] = [];
  const framer = new PcmFramer(inRate, outRate, 20, (f) => frames.push(f));
  for (let i = 0; i < input.length; i += block) framer.push(input.subarray(i, i + block));
  const all = new Int16Array(frames.reduce((n, f) => n + f.byteLength / 2, 0));
  let k = 0;
  for (const f of frames) {
    const view = new DataView(f.buffer);
    for (let i = 0; i < f.byteLength; i += 2) all[k++] = view.getInt16(i, true);
  }
  return { frames, samples: all };
}

describe("microphone framer", () => {
  it("cuts 48 kHz input into 20 ms frames of 16 kHz s16le", () => {
    const { frames, samples } = run(48000, 16000, tone(440, 48000, 1));
    expect(frames.length).toBe(50);
    expect(frames.every((f) => f.byteLength === 640)).toBe(true);
    expect(pitch(samples, 16000)).toBeGreaterThan(435);
    expect(pitch(samples, 16000)).toBeLessThan(445);
  });

  it("keeps pitch across odd rates and block sizes (44.1 kHz -> 16 kHz, 100-sample blocks)", () => {
    const { frames, samples } = run(44100, 16000, tone(1000, 44100, 0.5), 100);
    expect(frames.length).toBe(25);
    expect(Math.abs(pitch(samples, 16000) - 1000)).toBeLessThan(10);
  });

  it("keeps amplitude and clamps out-of-range input", () => {
    const { samples } = run(16000, 16000, Float32Array.from({ length: 320 }, (_, i) => (i % 2 ? 2 : -2)));
    expect(Math.max(...samples)).toBe(32767);
    expect(Math.min(...samples)).toBe(-32768);
    const { samples: half } = run(16000, 16000, new Float32Array(320).fill(0.5));
    expect(half.every((s) => s === 16384)).toBe(true);
  });
});
