/**
 * The dev console in a real browser: Debian's Chromium, headless, driven by playwright-core,
 * against a real `entity-bridge serve` (test-config/bridge.toml: scripted characters and the
 * espeak voice) serving /console on its own port. Screenshots go to build/screenshots/.
 */
import { createServer, type Server } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SDK_DIR, startBridge, type RunningBridge } from "../test/live/bridge-process.js";
import { replay } from "../test/live/helpers.js";

const SHOTS = join(SDK_DIR, "build", "screenshots");
const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--autoplay-policy=no-user-gesture-required",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
];

let bridge: RunningBridge;
let browser: Browser;

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  bridge = await startBridge(join(SDK_DIR, "test-config", "bridge.toml"));
  browser = await chromium.launch({ executablePath: process.env.EB_CHROMIUM ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS });
});
afterAll(async () => {
  await browser?.close();
  await bridge?.stop();
});

/** A fresh page on the console, with every console error and page error collected. */
async function openConsole(base = bridge.http): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1100 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`${base}/console`);
  await page.waitForFunction(() => document.body.dataset.state === "idle");
  return { page, errors };
}

async function connectAndInit(page: Page, character: string, entity = "console-1"): Promise<void> {
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.waitForFunction(() => document.body.dataset.state === "connected");
  await page.getByLabel("Entity name").fill(entity);
  await page.getByLabel("Character", { exact: true }).selectOption(character);
  await page.getByRole("button", { name: "Create entity" }).click();
  await page.waitForFunction(() => document.body.dataset.state === "entity-ready");
}

async function say(page: Page, line: string): Promise<void> {
  await page.getByLabel("Say").fill(line);
  await page.getByLabel("Say").press("Enter");
}

