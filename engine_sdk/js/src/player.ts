/**
 * WebAudio speech playback: `ai.speech.audio` chunks scheduled gap-free on an AudioContext.
 *
 * Each segment gets a base time on the context's clock when its first chunk arrives: now plus
 * a small jitter buffer, or the end of the previous segment if that is later. A chunk then
 * plays at base + its `t`, so chunks butt up against each other whatever their arrival
 * jitter. A chunk that arrives too late for its slot (an underrun) moves the segment's base
 * forward, leaving one gap instead of overlapping audio. The player reports what was heard
 * (`playback.progress`, `playback.done`) from the same clock, and `flush()` stops everything at
 * once for an interrupt, returning how much of the segment was heard.
 *
 * The AudioContext is an interface, so tests drive the scheduling with a fake clock.
 */
import type { EntityHandle, BridgeEvent } from "./client.js";
import type { AiSpeechAudioPayload, AiSpeechEndPayload, AiSpeechStartPayload, AiCountenancePayload } from "./generated/protocol.js";
import { FaceTimeline, type FaceFrame, type Keyframe } from "./timeline.js";

export interface AudioBufferLike {
  getChannelData(channel: number): Float32Array;
}
export interface AudioBufferSourceLike {
  buffer: AudioBufferLike | null;
  connect(destination: never): unknown;
  start(when?: number): void;
  stop(when?: number): void;
}
export interface AudioContextLike {
  readonly currentTime: number;
  readonly sampleRate: number;
  readonly destination: unknown;
  createBuffer(channels: number, length: number, sampleRate: number): AudioBufferLike;
  createBufferSource(): AudioBufferSourceLike;
}

export interface PlayerOptions {
  /** Audio held back before a segment starts, absorbing network jitter (default 60 ms). */
  jitterMs?: number;
  /** How often `onProgress` reports while a segment plays (default 250 ms). */
  progressIntervalMs?: number;
  onProgress?: (speech: string, playedMs: number) => void;
  onDone?: (speech: string) => void;
  /** Where sources connect; the context's destination by default (an AnalyserNode, a gain...). */
  output?: unknown;
}

interface Segment {
  speech: string;
  rate: number;
  base: number | null;
  scheduledSamples: number;
  sources: AudioBufferSourceLike[];
  ended: boolean;
  lastProgress: number;
}

/** Samples of 16-bit little-endian PCM as floats in [-1, 1). */
export function pcm16ToFloat32(bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength >> 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = view.getInt16(i * 2, true) / 32768;
  }
  return out;
}

export class SpeechPlayer {
  /** Every sample handed to the AudioContext since the player was made. */
  samplesScheduled = 0;
  /** Chunks that came too late for their slot. */
  underruns = 0;

  private readonly segments: Segment[] = [];
  private tail = 0;
  private readonly jitter: number;
  private readonly interval: number;

  constructor(
    readonly context: AudioContextLike,
    private readonly options: PlayerOptions = {},
  ) {
    this.jitter = (options.jitterMs ?? 60) / 1000;
    this.interval = (options.progressIntervalMs ?? 250) / 1000;
  }

  private find(speech: string): Segment | undefined {
    return this.segments.find((s) => s.speech === speech);
  }

  /** `ai.speech.start`: a segment at this sample rate follows. */
  start(speech: string, sampleRate: number): void {
    if (!this.find(speech)) {
      this.segments.push({ speech, rate: sampleRate, base: null, scheduledSamples: 0, sources: [], ended: false, lastProgress: -Infinity });
    }
  }

  /** `ai.speech.audio`: schedule one chunk of PCM whose first sample is at `tMs` of the segment. */
  push(speech: string, pcm: Uint8Array, tMs: number, sampleRate?: number): void {
    let seg = this.find(speech);
    if (!seg) {
      this.start(speech, sampleRate ?? this.context.sampleRate);
      seg = this.find(speech)!;
    }
    const samples = pcm16ToFloat32(pcm);
    if (samples.length === 0) {
      return;
    }
    const now = this.context.currentTime;
    if (seg.base === null) {
      seg.base = Math.max(now + this.jitter, this.tail) - tMs / 1000;
    }
    let when = seg.base + tMs / 1000;
    if (when < now) {
      this.underruns++;
      seg.base += now + this.jitter - when;
      when = seg.base + tMs / 1000;
    }
    const buffer = this.context.createBuffer(1, samples.length, seg.rate);
    buffer.getChannelData(0).set(samples);
    const source = this.context.createBufferSource();
    source.buffer = buffer;
    source.connect((this.options.output ?? this.context.destination) as never);
    source.start(when);
    seg.sources.push(source);
    seg.scheduledSamples = Math.max(seg.scheduledSamples, Math.round((tMs / 1000) * seg.rate) + samples.length);
    this.samplesScheduled += samples.length;
    this.tail = Math.max(this.tail, when + samples.length / seg.rate);
  }

