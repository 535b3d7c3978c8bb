import { describe, expect, it } from "vitest";
import { FaceTimeline, weightsAt, type Keyframe } from "../src/timeline.js";

describe("viseme weights", () => {
  const keys: Keyframe[] = [
    [0, "sil", 1],
    [100, "aa", 0.8],
    [200, "O", 0.6],
  ];

  it("rests before the first keyframe", () => {
    expect(weightsAt(keys, -5)).toEqual({ sil: 1 });
    expect(weightsAt([], 50)).toEqual({ sil: 1 });
  });

  it("hits each keyframe exactly and crossfades between two", () => {
    expect(weightsAt(keys, 100)).toEqual({ aa: 0.8, O: 0 });
    const mid = weightsAt(keys, 150);
    expect(mid.aa).toBeCloseTo(0.4);
    expect(mid.O).toBeCloseTo(0.3);
    const quarter = weightsAt(keys, 25);
    expect(quarter.sil).toBeCloseTo(0.75);
    expect(quarter.aa).toBeCloseTo(0.2);
  });

  it("holds the last shape, then releases to rest", () => {
    expect(weightsAt(keys, 200 + 120, 120, 80)).toEqual({ O: 0.6 });
    const half = weightsAt(keys, 200 + 160, 120, 80);
    expect(half.O).toBeCloseTo(0.3);
    expect(half.sil).toBeCloseTo(0.5);
    expect(weightsAt(keys, 200 + 200, 120, 80)).toEqual({ sil: 1 });
  });
});

describe("face timeline", () => {
  it("opens the mouth during speech and closes it after", () => {
    const face = new FaceTimeline();
    face.addKeyframes("sp-1", [[0, "sil", 1], [40, "aa", 1]]);
    face.addKeyframes("sp-1", [[80, "PP", 1]]);
    face.endSegment("sp-1", 120);
    expect(face.sample({ speech: "sp-1", ms: 40 }).mouthOpen).toBeCloseTo(1);
    expect(face.sample({ speech: "sp-1", ms: 80 }).mouthOpen).toBeCloseTo(0);
    expect(face.sample({ speech: "sp-1", ms: 60 }).mouthOpen).toBeCloseTo(0.5);
    expect(face.sample(null).mouthOpen).toBe(0);
    expect(face.sample({ speech: "unknown", ms: 10 }).visemes).toEqual({ sil: 1 });
  });

  it("applies a countenance at its point of the segment, or at once without one", () => {
    const face = new FaceTimeline();
    face.addKeyframes("sp-1", [[0, "aa", 1]]);
    face.countenance({ emotion: "happy", intensity: 0.8, expression: "smile_big", speech: "sp-1", t: 300 });
    expect(face.sample({ speech: "sp-1", ms: 299 }).expression.emotion).toBe("neutral");
    const later = face.sample({ speech: "sp-1", ms: 300 }).expression;
    expect(later).toEqual({ emotion: "happy", intensity: 0.8, expression: "smile_big" });
    face.countenance({ emotion: "sad", intensity: 0.5, expression: "frown" });
    expect(face.sample(null).expression.emotion).toBe("sad");
  });
});
