/**
 * The shared corpus (tests/conformance/): every golden frame decodes to its typed value,
 * canonical ones re-encode byte-identically, non-canonical ones re-encode to the canonical
 * bytes (computed here from the typed tree by a small reference writer), the JSON form means
 * the same event, and every frames_bad entry is refused with a FrameError.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeFrame, FrameError, packValue } from "../src/codec.js";
import { REPO } from "./live/bridge-process.js";

type Tree = [string, ...unknown[]];
interface Golden { name: string; msgpack: string; value: Tree; canonical: boolean; json?: string }
interface Bad { name: string; msgpack: string; error: string }

const dir = join(REPO, "tests", "conformance");
const haveCorpus = existsSync(join(dir, "frames.json")) && existsSync(join(dir, "frames_bad.json"));
if (!haveCorpus) {
  console.log("conformance: waiting for tests/conformance/frames.json (not on this checkout); corpus tests not run");
}
const golden: Golden[] = haveCorpus ? JSON.parse(readFileSync(join(dir, "frames.json"), "utf8")).frames : [];
const bad: Bad[] = haveCorpus ? JSON.parse(readFileSync(join(dir, "frames_bad.json"), "utf8")).frames : [];
const bytes = (h: string) => new Uint8Array(Buffer.from(h, "hex"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** Why `value` does not match `tree`, or null when it does. */
function mismatch(tree: Tree, value: unknown, at = "$"): string | null {
  const [kind, body] = tree;
  switch (kind) {
    case "nil":
      return value === null ? null : `${at}: expected nil`;
    case "bool":
      return value === body ? null : `${at}: expected ${body}`;
    case "int":
      return (typeof value === "number" && Number.isSafeInteger(value) && String(value) === body) ||
        (typeof value === "bigint" && value.toString() === body)
        ? null
        : `${at}: expected int ${body}, got ${String(value)}`;
    case "float":
      return typeof value === "number" && Object.is(value, body) ? null : `${at}: expected float ${body}, got ${String(value)}`;
    case "str":
      return value === body ? null : `${at}: expected str`;
    case "bin":
      return value instanceof Uint8Array && hex(value) === body ? null : `${at}: expected bin`;
    case "array": {
      const items = body as Tree[];
      if (!Array.isArray(value) || value.length !== items.length) return `${at}: expected array of ${items.length}`;
      for (let i = 0; i < items.length; i++) {
        const m = mismatch(items[i]!, value[i], `${at}[${i}]`);
        if (m) return m;
      }
      return null;
    }
    case "map": {
      const pairs = body as Array<[Tree, Tree]>;
      if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) return `${at}: expected map`;
      const keys = Object.keys(value);
      const want = pairs.map(([k]) => k[1] as string);
      if (keys.join("\u0000") !== want.join("\u0000")) return `${at}: keys ${keys} != ${want}`;
      for (const [k, v] of pairs) {
        const m = mismatch(v, (value as Record<string, unknown>)[k[1] as string], `${at}.${k[1]}`);
        if (m) return m;
      }
      return null;
    }
  }
  return `${at}: unknown tree kind ${kind}`;
}

