// Per-frame cost of the SDK's hot paths in Node (run after `npm run build`):
//   node bench/codec.bench.mjs
// decode of one ai.speech.audio frame (40 ms at 24 kHz, with visemes and volume) in both
// framings, encode of one 20 ms stt.audio frame, and SpeechPlayer.push of a decoded chunk on
// a no-op AudioContext. Prints the median of 7 runs of N iterations each.
import { decodeFrame, encodeFrame, SpeechPlayer } from "../dist/entity-bridge.js";

const N = 20000;
const audio = new Uint8Array(1920 * 2).map((_, i) => (i * 7) & 0xff);
const speech = {
  type: "ai.speech.audio", id: "b103", entity: "npc-innkeeper", ref: "u1",
  payload: { speech: "sp-1", seq: 3, t: 120, audio, visemes: [[120, "sil", 1.0], [132, "O", 0.7], [148, "FF", 0.9]], volume: [0.1, 0.31, 0.56, 0.48] },
};
const mic = { type: "stt.audio", id: "m17", entity: "npc-innkeeper", payload: { seq: 17, audio: new Uint8Array(640) } };
const packed = encodeFrame(speech, "msgpack");
const json = encodeFrame(speech, "json");
const ctx = {
  currentTime: 0, sampleRate: 48000, destination: {},
  createBuffer: (_c, n) => { const d = new Float32Array(n); return { getChannelData: () => d }; },
  createBufferSource: () => ({ buffer: null, connect() {}, start() {}, stop() {} }),
};

function median(fn) {
  const runs = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn(i);
    runs.push(Number(process.hrtime.bigint() - t0) / N / 1000);
  }
  runs.sort((a, b) => a - b);
  return runs[3];
}

const results = {
  "decode ai.speech.audio (msgpack, 3.9 kB)": median(() => decodeFrame(packed)),
  "decode ai.speech.audio (json, 5.3 kB)": median(() => decodeFrame(json)),
  "encode stt.audio 20 ms (msgpack)": median(() => encodeFrame(mic, "msgpack")),
  "SpeechPlayer.push 40 ms chunk": median((i) => {
    const player = i % 500 === 0 ? (globalThis.p = new SpeechPlayer(ctx, { jitterMs: 0 })) : globalThis.p;
    player.push("sp", audio, (i % 500) * 40, 24000);
  }),
};
console.log(`node ${process.version}, ${N} iterations x 7 runs, median`);
for (const [name, us] of Object.entries(results)) console.log(`${name.padEnd(44)} ${us.toFixed(2)} µs`);