describe("the console", () => {
  it("talks to a speaking character: streamed reply, audio, moving mouth, expression, inspector", async () => {
    const { page, errors } = await openConsole();
    await page.screenshot({ path: join(SHOTS, "01-idle.png") });
    await connectAndInit(page, "speaker", "mira-1");
    const chars = await page.locator("#characters li").allTextContents();
    expect(chars.sort()).toEqual(["actor", "echo", "listener", "slowpoke", "speaker"]);

    await say(page, "Hello there!");
    // Streamed: the reply grows over several ai.text frames before the turn ends.
    await page.waitForFunction(() => document.querySelector("#chat .character .said")?.textContent?.includes("Hello there, traveller!"));
    const mouth: number[] = [];
    const emotions = new Set<string>();
    const started = Date.now();
    let finished = false;
    while (Date.now() - started < 20_000) {
      const s = await page.evaluate(() => ({
        open: Number(document.getElementById("face")!.dataset.mouthOpen),
        emotion: document.getElementById("face")!.dataset.emotion!,
        playing: (window as any).consoleState.speech.player.playing as boolean,
        done: (window as any).consoleState.turns.size > 0 && [...(window as any).consoleState.turns.values()].every((t: any) => t.end !== undefined),
      }));
      mouth.push(s.open);
      emotions.add(s.emotion);
      if (mouth.length === 15) await page.screenshot({ path: join(SHOTS, "02-speaking.png") });
      if (s.done && !s.playing && mouth.length > 20) {
        finished = true;
        break;
      }
      await page.waitForTimeout(40);
    }
    expect(finished).toBe(true);
    await page.waitForTimeout(400); // past the release of the last viseme
    const rest = Number(await page.locator("#face").getAttribute("data-mouth-open"));
    const audio = await page.evaluate(() => {
      const st = (window as any).consoleState;
      return { scheduled: st.speech.player.samplesScheduled, received: st.samplesReceived, maxPeak: st.maxPeak, ctxTime: st.audio.currentTime };
    });
    await page.screenshot({ path: join(SHOTS, "03-after-reply.png"), fullPage: true });

    expect(audio.received).toBeGreaterThan(24000); // more than a second of 24 kHz speech
    expect(audio.scheduled).toBe(audio.received); // every sample the bridge sent reached the AudioContext
    expect(audio.maxPeak).toBeGreaterThan(0.05); // and the graph rendered sound (AnalyserNode)
    expect(Math.max(...mouth)).toBeGreaterThan(0.3);
    expect(new Set(mouth.map((m) => m.toFixed(2))).size).toBeGreaterThan(5); // it moved, not one shape
    expect(rest).toBe(0);
    expect(emotions.has("happy")).toBe(true);
    const chat = await page.locator("#chat").textContent();
    expect(chat).toContain("*waves*");
    expect(chat).toContain("happy (smile_big)");

    // Inspector: every frame both ways; filter; expand; copy as JSON.
    const rows = await page.locator("#frames tr[data-type]").count();
    const textFrames = await page.evaluate(() => (window as any).consoleState.frames.filter((f: any) => f.wire.type === "ai.text").length);
    expect(textFrames).toBeGreaterThan(3);
    expect(rows).toBeGreaterThan(30);
    await page.getByLabel("Filter (type or entity)").fill("ai.text");
    await page.waitForFunction((n) => document.querySelectorAll("#frames tr[data-type]").length === n, textFrames);
    const types = await page.locator("#frames tr[data-type]").evaluateAll((trs) => trs.map((t) => t.getAttribute("data-type")));
    expect(new Set(types)).toEqual(new Set(["ai.text"]));
    await page.locator("#frames tr[data-type] button", { hasText: "Expand" }).first().click();
    const detail = await page.locator("#frames tr.detail pre").first().textContent();
    expect(JSON.parse(detail!)).toMatchObject({ type: "ai.text", entity: "mira-1" });
    await page.locator("#frames tr[data-type] button", { hasText: "Copy" }).first().click();
    // The copy handler awaits the clipboard first: wait for it rather than reading at once.
    const copied = (await (await page.waitForFunction(() => (window as any).consoleState.lastCopied as string | undefined)).jsonValue()) as string;
    expect(JSON.parse(copied).type).toBe("ai.text");
    await page.getByLabel("Filter (type or entity)").fill("");
    await page.getByLabel("hide audio chunks").check();
    await page.locator("#inspector-panel").screenshot({ path: join(SHOTS, "04-inspector.png") });
    await page.locator("#timeline-panel").screenshot({ path: join(SHOTS, "05-timeline.png") });
    await page.locator("#health-panel").screenshot({ path: join(SHOTS, "06-health.png") });
    const timeline = await page.locator("#timeline li").first().textContent();
    expect(timeline).toMatch(/first audio \d+ ms/);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("downloads a session log that `entity-bridge replay` plays back with no difference", async () => {
    const { page, errors } = await openConsole();
    await connectAndInit(page, "echo", "echo-1");
    await say(page, "Record this line");
    await page.waitForFunction(() => document.querySelector("#chat .character .said")?.textContent === "You said: Record this line");
    await page.waitForFunction(() => [...(window as any).consoleState.turns.values()].every((t: any) => t.end !== undefined));
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download session log" }).click()]);
    const dir = mkdtempSync(join(tmpdir(), "eb-console-log-"));
    const log = join(dir, "session.log");
    await download.saveAs(log);
    const lines = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ t_ms: 0, dir: "meta", framing: "msgpack" });
    expect(lines.filter((l) => l.dir === "out").map((l) => l.event.type)).toEqual(["session.hello", "entity.init", "user.utterance"]);
    const result = await replay(log, bridge.url);
    expect(result.output).toContain("no differences");
    expect(result.code).toBe(0);
    expect(errors).toEqual([]);
    await page.context().close();
  });

  it("serves the health panel from /health and /modules, without secrets", async () => {
    const { page, errors } = await openConsole();
    await page.waitForSelector("#health table");
    const text = await page.locator("#health").textContent();
    expect(text).toContain("espeak");
    expect(text).toContain("reachable");
    const modules = await (await fetch(`${bridge.http}/modules`)).json();
    expect(modules.token_required).toBe(false);
    expect(modules.characters.speaker).toMatchObject({ llm: "scripted", tts: "voice" });
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe("accessibility", () => {
  it("every control has an accessible name, and the keyboard alone connects, creates an entity and talks", async () => {
    const { page, errors } = await openConsole();
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll("input, select, button, textarea")]
        .filter((c) => !(c as HTMLElement).closest("[hidden]"))
        .filter((c) => {
          const labelled = (c as HTMLInputElement).labels?.length || c.getAttribute("aria-label") || c.getAttribute("aria-labelledby");
          const text = c.tagName === "BUTTON" && c.textContent!.trim();
          return !labelled && !text;
        })
        .map((c) => c.id || c.outerHTML.slice(0, 60)),
    );
    expect(unnamed).toEqual([]);
    // Framing select, then Connect: Tab, Tab, Enter.
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("framing");
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("connect");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.body.dataset.state === "connected");
    await page.focus("#entity-name");
    await page.keyboard.press("Enter"); // submits the entity form with the default character
    await page.waitForFunction(() => document.body.dataset.state === "entity-ready");
    expect(await page.evaluate(() => document.activeElement?.id)).toBe("line"); // focus moves to the chat line
    await page.keyboard.type("Hello by keyboard");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.querySelectorAll("#chat .character .said").length === 1 && document.querySelector("#chat .character .said")!.textContent!.length > 5);
    expect(await page.getAttribute("#chat", "role")).toBe("log");
    expect(await page.getAttribute("#status", "aria-live")).toBe("polite");
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe("movement actions", () => {
  it("shows and acknowledges the bridge's movement.perform, and the turn reports it performed", async () => {
    const { page, errors } = await openConsole();
    await connectAndInit(page, "actor", "guard-1");
    await page.evaluate(() =>
      (window as any).consoleState.entity.request("movement.actions", {
        actions: [{ name: "open_gate", description: "Open the gate", params: { gate: { type: "string" } } }],
      }),
    );
    await say(page, "Open the north gate!");
    await page.waitForFunction(() => document.querySelector("#chat")!.textContent!.includes("movement.perform: open_gate"));
    await page.waitForFunction(() => [...(window as any).consoleState.turns.values()].every((t: any) => t.end !== undefined));
    const reply = await page.evaluate(() =>
      (window as any).consoleState.frames.find((f: any) => f.dir === "in" && f.wire.type === "user.utterance" && f.wire.status === "success").wire.payload,
    );
    expect(reply.performed).toEqual([expect.objectContaining({ name: "open_gate", args: { gate: "north" }, status: "success" })]);
    expect(await page.locator("#chat").textContent()).toContain('open_gate {"gate":"north"}');
    expect(errors).toEqual([]);
    await page.context().close();
  });
});

describe("origins", () => {
  let other: Server;
  let otherUrl: string;
  beforeAll(async () => {
    // A page on another origin (another port of 127.0.0.1) that tries the bridge's socket.
    other = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "text/html" });
      res.end(`<!doctype html><title>other</title><script>
        const ws = new WebSocket(${JSON.stringify(bridge.url)});
        ws.onopen = () => (document.title = "open");
        ws.onclose = (e) => (document.title = "closed " + e.code);
      </script>`);
    });
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
    otherUrl = `http://127.0.0.1:${(other.address() as { port: number }).port}/`;
  });
  afterAll(() => new Promise<void>((r) => other.close(() => r())));

  it("refuses a page from another origin, and admits the console under its loopback names", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(otherUrl);
    await page.waitForFunction(() => document.title.startsWith("closed") || document.title === "open");
    expect(await page.title()).toBe("closed 1006");
    expect(bridge.log()).toContain(`refused a connection from origin ${otherUrl.replace(/\/$/, "")}`);
    await context.close();

    const port = new URL(bridge.http).port;
    const { page: viaLocalhost, errors } = await openConsole(`http://localhost:${port}`);
    await viaLocalhost.getByRole("button", { name: "Connect", exact: true }).click();
    await viaLocalhost.waitForFunction(() => document.body.dataset.state === "connected");
    expect(errors).toEqual([]);
    await viaLocalhost.context().close();
  });

  it("does not serve the console to a foreign Host (DNS rebinding)", async () => {
    const port = new URL(bridge.http).port;
    const response = await new Promise<number>((resolve, reject) => {
      import("node:http").then(({ request }) => {
        const req = request({ host: "127.0.0.1", port, path: "/console", headers: { Host: `evil.example:${port}` } }, (res) => resolve(res.statusCode ?? 0));
        req.on("error", reject);
        req.end();
      });
    });
    expect(response).toBe(403);
  });
});

