/** The SDK against a real `entity-bridge serve` (test-config/bridge.toml) over real WebSockets. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  BridgeClient,
  BridgeError,
  ConnectionLost,
  EntitySpeech,
  ofType,
  RequestTimeout,
  SessionRecorder,
  type BridgeEvent,
} from "../../src/index.js";
import { connect, replay, sleep } from "./helpers.js";

const open: BridgeClient[] = [];
async function client(options: Parameters<typeof connect>[0] = {}): Promise<BridgeClient> {
  const c = await connect(options);
  open.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

describe.each(["msgpack", "json"] as const)("a session in %s framing", (framing) => {
  it("says hello and lists the configured characters", async () => {
    const bridge = await client({ framing });
    expect(bridge.hello.protocol).toBe(1);
    expect([...(bridge.hello.characters as string[])].sort()).toEqual(["actor", "echo", "listener", "slowpoke", "speaker"]);
    expect(bridge.hello.audio_out?.sample_rate).toBe(24000);
  });

  it("streams a reply's text deltas and resolves with the final reply", async () => {
    const bridge = await client({ framing });
    const npc = await bridge.initEntity("npc-1", "echo");
    expect(npc.info.character).toBe("echo");
    const streamed: string[] = [];
    npc.on((e) => {
      if (e.type === "ai.text") streamed.push(String(e.payload!.delta));
    });
    const turn = await npc.say("Good morning");
    expect(turn.reply.status).toBe("success");
    expect(turn.reply.payload.reply).toBe("You said: Good morning");
    expect(streamed.join("")).toBe("You said: Good morning");
    expect(ofType(turn, "ai.text").map((e) => e.payload!.delta).join("")).toBe("You said: Good morning");
    expect(turn.events.every((e) => e.ref === turn.reply.id)).toBe(true);
  });
});

describe("requests", () => {
  it("rejects with the protocol's code and message", async () => {
    const bridge = await client();
    const error = await bridge.initEntity("npc-x", "ghost").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BridgeError);
    expect((error as BridgeError).code).toBe("unknown_character");
    expect((error as BridgeError).detail).toContain("echo");
    const unknown = await bridge.request("user.utterance", { kind: "verbal", text: "hi" }, { entity: "nobody" }).catch((e: unknown) => e);
    expect((unknown as BridgeError).code).toBe("unknown_entity");
    const soft = await bridge.request("entity.init", { character: "ghost" }, { entity: "npc-y", check: false });
    expect(soft.status).toBe("error");
  });

  it("tracks open requests and their pending reply", async () => {
    const bridge = await client();
    const npc = await bridge.initEntity("slow-1", "slowpoke");
    const id = npc.startSay("Tell me a story");
    expect(bridge.pending.get(id)?.type).toBe("user.utterance");
    const started = Date.now();
    while (!bridge.pending.get(id)?.started && Date.now() - started < 5000) await sleep(10);
    expect(bridge.pending.get(id)?.started).toBe(true);
    await bridge.wait(id);
    expect(bridge.pending.has(id)).toBe(false);
  });

  it("times out a request that gets no final reply in time", async () => {
    const bridge = await client();
    const npc = await bridge.initEntity("slow-2", "slowpoke");
    const error = await npc.say("Talk for a while", "verbal", { timeoutMs: 50 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RequestTimeout);
  });

  it("gets an error event for a frame the bridge cannot decode, and carries on", async () => {
    const bridge = await client();
    const errors: BridgeEvent[] = [];
    bridge.on((e) => e.type === "error" && errors.push(e));
    bridge.sendRaw(Uint8Array.of(0xc1));
    const npc = await bridge.initEntity("npc-2", "echo");
    await npc.say("still here?");
    expect(errors.map((e) => e.payload!.code)).toEqual(["bad_frame"]);
  });

  it("closes cleanly; a request still open rejects with ConnectionLost", async () => {
    const bridge = await connect();
    const npc = await bridge.initEntity("slow-3", "slowpoke");
    const turn = npc.say("A long answer, please");
    await sleep(30);
    await bridge.close();
    await expect(turn).rejects.toBeInstanceOf(ConnectionLost);
    expect(bridge.state).toBe("closed");
    expect(() => bridge.send("scene.loaded")).toThrow(ConnectionLost);
  });
});

describe("streams", () => {
  it("an entity's event iterator yields its events in order", async () => {
    const bridge = await client();
    const npc = await bridge.initEntity("npc-3", "echo");
    const events = npc.events();
    const turn = await npc.say("one two three");
    const seen: string[] = [];
    for await (const e of events) {
      if (e.type === "ai.text") seen.push(String(e.payload!.delta));
      if (seen.join("") === turn.reply.payload.reply) break;
    }
    expect(seen.join("")).toBe("You said: one two three");
  });
});

describe("speech", () => {
  it("streams espeak audio with visemes, actions and countenance; the player gets every sample", async () => {
    const bridge = await client({ audioOut: { sample_rate: 16000, chunk_ms: 40, lead_ms: 100 } });
    const npc = await bridge.initEntity("mira-1", "speaker");
    const fakeClock = { t: 0 };
    const scheduled: number[] = [];
    const context = {
      get currentTime() {
        return fakeClock.t;
      },
      sampleRate: 48000,
      destination: {},
      createBuffer: (_c: number, n: number) => ({ getChannelData: () => new Float32Array(n) }),
      createBufferSource: () => ({ buffer: null as unknown, connect() {}, start: (when: number) => scheduled.push(when), stop() {} }),
    };
    const rig = new EntitySpeech(npc, context as never, { tickMs: 0, jitterMs: 0 });
    const turn = await npc.say("Hello!");
    rig.dispose();
    const audio = ofType(turn, "ai.speech.audio");
    const sent = audio.reduce((n, e) => n + (e.payload!.audio as Uint8Array).byteLength / 2, 0);
    expect(audio.length).toBeGreaterThan(10);
    expect(rig.player.samplesScheduled).toBe(sent);
    expect(scheduled.length).toBe(audio.length);
    expect(audio.some((e) => (e.payload!.visemes as unknown[]).length > 0)).toBe(true);
    expect(ofType(turn, "ai.action").map((e) => e.payload!.text)).toEqual(["waves"]);
    const mood = ofType(turn, "ai.countenance")[0]!;
    expect(mood.payload).toMatchObject({ emotion: "happy", expression: "smile_big" });
    const starts = ofType(turn, "ai.speech.start");
    expect(starts.every((s) => s.payload!.sample_rate === 16000)).toBe(true);
    expect(starts.map((s) => s.payload!.text).join(" ")).toContain("Welcome to the Copper Kettle.");
  });

  it("interrupts a reply mid-speech: ai.speech.interrupted, then the turn fails with cancelled", async () => {
    const bridge = await client({ audioOut: { sample_rate: 16000, chunk_ms: 40, lead_ms: 100 } });
    const npc = await bridge.initEntity("slow-4", "slowpoke");
    const firstAudio = new Promise<void>((resolve) => npc.on((e) => e.type === "ai.speech.audio" && resolve()));
    const cut: BridgeEvent[] = [];
    npc.on((e) => e.type === "ai.speech.interrupted" && cut.push(e));
    const id = npc.startSay("Please say something long enough to interrupt it halfway through");
    await firstAudio;
    const reply = await npc.interrupt(120);
    expect(reply.payload.interrupted).toBe(true);
    const error = await bridge.wait(id).catch((e: unknown) => e);
    expect((error as BridgeError).code).toBe("cancelled");
    expect(cut.length).toBe(1);
    expect(cut[0]!.ref).toBe(id);
    expect(cut[0]!.payload!.played_ms).toBe(120);
  });
});

describe("record and replay", () => {
  it("a recorded session replays against the bridge with no differences", async () => {
    const recorder = new SessionRecorder("msgpack");
    const bridge = await connect({ recorder });
    const npc = await bridge.initEntity("npc-r", "echo");
    await npc.say("Replay me");
    await npc.request("chat.history", { limit: 5 });
    await npc.remove();
    await bridge.close();
    expect(recorder.count).toBeGreaterThan(8);
    const dir = mkdtempSync(join(tmpdir(), "eb-replay-"));
    const log = join(dir, "session.log");
    writeFileSync(log, recorder.toText());
    const result = await replay(log);
    expect(result.output).toContain("no differences");
    expect(result.code).toBe(0);
  });
});

describe("reconnect", () => {
  it("reconnects with backoff after the bridge drops the connection and re-creates entities", async () => {
    const bridge = await client({ reconnect: { minDelayMs: 50, maxDelayMs: 200 } });
    await bridge.initEntity("npc-rc", "echo");
    const states: string[] = [];
    const back = new Promise<void>((resolve) =>
      bridge.onState((s) => {
        states.push(s.state);
        if (s.state === "open") resolve();
      }),
    );
    // 20 undecodable frames in a row: the bridge closes the connection with 1008.
    for (let i = 0; i < 25; i++) {
      try {
        bridge.sendRaw(Uint8Array.of(0xc1));
      } catch {
        break;
      }
    }
    await back;
    expect(states).toEqual(["reconnecting", "open"]);
    expect(bridge.closeCode).toBe(1008);
    const turn = await bridge.entity("npc-rc")!.say("are you back?");
    expect(turn.reply.payload.reply).toBe("You said: are you back?");
  });
});

describe("movement.perform from the bridge", () => {
  it("the game's handler performs an action the LLM asked for (inline [[open_gate ...]])", async (ctx) => {
    const bridge = await client();
    const guard = await bridge.initEntity("guard-1", "actor");
    await guard.request("movement.actions", {
      actions: [{ name: "open_gate", description: "Open the gate", params: { gate: { type: "string" } } }],
    });
    const performed: unknown[] = [];
    bridge.handle("movement.perform", (event) => {
      performed.push(event.payload);
      return { feedback: "The gate is open." };
    });
    const turn = await guard.say("Open the north gate!");
    if (performed.length === 0) {
      // The bridge on this checkout does not send movement.perform yet (living-world work).
      // Counted as skipped, not passed, until it does.
      console.log("movement.perform: waiting for movement.perform support in the bridge; handler path tested against a peer only");
      expect(turn.reply.status).toBe("success");
      ctx.skip();
    }
    expect(performed).toEqual([{ actions: [{ name: "open_gate", args: { gate: "north" } }] }]);
  });
});
