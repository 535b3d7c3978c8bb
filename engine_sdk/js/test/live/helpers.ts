import { execFile } from "node:child_process";
import { inject } from "vitest";
import WebSocket from "ws";
import { BridgeClient, type ConnectOptions } from "../../src/index.js";
import { pythonPath, REPO } from "./bridge-process.js";
import { join } from "node:path";

export const url = (): string => inject("bridgeUrl");

/** A client on the shared test bridge, over Node's `ws` (Node 20 has no global WebSocket). */
export function connect(options: ConnectOptions = {}, target = url()): Promise<BridgeClient> {
  return BridgeClient.connect(target, { WebSocket: WebSocket as never, ...options });
}

/** `entity-bridge replay LOG --url URL`: exit status and output. */
export function replay(log: string, target = url()): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      pythonPath(),
      ["-m", "bridge.cli", "replay", log, "--url", target, "--timeout", "15"],
      { cwd: REPO, env: { ...process.env, PYTHONPATH: `${REPO}:${join(REPO, "engine_sdk", "python")}` }, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