describe("a bridge with a token", () => {
  let guarded: RunningBridge;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), "eb-token-"));
    const config = join(dir, "bridge.toml");
    writeFileSync(config, readFileSync(join(SDK_DIR, "test-config", "bridge.toml"), "utf8").replace('[server]\n', '[server]\ntoken = "s3cret-console"\n'));
    guarded = await startBridge(config);
  });
  afterAll(() => guarded?.stop());

  it("asks for the token, refuses a wrong one, connects with the right one", async () => {
    const { page, errors } = await openConsole(guarded.http);
    await page.waitForSelector("#token-field:not([hidden])");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.waitForFunction(() => document.body.dataset.state === "unauthorized");
    await page.getByLabel("Token").fill("wrong");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.waitForFunction(() => document.body.dataset.state === "unauthorized" && document.getElementById("status")!.textContent!.includes("refused"));
    await page.getByLabel("Token").fill("s3cret-console");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.waitForFunction(() => document.body.dataset.state === "connected");
    await page.screenshot({ path: join(SHOTS, "07-token.png") });
    const modules = await (await fetch(`${guarded.http}/modules`)).text();
    expect(modules).not.toContain("s3cret");
    // The bridge answers a bad token by closing the socket; the browser logs that once per try.
    expect(errors.filter((e) => !/WebSocket|1008|unauthorized/i.test(e))).toEqual([]);
    await page.context().close();
  });
});

