/**
 * A structural check of a MessagePack frame before it is decoded: EEP/1 is stricter than
 * MessagePack, and @msgpack/msgpack accepts what the bridge refuses (integer map keys, invalid
 * UTF-8 replaced silently, any nesting depth, extension types decoded to objects).
 *
 * The check allocates nothing driven by the frame's length prefixes: every length is compared
 * with the bytes that are left before anything is read. It also notes where the frame holds a
 * float with an integral value (1.0): JavaScript decodes that to the number 1, and the codec
 * uses these notes to write it back as a float, so a decoded frame re-encodes to its bytes.
 */
import { FrameError } from "./codec-error.js";

export const MAX_DEPTH = 64;

export type PathKey = string | number;

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export interface ScanResult {
  /** Paths (keys from the top map down) of floats whose value is an integer. */
  integralFloats: PathKey[][];
}

/** Throws FrameError unless `bytes` is exactly one EEP/1-valid MessagePack map. */
export function scanFrame(bytes: Uint8Array): ScanResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  const path: PathKey[] = [];
  const integralFloats: PathKey[][] = [];
  let pos = 0;

  const need = (n: number, what: string): void => {
    if (pos + n > end) {
      throw new FrameError("truncated", `truncated MessagePack frame: ${what} needs ${n} more byte(s) at offset ${pos}, ${end - pos} left`);
    }
  };
  const length = (n: number, what: string): void => {
    if (n > end - pos) {
      throw new FrameError("length", `${what} of length ${n} at offset ${pos} points past the end of the frame (${end - pos} bytes left)`);
    }
  };
  const readLen = (size: 1 | 2 | 4): number => {
    need(size, "a length");
    const n = size === 1 ? view.getUint8(pos) : size === 2 ? view.getUint16(pos) : view.getUint32(pos);
    pos += size;
    return n;
  };
  /** Checks a string's bytes; returns its text only when `keep` (map keys, for the float paths). */
  const str = (n: number, keep = false): string => {
    length(n, "a string");
    let ascii = true;
    for (let i = pos; i < pos + n; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false;
        break;
      }
    }
    let text = "";
    if (ascii && keep && n <= 64) {
      text = String.fromCharCode(...bytes.subarray(pos, pos + n));
    } else if (!ascii || keep) {
      try {
        text = utf8.decode(bytes.subarray(pos, pos + n));
      } catch {
        throw new FrameError("utf8", `a string at offset ${pos} is not valid UTF-8`);
      }
    }
    pos += n;
    return text;
  };
  const float = (size: 4 | 8): void => {
    need(size, "a float");
    const value = size === 4 ? view.getFloat32(pos) : view.getFloat64(pos);
    pos += size;
    if (Number.isInteger(value) || Object.is(value, -0)) {
      integralFloats.push([...path]);
    }
  };

  /** Reads a map key, which EEP/1 requires to be a string. */
  const key = (): string => {
    need(1, "a map key");
    const b = view.getUint8(pos++);
    if (b >= 0xa0 && b <= 0xbf) return str(b & 0x1f, true);
    if (b === 0xd9) return str(readLen(1), true);
    if (b === 0xda) return str(readLen(2), true);
    if (b === 0xdb) return str(readLen(4), true);
    throw new FrameError("key", `map keys must be strings; found type byte 0x${b.toString(16)} at offset ${pos - 1}`);
  };

  const container = (count: number, isMap: boolean, depth: number): void => {
    if (depth > MAX_DEPTH) {
      throw new FrameError("depth", `frame nests deeper than ${MAX_DEPTH} levels`);
    }
    length(isMap ? count * 2 : count, isMap ? "a map" : "an array");
    for (let i = 0; i < count; i++) {
      path.push(isMap ? key() : i);
      value(depth);
      path.pop();
    }
  };

  const value = (depth: number): void => {
    need(1, "a value");
    const b = view.getUint8(pos++);
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return;
    if (b <= 0x8f) return container(b & 0x0f, true, depth + 1);
    if (b <= 0x9f) return container(b & 0x0f, false, depth + 1);
    if (b <= 0xbf) return void str(b & 0x1f);
    switch (b) {
      case 0xc1:
        throw new FrameError("reserved", `reserved type byte 0xc1 at offset ${pos - 1}`);
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = readLen(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
        length(n, "a bin value");
        pos += n;
        return;
      }
      case 0xc7:
      case 0xc8:
      case 0xc9:
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        throw new FrameError("ext", `MessagePack extension types are not allowed in EEP/1 frames (type byte 0x${b.toString(16)} at offset ${pos - 1})`);
      case 0xca:
        return float(4);
      case 0xcb:
        return float(8);
      case 0xcc:
      case 0xd0:
        need(1, "an integer");
        pos += 1;
        return;
      case 0xcd:
      case 0xd1:
        need(2, "an integer");
        pos += 2;
        return;
      case 0xce:
      case 0xd2:
        need(4, "an integer");
        pos += 4;
        return;
      case 0xcf:
      case 0xd3:
        need(8, "an integer");
        pos += 8;
        return;
      case 0xd9:
        return void str(readLen(1));
      case 0xda:
        return void str(readLen(2));
      case 0xdb:
        return void str(readLen(4));
      case 0xdc:
        return container(readLen(2), false, depth + 1);
      case 0xdd:
        return container(readLen(4), false, depth + 1);
      case 0xde:
        return container(readLen(2), true, depth + 1);
      case 0xdf:
        return container(readLen(4), true, depth + 1);
    }
    throw new FrameError("reserved", `unknown type byte 0x${b.toString(16)} at offset ${pos - 1}`);
  };

  if (end === 0) {
    throw new FrameError("truncated", "empty frame");
  }
  const first = view.getUint8(0);
  const isMap = (first >= 0x80 && first <= 0x8f) || first === 0xde || first === 0xdf;
  value(0);
  if (pos !== end) {
    throw new FrameError("trailing", `${end - pos} byte(s) after the frame's map`);
  }
  if (!isMap) {
    throw new FrameError("not_map", "a frame must hold one map (the event)");
  }
  return { integralFloats };
}
