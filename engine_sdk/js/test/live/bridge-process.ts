/**
 * Starts a real `entity-bridge serve` (the bridge of this checkout: `python -m bridge.cli`
 * with the repository on PYTHONPATH) on 127.0.0.1, port 0, and reads its URL from the port
 * file. Used by the live tests' global setup and by the browser tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const REPO = resolve(SDK_DIR, "..", "..");

export function pythonPath(): string {
  const candidates = [process.env.EB_PYTHON, join(REPO, ".venv", "bin", "python"), "/work/main/.venv/bin/python"];
  const found = candidates.find((p) => p && existsSync(p));
  if (!found) throw new Error(`no Python for the bridge: set EB_PYTHON (tried ${candidates.filter(Boolean).join(", ")})`);
  return found;
}

export interface RunningBridge {
  url: string;
  http: string;
  process: ChildProcess;
  log: () => string;
  stop: () => Promise<void>;
}

export async function startBridge(config: string, extraEnv: Record<string, string> = {}): Promise<RunningBridge> {
  const dir = mkdtempSync(join(tmpdir(), "eb-js-"));
  const portFile = join(dir, "url");
  let output = "";
  const child = spawn(
    pythonPath(),
    ["-m", "bridge.cli", "serve", "--config", config, "--port", "0", "--port-file", portFile, "--exit-on-stdin-eof"],
    {
      cwd: REPO,
      env: { ...process.env, PYTHONPATH: `${REPO}:${join(REPO, "engine_sdk", "python")}`, ...extraEnv },
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!existsSync(portFile) || !readFileSync(portFile, "utf8").trim()) {
    if (child.exitCode !== null) throw new Error(`bridge exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`bridge did not start within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = readFileSync(portFile, "utf8").trim();
  return {
    url,
    http: url.replace(/^ws:/, "http:"),
    process: child,
    log: () => output,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.stdin!.end();
        child.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill("SIGKILL");
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