describe("the microphone", () => {
  let micBrowser: Browser;
  let wav: string;
  const LINE = "Do you have a room for the night?";

  beforeAll(async () => {
    // The bridge's own espeak voice says the line; Chromium's fake capture device plays that
    // file as the microphone (16-bit mono WAV, with silence around the speech for the VAD).
    const WebSocket = (await import("ws")).default;
    const { BridgeClient } = await import("../src/index.js");
    const client = await BridgeClient.connect(bridge.url, { WebSocket: WebSocket as never, audioOut: { sample_rate: 16000, chunk_ms: 40, lead_ms: 0 } });
    const voice = await client.initEntity("voice-1", "speaker");
    const turn = await voice.speak(LINE);
    await client.close();
    const chunks = turn.events.filter((e) => e.type === "ai.speech.audio").map((e) => e.payload!.audio as Uint8Array);
    const silence = new Uint8Array(16000 * 2); // 1 s
    const pcm = Buffer.concat([silence, ...chunks, silence, silence]);
    const header = Buffer.alloc(44);
    header.write("RIFF", 0);
    header.writeUInt32LE(36 + pcm.length, 4);
    header.write("WAVEfmt ", 8);
    header.writeUInt32LE(16, 16);
    header.writeUInt16LE(1, 20);
    header.writeUInt16LE(1, 22);
    header.writeUInt32LE(16000, 24);
    header.writeUInt32LE(32000, 28);
    header.writeUInt16LE(2, 32);
    header.writeUInt16LE(16, 34);
    header.write("data", 36);
    header.writeUInt32LE(pcm.length, 40);
    wav = join(mkdtempSync(join(tmpdir(), "eb-mic-")), "line.wav");
    writeFileSync(wav, Buffer.concat([header, pcm]));
    micBrowser = await chromium.launch({
      executablePath: process.env.EB_CHROMIUM ?? "/usr/bin/chromium",
      headless: true,
      args: [...CHROMIUM_FLAGS, `--use-file-for-fake-audio-capture=${wav}`],
    });
  });
  afterAll(() => micBrowser?.close());

  it("streams 20 ms stt.audio frames in VAD mode: speech markers, the transcript and a reply", async () => {
    const context = await micBrowser.newContext({ viewport: { width: 1280, height: 1100 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
    page.on("pageerror", (error) => errors.push(String(error)));
    await page.goto(`${bridge.http}/console`);
    await page.waitForFunction(() => document.body.dataset.state === "idle");
    await connectAndInit(page, "listener", "ear-1");
    await page.getByLabel("Microphone", { exact: true }).selectOption("vad");
    await page.getByRole("button", { name: "Start / stop listening" }).click();
    await page.waitForFunction(() => document.querySelector("#chat")!.textContent!.includes("speech stopped"), undefined, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelector("#chat .character .said")?.textContent?.startsWith("You said:"), undefined, { timeout: 30_000 });
    await page.getByRole("button", { name: "Start / stop listening" }).click();
    await page.screenshot({ path: join(SHOTS, "08-microphone.png") });
    const sent = await page.evaluate(() =>
      (window as any).consoleState.frames.filter((f: any) => f.dir === "out" && f.wire.type === "stt.audio").map((f: any) => ({ seq: f.wire.payload.seq, bytes: f.wire.payload.audio.byteLength })),
    );
    expect(sent.length).toBeGreaterThan(50); // over a second of audio
    expect(sent.every((f: { bytes: number }) => f.bytes === 640)).toBe(true); // 20 ms at 16 kHz, 16-bit
    expect(sent.map((f: { seq: number }) => f.seq)).toEqual(sent.map((_: unknown, i: number) => i));
    const chat = await page.locator("#chat").textContent();
    expect(chat).toMatch(/speech started at \d+ ms/);
    const heard = await page.locator("#chat .player").last().textContent();
    expect(heard).toMatch(/you \(mic\):\s*\S+/);
    const refused = await page.evaluate(() => (window as any).consoleState.frames.filter((f: any) => f.dir === "in" && f.wire.type === "stt.audio").length);
    expect(refused).toBe(0); // stt.audio is answered only when it fails
    expect(errors).toEqual([]);
    await context.close();
  });
});
