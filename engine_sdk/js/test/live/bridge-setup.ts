/** Vitest global setup: one real bridge with the SDK's test config for all live tests. */
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { SDK_DIR, startBridge, type RunningBridge } from "./bridge-process.js";

let bridge: RunningBridge | undefined;

export async function setup(project: TestProject): Promise<void> {
  bridge = await startBridge(join(SDK_DIR, "test-config", "bridge.toml"));
  project.provide("bridgeUrl", bridge.url);
}

export async function teardown(): Promise<void> {
  await bridge?.stop();
}

declare module "vitest" {
  export interface ProvidedContext {
    bridgeUrl: string;
  }
}