  /** `ai.speech.end`: no more audio for this segment. */
  end(speech: string): void {
    const seg = this.find(speech);
    if (seg) {
      seg.ended = true;
    }
  }

  /** The segment being heard now and how far into it, or null when silent. */
  position(): { speech: string; ms: number } | null {
    const now = this.context.currentTime;
    for (const seg of this.segments) {
      if (seg.base === null) continue;
      const end = seg.base + seg.scheduledSamples / seg.rate;
      if (now >= seg.base && now < end) {
        return { speech: seg.speech, ms: (now - seg.base) * 1000 };
      }
    }
    return null;
  }

  /** True while any audio is scheduled ahead or playing. */
  get playing(): boolean {
    return this.tail > this.context.currentTime;
  }

  /** Report progress and finished segments; call it from a timer or the game loop. */
  tick(): void {
    const now = this.context.currentTime;
    for (const seg of [...this.segments]) {
      if (seg.base === null || now < seg.base) continue;
      const lengthS = seg.scheduledSamples / seg.rate;
      const played = Math.min(now - seg.base, lengthS);
      if (seg.ended && now >= seg.base + lengthS) {
        this.segments.splice(this.segments.indexOf(seg), 1);
        this.options.onProgress?.(seg.speech, Math.round(lengthS * 1000));
        this.options.onDone?.(seg.speech);
      } else if (now - seg.lastProgress >= this.interval) {
        seg.lastProgress = now;
        this.options.onProgress?.(seg.speech, Math.round(played * 1000));
      }
    }
  }

  /** Stop all audio now (interrupt); returns what was heard of the segment that was playing. */
  flush(): { speech: string; playedMs: number } | null {
    const heard = this.position();
    for (const seg of this.segments) {
      for (const source of seg.sources) {
        try {
          source.stop();
        } catch {
          // a source that has not started yet (or already stopped) may refuse stop()
        }
      }
    }
    this.segments.length = 0;
    this.tail = this.context.currentTime;
    return heard ? { speech: heard.speech, playedMs: Math.round(heard.ms) } : null;
  }
}

/**
 * Wires an entity to a player and a face timeline: speech events in, playback reports out.
 * Call `frame()` from the render loop for the face; `dispose()` unhooks everything.
 */
export class EntitySpeech {
  readonly face = new FaceTimeline();
  readonly player: SpeechPlayer;
  private readonly unsubscribe: () => void;
  private readonly timer: ReturnType<typeof setInterval> | null;

  constructor(
    readonly entity: EntityHandle,
    context: AudioContextLike,
    options: PlayerOptions & { tickMs?: number } = {},
  ) {
    this.player = new SpeechPlayer(context, {
      ...options,
      onProgress: (speech, playedMs) => {
        entity.send("playback.progress", { speech, played_ms: playedMs });
        options.onProgress?.(speech, playedMs);
      },
      onDone: (speech) => {
        entity.send("playback.done", { speech });
        this.face.forget(speech);
        options.onDone?.(speech);
      },
    });
    this.unsubscribe = entity.on((event) => this.handle(event));
    const tickMs = options.tickMs ?? 50;
    this.timer = tickMs > 0 ? setInterval(() => this.safeTick(), tickMs) : null;
  }

  private safeTick(): void {
    try {
      this.player.tick();
    } catch {
      // the connection may be closing; reports are best effort
    }
  }

  handle(event: BridgeEvent): void {
    const p = event.payload as Record<string, unknown> | null;
    if (!p || event.status !== "new") return;
    switch (event.type) {
      case "ai.speech.start": {
        const start = p as unknown as AiSpeechStartPayload;
        this.player.start(start.speech, start.sample_rate);
        break;
      }
      case "ai.speech.audio": {
        const chunk = p as unknown as AiSpeechAudioPayload;
        if (chunk.visemes) this.face.addKeyframes(chunk.speech, chunk.visemes as Keyframe[]);
        this.player.push(chunk.speech, chunk.audio, chunk.t);
        break;
      }
      case "ai.speech.end": {
        const end = p as unknown as AiSpeechEndPayload;
        this.player.end(end.speech);
        this.face.endSegment(end.speech, end.duration_ms);
        break;
      }
      case "ai.speech.interrupted":
        this.player.flush();
        break;
      case "ai.countenance":
        this.face.countenance(p as unknown as AiCountenancePayload);
        break;
    }
  }

  /** The face to draw now, in step with what the player is playing. */
  frame(): FaceFrame {
    return this.face.sample(this.player.position());
  }

  /** Barge-in from the game: stop the audio and tell the bridge how much was heard. */
  async interrupt() {
    const heard = this.player.flush();
    return this.entity.interrupt(heard?.playedMs);
  }

  dispose(): void {
    this.unsubscribe();
    if (this.timer !== null) clearInterval(this.timer);
    this.player.flush();
  }
}
