/**
 * EEP/1 framing: one event per WebSocket message, as a MessagePack map (binary) or JSON (text).
 *
 * MessagePack goes through @msgpack/msgpack, wrapped so that what reaches the game is what the
 * protocol allows and what leaves is the bridge's canonical encoding:
 * - every frame is checked first by validate.ts: extension types (timestamps included),
 *   non-string map keys, invalid UTF-8, nesting deeper than 64, trailing bytes and length
 *   prefixes that point past the end are refused with a FrameError, before any allocation;
 * - 64-bit integers decode to `bigint` only when they do not fit a safe JS number, and encode
 *   in the smallest form (the library writes every bigint as 64-bit, and every number above
 *   2^32 as a float when 64-bit support is on, so both are normalised before encoding).
 *
 * JavaScript has one number type: a float with an integral value (1.0) decodes to the number 1.
 * The decoder remembers (in a WeakMap beside the decoded containers) which numbers were floats,
 * so a decoded value re-encodes to the same bytes; in values the game builds, wrap a number in
 * {@link Float64} to force a float (the bridge accepts integers wherever a number is allowed).
 */
import { Decoder, Encoder, ExtData } from "@msgpack/msgpack";
import type { ExtensionCodecType } from "@msgpack/msgpack";
import { FrameError } from "./codec-error.js";
import { MAX_DEPTH, scanFrame, type PathKey } from "./validate.js";

export { FrameError, MAX_DEPTH };

export type Framing = "msgpack" | "json";

/** Fields that are bytes on the wire, per event type (base64 strings in the JSON framing). */
export const BINARY_FIELDS: Readonly<Record<string, readonly string[]>> = {
  "stt.audio": ["audio"],
  "stt.transcribe": ["audio"],
  "ai.speech.audio": ["audio"],
};

/** A wire map: the envelope of one event. */
export type Wire = Record<string, unknown>;

/** A number that must be written as a MessagePack float64 even when it is integral. */
export class Float64 {
  constructor(readonly value: number) {}
}

const refuseExtensions: ExtensionCodecType<undefined> = {
  tryToEncode(): ExtData | null {
    return null;
  },
  decode(_data: Uint8Array, extType: number): unknown {
    throw new FrameError("ext", `MessagePack extension type ${extType} is not allowed in EEP/1 frames`);
  },
};

const encoder = new Encoder({ useBigInt64: true, extensionCodec: refuseExtensions, ignoreUndefined: true });
// One decoder for the process: a new one per frame would rebuild its key cache every time.
// It is safe to share: decode() is synchronous and re-entrant calls get their own clone.
const decoder = new Decoder({ useBigInt64: true, extensionCodec: refuseExtensions });

/** Containers of decoded frames -> the keys whose numbers were floats on the wire. */
const FLOAT_MARKS = new WeakMap<object, Set<PathKey>>();

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const SAFE_MIN = BigInt(Number.MIN_SAFE_INTEGER);
const FLOAT_TAG = Symbol("float64");

/** Prepare a value for the library encoder: canonical integer forms, Float64 marked. */
function toEncodable(value: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) {
    throw new FrameError("depth", `value nests deeper than ${MAX_DEPTH} levels`);
  }
  if (typeof value === "bigint") {
    if (value >= SAFE_MIN && value <= SAFE_MAX) {
      return Number(value);
    }
    return value;
  }
  if (typeof value === "number") {
    if (Number.isSafeInteger(value) && (value >= 0x1_0000_0000 || value < -0x8000_0000)) {
      return BigInt(value);
    }
    return value;
  }
  if (value instanceof Float64) {
    return { [FLOAT_TAG]: value.value };
  }
  if (value === null || typeof value !== "object") {
    return value;
  }
  if (value instanceof Uint8Array) {
    return value;
  }
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  const marks = FLOAT_MARKS.get(value);
  const item = (key: PathKey, v: unknown): unknown =>
    marks !== undefined && typeof v === "number" && marks.has(key) ? { [FLOAT_TAG]: v } : toEncodable(v, depth + 1);
  if (Array.isArray(value)) {
    return value.map((v, i) => item(i, v));
  }
  if (value instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of value) {
      out[String(key)] = toEncodable(v, depth + 1);
    }
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
    if (v !== undefined) {
      out[key] = item(key, v);
    }
  }
  return out;
}

/** MessagePack bytes of a value, in the bridge's canonical form. */
export function packValue(value: unknown): Uint8Array {
  const prepared = toEncodable(value, 0);
  if (!containsFloatTag(prepared, 0)) {
    return encoder.encode(prepared);
  }
  return packWithFloats(prepared);
}

function containsFloatTag(value: unknown, depth: number): boolean {
  if (value === null || typeof value !== "object" || value instanceof Uint8Array || depth > MAX_DEPTH) {
    return false;
  }
  if (FLOAT_TAG in (value as object)) {
    return true;
  }
  const items = Array.isArray(value) ? value : Object.values(value as object);
  return items.some((item) => containsFloatTag(item, depth + 1));
}

/**
 * Rare path: a value holding Float64 wrappers. The library has no hook for "this number is a
 * float", so each wrapper is encoded with a placeholder integer that cannot collide and the
 * placeholder's bytes are swapped for a float64 afterwards.
 */
