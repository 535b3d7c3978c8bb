import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, Float64, FrameError, fromBase64, packValue, toBase64, unpackValue } from "../src/codec.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

describe("msgpack codec", () => {
  it("writes the smallest integer forms, as the bridge does", () => {
    expect(hex(packValue({ v: 127 }))).toBe("81a1767f");
    expect(hex(packValue({ v: 128 }))).toBe("81a176cc80");
    expect(hex(packValue({ v: 65536 }))).toBe("81a176ce00010000");
    expect(hex(packValue({ v: 2 ** 32 }))).toBe("81a176cf0000000100000000");
    expect(hex(packValue({ v: -33 }))).toBe("81a176d0df");
    expect(hex(packValue({ v: -(2 ** 31) - 1 }))).toBe("81a176d3ffffffff7fffffff");
    expect(hex(packValue({ v: 5n }))).toBe("81a17605");
    expect(hex(packValue({ v: 18446744073709551615n }))).toBe("81a176cfffffffffffffffff");
  });

  it("decodes 64-bit integers to numbers when safe and to bigint when not", () => {
    expect(unpackValue(bytes("81a176d30000000000000005"))).toEqual({ v: 5 });
    expect(unpackValue(bytes("81a176cfffffffffffffffff"))).toEqual({ v: 18446744073709551615n });
  });

  it("writes floats as float64, and Float64 forces a float for integral values", () => {
    expect(hex(packValue({ v: 1.5 }))).toBe("81a176cb3ff8000000000000");
    expect(hex(packValue({ v: new Float64(1) }))).toBe("81a176cb3ff0000000000000");
    expect(hex(packValue({ v: [new Float64(0), 2] }))).toBe("81a17692cb000000000000000002");
  });

  it("re-encodes a decoded integral float as a float", () => {
    const frame = bytes("81a176cb3ff0000000000000");
    const value = unpackValue(frame) as { v: number };
    expect(value.v).toBe(1);
    expect(hex(packValue(value))).toBe(hex(frame));
  });

  it("round-trips bytes as bin and strings as str", () => {
    const value = { type: "stt.audio", id: "m1", entity: "npc", payload: { seq: 0, audio: Uint8Array.of(1, 2, 3) } };
    const frame = encodeFrame(value, "msgpack") as Uint8Array;
    expect(hex(frame)).toContain("c403010203");
    expect(decodeFrame(frame)).toEqual(value);
  });

  it("refuses extension types, reserved bytes, int keys, bad UTF-8 and deep nesting with FrameError", () => {
    const cases: Array<[string, string]> = [
      ["81a176d6ff00000000", "ext"],
      ["81a176c1", "reserved"],
      ["8101a178", "key"],
      ["81a176a2c328", "utf8"],
      ["81a176" + "91".repeat(64) + "c0", "depth"],
      ["81a176db" + "ffffffff", "length"],
      ["81a176", "truncated"],
      ["81a176c0c0", "trailing"],
      ["920102", "not_map"],
    ];
    for (const [h, category] of cases) {
      let caught: unknown;
      try {
        decodeFrame(bytes(h));
      } catch (error) {
        caught = error;
      }
      expect(caught, h).toBeInstanceOf(FrameError);
      expect((caught as FrameError).category, h).toBe(category);
    }
  });

  it("accepts nesting up to 64 levels", () => {
    expect(() => decodeFrame(bytes("81a176" + "91".repeat(63) + "c0"))).not.toThrow();
  });
});

describe("JSON framing", () => {
  it("writes bytes as base64 and decodes only the schema's binary fields", () => {
    const wire = { type: "ai.speech.audio", id: "b1", entity: "npc", payload: { speech: "sp-1", seq: 0, t: 0, audio: Uint8Array.of(0, 1, 2, 250) } };
    const text = encodeFrame(wire, "json") as string;
    expect(JSON.parse(text).payload.audio).toBe("AAEC+g==");
    expect(decodeFrame(text)).toEqual(wire);
    const other = decodeFrame(JSON.stringify({ type: "ai.text", id: "b2", payload: { delta: "AAEC+g==", audio: "AAEC" } }));
    expect((other.payload as Record<string, unknown>).audio).toBe("AAEC");
  });

  it("refuses text that is not a JSON map", () => {
    expect(() => decodeFrame("[1,2]")).toThrow(FrameError);
    expect(() => decodeFrame("{nope")).toThrow(FrameError);
  });

  it("base64 agrees with Node's on every length", () => {
    for (let n = 0; n < 40; n++) {
      const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
      expect(toBase64(data)).toBe(Buffer.from(data).toString("base64"));
      expect(hex(fromBase64(toBase64(data)))).toBe(hex(data));
    }
    expect(() => fromBase64("A$==")).toThrow(FrameError);
  });
});

describe("hostile keys", () => {
  it("a long map key is checked and decoded without blowing the stack", () => {
    const key = "k".repeat(200_000);
    const frame = packValue({ [key]: 1.0, v: new Float64(2) });
    const value = decodeFrame(frame) as Record<string, number>;
    expect(value[key]).toBe(1);
    expect(hex(packValue(value))).toBe(hex(frame));
  });
});
