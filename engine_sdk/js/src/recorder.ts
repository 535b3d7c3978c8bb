/**
 * Session recording in the Python SDK's log format (engine_sdk/python/entity_bridge_sdk/
 * recorder.py), so that `entity-bridge replay session.log` plays a browser session back:
 *
 *     {"t_ms": 0, "dir": "meta", "framing": "msgpack"}
 *     {"t_ms": 12.5, "dir": "out", "event": {...}}
 *
 * one JSON object a line, bytes as {"$bin": "<base64>"}.
 */
import { fromBase64, toBase64, type Framing, type Wire } from "./codec.js";

export type Direction = "in" | "out";

export interface LogRecord {
  t_ms: number;
  dir: Direction | "meta";
  event?: Wire;
  framing?: Framing;
}

function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return { $bin: toBase64(value) };
  }
  if (typeof value === "bigint") {
    return Number(value);
  }
  if (Array.isArray(value)) {
    return value.map(toJson);
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) {
        out[key] = toJson(item);
      }
    }
    return out;
  }
  return value;
}

function fromJson(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(fromJson);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bin") {
      return fromBase64(String((value as Record<string, unknown>).$bin));
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromJson(v)]));
  }
  return value;
}

/** Collects every frame of a session with its time; `toText()` is the log file. */
export class SessionRecorder {
  private readonly lines: string[];
  private readonly start: number;

  constructor(
    readonly framing: Framing = "msgpack",
    private readonly now: () => number = () => performance.now(),
  ) {
    this.start = now();
    this.lines = [JSON.stringify({ t_ms: 0, dir: "meta", framing })];
  }

  write(dir: Direction, wire: Wire): void {
    const t = Math.round((this.now() - this.start) * 1000) / 1000;
    this.lines.push(JSON.stringify({ t_ms: t, dir, event: toJson(wire) }));
  }

  get count(): number {
    return this.lines.length - 1;
  }

  toText(): string {
    return this.lines.join("\n") + "\n";
  }
}

/** The records of a log, bytes restored (the inverse of SessionRecorder.toText). */
export function readLog(text: string): LogRecord[] {
  const records: LogRecord[] = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) {
      return;
    }
    let record: LogRecord;
    try {
      record = JSON.parse(line) as LogRecord;
    } catch (error) {
      throw new Error(`line ${index + 1}: not a JSON line: ${(error as Error).message}`);
    }
    if (record.event) {
      record.event = fromJson(record.event) as Wire;
    }
    records.push(record);
  });
  return records;
}
