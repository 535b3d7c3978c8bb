/**
 * Lip sync and expression over time: viseme keyframes `[t, name, weight]` (t from the segment's
 * start) and `ai.countenance` events become weights at a given point of playback.
 *
 * The timeline holds no clock. The speech player says which segment is heard and how far into
 * it (`SpeechPlayer.position()`), so the face follows what the player hears, not when frames
 * arrived. Between two keyframes the mouth crossfades from one shape to the next; after the
 * last keyframe of a segment it holds for `holdMs`, then eases to rest.
 */
import type { AiCountenancePayload } from "./generated/protocol.js";

export const VISEMES = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"] as const;
export type Viseme = (typeof VISEMES)[number];
export type Keyframe = [number, Viseme, number];
export type VisemeWeights = Partial<Record<Viseme, number>>;

/** How open the jaw is for each viseme (0..1): for a 2D mouth or a single jaw bone. */
export const MOUTH_OPEN: Readonly<Record<Viseme, number>> = {
  sil: 0,
  PP: 0,
  FF: 0.15,
  TH: 0.25,
  DD: 0.35,
  kk: 0.4,
  CH: 0.3,
  SS: 0.2,
  nn: 0.3,
  RR: 0.35,
  aa: 1,
  E: 0.6,
  I: 0.45,
  O: 0.8,
  U: 0.5,
};

/** How wide (spread) the lips are for each viseme, -1 (rounded) .. 1 (spread). */
export const MOUTH_WIDE: Readonly<Record<Viseme, number>> = {
  sil: 0,
  PP: 0,
  FF: 0.2,
  TH: 0.2,
  DD: 0.3,
  kk: 0.3,
  CH: -0.2,
  SS: 0.6,
  nn: 0.2,
  RR: -0.3,
  aa: 0.3,
  E: 0.8,
  I: 0.9,
  O: -0.7,
  U: -0.9,
};

export interface Expression {
  emotion: AiCountenancePayload["emotion"];
  intensity: number;
  expression: string;
}

export const NEUTRAL: Expression = { emotion: "neutral", intensity: 0, expression: "neutral" };

export interface FaceFrame {
  visemes: VisemeWeights;
  /** 0 (closed) .. 1 (wide open), from the weighted visemes. */
  mouthOpen: number;
  mouthWide: number;
  expression: Expression;
}

interface Segment {
  keys: Keyframe[];
  ended: boolean;
  durationMs: number | null;
  moods: Array<{ t: number; expression: Expression }>;
}

export class FaceTimeline {
  private readonly segments = new Map<string, Segment>();
  private current: Expression = NEUTRAL;

  constructor(
    readonly holdMs = 120,
    readonly releaseMs = 80,
  ) {}

  private segment(speech: string): Segment {
    let seg = this.segments.get(speech);
    if (!seg) {
      seg = { keys: [], ended: false, durationMs: null, moods: [] };
      this.segments.set(speech, seg);
    }
    return seg;
  }

  /** Keyframes of one `ai.speech.audio` chunk (they arrive in time order, chunk after chunk). */
  addKeyframes(speech: string, keys: ReadonlyArray<Keyframe>): void {
    const seg = this.segment(speech);
    for (const key of keys) {
      seg.keys.push([key[0], key[1], key[2]]);
    }
    seg.keys.sort((a, b) => a[0] - b[0]);
  }

  endSegment(speech: string, durationMs: number): void {
    const seg = this.segment(speech);
    seg.ended = true;
    seg.durationMs = durationMs;
  }

  /** An `ai.countenance` payload: at a point of a segment, or at once when it names none. */
  countenance(payload: AiCountenancePayload): void {
    const expression: Expression = {
      emotion: payload.emotion,
      intensity: payload.intensity ?? 1,
      expression: payload.expression ?? payload.emotion,
    };
    if (payload.speech !== undefined) {
      const seg = this.segment(payload.speech);
      seg.moods.push({ t: payload.t ?? 0, expression });
      seg.moods.sort((a, b) => a.t - b.t);
    } else {
      this.current = expression;
    }
  }

  forget(speech: string): void {
    this.segments.delete(speech);
  }

  /** Weights at `ms` into segment `speech`; `null` (nothing playing) gives the resting face. */
  sample(position: { speech: string; ms: number } | null): FaceFrame {
    if (position === null) {
      return this.frame({ sil: 1 });
    }
    const seg = this.segments.get(position.speech);
    if (!seg) {
      return this.frame({ sil: 1 });
    }
    for (const mood of seg.moods) {
      if (mood.t <= position.ms) {
        this.current = mood.expression;
      }
    }
    return this.frame(weightsAt(seg.keys, position.ms, this.holdMs, this.releaseMs));
  }

  private frame(visemes: VisemeWeights): FaceFrame {
    let open = 0;
    let wide = 0;
    for (const name of VISEMES) {
      const w = visemes[name] ?? 0;
      open += w * MOUTH_OPEN[name];
      wide += w * MOUTH_WIDE[name];
    }
    return { visemes, mouthOpen: Math.min(1, open), mouthWide: Math.max(-1, Math.min(1, wide)), expression: this.current };
  }

  get expression(): Expression {
    return this.current;
  }
}

/** Viseme weights at time `ms` from keyframes sorted by time (pure: unit-tested on its own). */
export function weightsAt(keys: ReadonlyArray<Keyframe>, ms: number, holdMs = 120, releaseMs = 80): VisemeWeights {
  if (keys.length === 0 || ms < keys[0]![0]) {
    return { sil: 1 };
  }
  let i = 0;
  while (i + 1 < keys.length && keys[i + 1]![0] <= ms) {
    i++;
  }
  const [t0, name0, w0] = keys[i]!;
  const next = keys[i + 1];
  if (next) {
    const [t1, name1, w1] = next;
    const f = t1 > t0 ? (ms - t0) / (t1 - t0) : 1;
    const out: VisemeWeights = {};
    out[name0] = (out[name0] ?? 0) + w0 * (1 - f);
    out[name1] = (out[name1] ?? 0) + w1 * f;
    return out;
  }
  const since = ms - t0;
  if (since <= holdMs) {
    return { [name0]: w0 };
  }
  const fade = Math.max(0, 1 - (since - holdMs) / releaseMs);
  if (fade === 0) {
    return { sil: 1 };
  }
  return { [name0]: w0 * fade, sil: 1 - fade };
}
