/** The bundle the bridge serves at /console/entity-bridge.js is the one this SDK builds. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO, SDK_DIR } from "./live/bridge-process.js";

describe("console bundle", () => {
  it("the committed copy in bridge/server/console/ equals dist/entity-bridge.js (run `npm run bundle:console`)", () => {
    const built = readFileSync(join(SDK_DIR, "dist", "entity-bridge.js"), "utf8");
    const served = readFileSync(join(REPO, "bridge", "server", "console", "entity-bridge.js"), "utf8");
    expect(served.length).toBe(built.length);
    expect(served === built).toBe(true);
  });
});
