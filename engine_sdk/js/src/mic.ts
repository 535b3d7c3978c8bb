/**
 * Microphone capture: getUserMedia + an AudioWorklet, resampled to the hello's `audio_in`
 * rate and cut into 20 ms `stt.audio` frames of 16-bit PCM.
 *
 * The worklet only copies the browser's 128-sample render blocks out of the audio thread;
 * the resampling and framing happen in {@link PcmFramer}, a plain class the tests drive with
 * generated tones. Push-to-talk sends `stt.listen.start {mode: push_to_talk}` on press and
 * `stt.listen.stop` on release; VAD mode listens until stopped and the bridge's VAD marks the
 * speech (`stt.speech.started` / `stt.speech.stopped`).
 */
import type { EntityHandle } from "./client.js";

/** Linear-interpolating resampler plus framer: float blocks in, s16le frames out. */
export class PcmFramer {
  private readonly step: number;
  private readonly frameSamples: number;
  private pos = 0;
  private prev = 0;
  private readonly frame: Int16Array;
  private fill = 0;

  constructor(
    readonly inputRate: number,
    readonly outputRate: number,
    readonly frameMs: number,
    private readonly onFrame: (pcm: Uint8Array) => void,
  ) {
    this.step = inputRate / outputRate;
    this.frameSamples = Math.round((outputRate * frameMs) / 1000);
    this.frame = new Int16Array(this.frameSamples);
  }

  /** Feed input samples (-1..1) as they come; complete frames go to `onFrame`. */
  push(block: Float32Array): void {
    // `pos` is where the next output sample falls, in input samples of this block; index -1
    // is the last sample of the previous block, so interpolation spans block boundaries.
    const last = block.length - 1;
    while (this.pos <= last) {
      const i = Math.floor(this.pos);
      const f = this.pos - i;
      const a = i < 0 ? this.prev : block[i]!;
      this.emit(f === 0 ? a : a + (block[i + 1]! - a) * f);
      this.pos += this.step;
    }
    this.pos -= block.length;
    if (block.length > 0) this.prev = block[last]!;
  }

  private emit(sample: number): void {
    const clamped = Math.max(-1, Math.min(1, sample));
    this.frame[this.fill++] = clamped < 0 ? Math.round(clamped * 32768) : Math.round(clamped * 32767);
    if (this.fill === this.frameSamples) {
      const bytes = new Uint8Array(this.frameSamples * 2);
      const view = new DataView(bytes.buffer);
      for (let k = 0; k < this.frameSamples; k++) view.setInt16(k * 2, this.frame[k]!, true);
      this.fill = 0;
      this.onFrame(bytes);
    }
  }
}

const WORKLET_SOURCE = `
class EntityBridgeCapture extends AudioWorkletProcessor {
  process(inputs) {
    const input = inputs[0];
    if (input && input[0] && input[0].length) this.port.postMessage(input[0].slice(0));
    return true;
  }
}
registerProcessor("entity-bridge-capture", EntityBridgeCapture);
`;

export type ListenMode = "push_to_talk" | "vad";

export interface MicrophoneOptions {
  /** The hello's audio_in rate (default 16000). */
  sampleRate?: number;
  frameMs?: number;
  /** A stream to use instead of asking getUserMedia (tests, a game's own capture). */
  stream?: MediaStream;
  /** Called with each frame's peak level 0..1, for a level meter. */
  onLevel?: (peak: number) => void;
}

/** Streams the microphone to an entity as `stt.audio` while listening. */
export class Microphone {
  framesSent = 0;
  private seq = 0;
  private listening: ListenMode | null = null;
  private context: AudioContext | null = null;
  private node: AudioWorkletNode | null = null;
  private source: MediaStreamAudioSourceNode | null = null;
  private stream: MediaStream | null = null;
  private framer: PcmFramer | null = null;

  constructor(
    readonly entity: EntityHandle,
    private readonly options: MicrophoneOptions = {},
  ) {}

  get mode(): ListenMode | null {
    return this.listening;
  }

  /** Ask for the microphone and set up the worklet (call from a user gesture in browsers). */
  async open(): Promise<void> {
    if (this.context) return;
    this.stream =
      this.options.stream ??
      (await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } }));
    this.context = new AudioContext();
    const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: "text/javascript" }));
    try {
      await this.context.audioWorklet.addModule(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "entity-bridge-capture");
    this.framer = new PcmFramer(this.context.sampleRate, this.options.sampleRate ?? 16000, this.options.frameMs ?? 20, (pcm) => this.sendFrame(pcm));
    this.node.port.onmessage = (ev: MessageEvent<Float32Array>) => {
      if (this.listening) this.framer!.push(ev.data);
    };
    this.source.connect(this.node);
  }

  private sendFrame(pcm: Uint8Array): void {
    if (!this.listening) return;
    if (this.options.onLevel) {
      const view = new DataView(pcm.buffer);
      let peak = 0;
      for (let i = 0; i < pcm.byteLength; i += 2) peak = Math.max(peak, Math.abs(view.getInt16(i, true)));
      this.options.onLevel(peak / 32768);
    }
    this.entity.send("stt.audio", { seq: this.seq++, audio: pcm });
    this.framesSent++;
  }

  /** Start listening: push-to-talk (press) or VAD (open mic). */
  async start(mode: ListenMode = "push_to_talk"): Promise<void> {
    await this.open();
    await this.context!.resume();
    this.seq = 0;
    this.listening = mode;
    await this.entity.request("stt.listen.start", { mode });
  }

  /** Stop listening; in push-to-talk mode this ends the utterance, which is then transcribed. */
  async stop(): Promise<void> {
    if (!this.listening) return;
    this.listening = null;
    await this.entity.request("stt.listen.stop", null);
  }

  async close(): Promise<void> {
    this.listening = null;
    this.source?.disconnect();
    this.node?.disconnect();
    if (!this.options.stream) this.stream?.getTracks().forEach((t) => t.stop());
    await this.context?.close();
    this.context = null;
  }
}