/** Reference canonical writer over the typed tree (msgpack.packb(use_bin_type=True)). */
function canonical(tree: Tree): number[] {
  const [kind, body] = tree;
  const be = (n: bigint, size: number) => Array.from({ length: size }, (_, i) => Number((n >> BigInt(8 * (size - 1 - i))) & 0xffn));
  const len = (n: number, fix: number | null, fixMax: number, codes: number[]) => {
    if (fix !== null && n <= fixMax) return [fix + n];
    if (codes[0] !== undefined && n < 0x100) return [codes[0], n];
    if (n < 0x10000) return [codes[1]!, ...be(BigInt(n), 2)];
    return [codes[2]!, ...be(BigInt(n), 4)];
  };
  switch (kind) {
    case "nil":
      return [0xc0];
    case "bool":
      return [body ? 0xc3 : 0xc2];
    case "int": {
      const n = BigInt(body as string);
      if (n >= 0n) {
        if (n < 128n) return [Number(n)];
        if (n < 0x100n) return [0xcc, Number(n)];
        if (n < 0x10000n) return [0xcd, ...be(n, 2)];
        if (n < 0x100000000n) return [0xce, ...be(n, 4)];
        return [0xcf, ...be(n, 8)];
      }
      const u = (bits: number) => (1n << BigInt(bits)) + n;
      if (n >= -32n) return [Number(u(8))];
      if (n >= -128n) return [0xd0, Number(u(8))];
      if (n >= -32768n) return [0xd1, ...be(u(16), 2)];
      if (n >= -2147483648n) return [0xd2, ...be(u(32), 4)];
      return [0xd3, ...be(u(64), 8)];
    }
    case "float": {
      const b = new DataView(new ArrayBuffer(8));
      b.setFloat64(0, body as number);
      return [0xcb, ...new Uint8Array(b.buffer)];
    }
    case "str": {
      const data = [...new TextEncoder().encode(body as string)];
      return [...len(data.length, 0xa0, 31, [0xd9, 0xda, 0xdb]), ...data];
    }
    case "bin": {
      const data = [...bytes(body as string)];
      return [...len(data.length, null, -1, [0xc4, 0xc5, 0xc6]), ...data];
    }
    case "array": {
      const items = body as Tree[];
      return [...len(items.length, 0x90, 15, [undefined as unknown as number, 0xdc, 0xdd]), ...items.flatMap(canonical)];
    }
    case "map": {
      const pairs = body as Array<[Tree, Tree]>;
      return [...len(pairs.length, 0x80, 15, [undefined as unknown as number, 0xde, 0xdf]), ...pairs.flatMap(([k, v]) => [...canonical(k), ...canonical(v)])];
    }
  }
  throw new Error(`unknown tree kind ${kind}`);
}

describe.runIf(haveCorpus)("conformance corpus", () => {
  it("has frames to check", () => {
    expect(golden.length).toBeGreaterThan(50);
    expect(bad.length).toBeGreaterThan(20);
  });

  it("decodes every golden frame to its typed value", () => {
    const failures = golden.map((f) => [f.name, mismatch(f.value, decodeFrame(bytes(f.msgpack)))] as const).filter(([, m]) => m);
    expect(failures).toEqual([]);
  });

  it("re-encodes canonical frames byte-identically, the others canonically", () => {
    const failures: string[] = [];
    for (const f of golden) {
      const again = hex(packValue(decodeFrame(bytes(f.msgpack))));
      const want = f.canonical ? f.msgpack : hex(Uint8Array.from(canonical(f.value)));
      if (f.canonical && hex(Uint8Array.from(canonical(f.value))) !== f.msgpack) failures.push(`${f.name}: corpus bytes are not canonical per the reference writer`);
      if (again !== want) failures.push(`${f.name}: ${again.slice(0, 80)} != ${want.slice(0, 80)}`);
    }
    expect(failures).toEqual([]);
  });

  it("reads the JSON form of every event frame as the same event", () => {
    const withJson = golden.filter((f) => f.json !== undefined);
    expect(withJson.length).toBeGreaterThan(20);
    for (const f of withJson) {
      const fromJson = decodeFrame(f.json!);
      const fromPack = decodeFrame(bytes(f.msgpack));
      expect(fromJson, f.name).toEqual(fromPack);
    }
  });

  it("refuses every frames_bad entry with a FrameError, quickly", () => {
    const failures: string[] = [];
    const started = performance.now();
    for (const f of bad) {
      try {
        decodeFrame(bytes(f.msgpack));
        failures.push(`${f.name}: accepted`);
      } catch (error) {
        if (!(error instanceof FrameError)) failures.push(`${f.name}: ${String(error)}`);
      }
    }
    expect(failures).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});
