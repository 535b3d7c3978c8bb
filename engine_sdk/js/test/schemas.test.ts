/** The SDK's event types are generated from schemas/; this fails when the committed file is stale. */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EVENT_DIRECTIONS } from "../src/generated/protocol.js";
import { BRIDGE_REQUESTS } from "../src/client.js";
import { REPO, SDK_DIR } from "./live/bridge-process.js";

describe("schemas", () => {
  it("generated types are up to date with schemas/events", () => {
    expect(() => execFileSync(process.execPath, [join(SDK_DIR, "scripts", "gen-types.mjs"), "--check"], { stdio: "pipe" })).not.toThrow();
  });

  it("every schema's event type is known, with its direction", () => {
    const files = readdirSync(join(REPO, "schemas", "events")).map((f) => f.replace(/\.json$/, ""));
    expect(Object.keys(EVENT_DIRECTIONS).sort()).toEqual(files.sort());
    for (const type of BRIDGE_REQUESTS) expect(EVENT_DIRECTIONS[type]).toBe("bridge");
  });
});