function packWithFloats(prepared: unknown): Uint8Array {
  const floats: number[] = [];
  const swap = (value: unknown): unknown => {
    if (value === null || typeof value !== "object" || value instanceof Uint8Array) {
      return value;
    }
    if (FLOAT_TAG in (value as object)) {
      floats.push((value as Record<symbol, number>)[FLOAT_TAG]!);
      return { __eb_float__: floats.length - 1 };
    }
    if (Array.isArray(value)) {
      return value.map(swap);
    }
    return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, swap(v)]));
  };
  const withMarkers = swap(prepared);
  const parts: Uint8Array[] = [];
  const write = (value: unknown): void => {
    if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
      const keys = Object.keys(value as object);
      if (keys.length === 1 && keys[0] === "__eb_float__" && !Array.isArray(value)) {
        const bytes = new Uint8Array(9);
        bytes[0] = 0xcb;
        new DataView(bytes.buffer).setFloat64(1, floats[(value as Record<string, number>).__eb_float__!]!);
        parts.push(bytes);
        return;
      }
      if (Array.isArray(value)) {
        parts.push(containerHeader(value.length, 0x90, 0xdc));
        value.forEach(write);
        return;
      }
      const entries = Object.entries(value as object);
      parts.push(containerHeader(entries.length, 0x80, 0xde));
      for (const [key, item] of entries) {
        parts.push(encoder.encode(key));
        write(item);
      }
      return;
    }
    parts.push(encoder.encode(value));
  };
  write(withMarkers);
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}

function containerHeader(length: number, fix: number, code16: number): Uint8Array {
  if (length < 16) {
    return Uint8Array.of(fix + length);
  }
  if (length < 0x10000) {
    return Uint8Array.of(code16, length >> 8, length & 0xff);
  }
  const bytes = new Uint8Array(5);
  bytes[0] = code16 + 1;
  new DataView(bytes.buffer).setUint32(1, length);
  return bytes;
}

/**
 * Decode one MessagePack frame (a map) to a value, refusing what EEP/1 refuses (validate.ts).
 * Throws FrameError; never allocates from an unchecked length prefix.
 */
export function unpackValue(bytes: Uint8Array): unknown {
  const { integralFloats } = scanFrame(bytes);
  let value: unknown;
  try {
    value = decoder.decode(bytes);
  } catch (error) {
    if (error instanceof FrameError) throw error;
    throw new FrameError("type", `cannot decode MessagePack frame: ${(error as Error).message}`);
  }
  value = normalise(value);
  for (const path of integralFloats) {
    let container = value as Record<PathKey, unknown>;
    for (const key of path.slice(0, -1)) {
      container = container[key] as Record<PathKey, unknown>;
    }
    const last = path[path.length - 1]!;
    let marks = FLOAT_MARKS.get(container);
    if (!marks) {
      marks = new Set();
      FLOAT_MARKS.set(container, marks);
    }
    marks.add(last);
  }
  return value;
}

/** Safe-range bigints back to numbers (the scan has bounded the depth). */
function normalise(value: unknown): unknown {
  if (typeof value === "bigint") {
    return value >= SAFE_MIN && value <= SAFE_MAX ? Number(value) : value;
  }
  if (value === null || typeof value !== "object" || value instanceof Uint8Array) {
    return value;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      value[i] = normalise(value[i]);
    }
    return value;
  }
  const map = value as Record<string, unknown>;
  for (const key of Object.keys(map)) {
    map[key] = normalise(map[key]);
  }
  return map;
}

// ------------------------------------------------------------------------ base64

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) {
  B64_INDEX[B64.charCodeAt(i)] = i;
}

/** Standard, padded base64 (the JSON framing's bytes). No atob/Buffer: runs in any engine. */
export function toBase64(bytes: Uint8Array): string {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + B64[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + "==";
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + B64[(n >> 6) & 63]! + "=";
  }
  return out;
}

export function fromBase64(text: string): Uint8Array {
  const clean = text.replace(/=+$/, "");
  if (clean.length % 4 === 1) {
    throw new FrameError("type", "invalid base64: wrong length");
  }
  const out = new Uint8Array(Math.floor((clean.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let pos = 0;
  for (let i = 0; i < clean.length; i++) {
    const code = clean.charCodeAt(i);
    const v = code < 128 ? B64_INDEX[code]! : -1;
    if (v < 0) {
      throw new FrameError("type", `invalid base64 character at ${i}`);
    }
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[pos++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

// ------------------------------------------------------------------------ frames

/** One event as a WebSocket message: bytes for MessagePack, text for JSON. */
export function encodeFrame(wire: Wire, framing: Framing): Uint8Array | string {
  if (framing === "msgpack") {
    return packValue(wire);
  }
  return JSON.stringify(wire, (_key, value: unknown) => {
    if (value instanceof Uint8Array) {
      return toBase64(value);
    }
    if (typeof value === "bigint") {
      return Number(value);
    }
    if (value instanceof Float64) {
      return value.value;
    }
    return value;
  });
}

/** Decode one WebSocket message to a wire map; throws FrameError for anything else. */
export function decodeFrame(data: Uint8Array | ArrayBuffer | string): Wire {
  let value: unknown;
  if (typeof data === "string") {
    try {
      value = JSON.parse(data);
    } catch (error) {
      throw new FrameError("type", `cannot decode JSON frame: ${(error as Error).message}`);
    }
  } else {
    value = unpackValue(data instanceof Uint8Array ? data : new Uint8Array(data));
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw new FrameError("type", "a frame must hold one map (the event)");
  }
  const wire = value as Wire;
  if (typeof data === "string") {
    const fields = BINARY_FIELDS[String(wire.type)];
    const payload = wire.payload;
    if (fields && payload && typeof payload === "object") {
      const map = payload as Record<string, unknown>;
      for (const name of fields) {
        if (typeof map[name] === "string") {
          map[name] = fromBase64(map[name] as string);
        }
      }
    }
  }
  return wire;
}
