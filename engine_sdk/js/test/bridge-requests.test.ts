/**
 * Answering the bridge's own requests (movement.perform, ...). Until the bridge sends them
 * (the living-world work), a WebSocket peer on 127.0.0.1 speaking EEP/1 plays the bridge's
 * side: it sends the request frames the schemas describe and reads the SDK's answers.
 */
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { BridgeClient, decodeFrame, encodeFrame, HandlerError, type Wire } from "../src/index.js";

let server: WebSocketServer | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A peer that answers hello and entity.init, then sends `requests` and collects the answers. */
async function peer(requests: Wire[]): Promise<{ url: string; answers: Promise<Wire[]> }> {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => server!.once("listening", r));
  const { port } = server.address() as { port: number };
  const answers = new Promise<Wire[]>((resolve) => {
    server!.on("connection", (ws) => {
      const got: Wire[] = [];
      ws.on("message", (data: Buffer) => {
        const wire = decodeFrame(new Uint8Array(data));
        const send = (w: Wire) => ws.send(encodeFrame(w, "msgpack"));
        if (wire.type === "session.hello") send({ type: "session.hello", id: wire.id, status: "success", payload: { protocol: 1, characters: ["guard"] } });
        else if (wire.type === "entity.init") {
          send({ type: "entity.init", id: wire.id, entity: wire.entity, status: "success", payload: { character: "guard" } });
          requests.forEach(send);
        } else {
          got.push(wire);
          if (got.length === requests.length) resolve(got);
        }
      });
    });
  });
  return { url: `ws://127.0.0.1:${port}`, answers };
}

describe("bridge requests", () => {
  it("answers with the handler's payload, its HandlerError code, or backend_error", async () => {
    const { url, answers } = await peer([
      { type: "movement.perform", id: "b1", entity: "g", ref: "u1", payload: { actions: [{ name: "open_gate", args: { gate: "north" } }] } },
      { type: "movement.perform", id: "b2", entity: "g", payload: { actions: [{ name: "fly", args: {} }] } },
      { type: "movement.scene.request", id: "b3", entity: "g", payload: null },
      { type: "movement.actions.request", id: "b4", entity: "g", payload: null },
    ]);
    const bridge = await BridgeClient.connect(url, { WebSocket: WebSocket as never });
    const performed: unknown[] = [];
    bridge.handle("movement.perform", async (event) => {
      const action = (event.payload!.actions as Array<{ name: string; args: unknown }>)[0]!;
      if (action.name === "fly") throw new HandlerError("backend_error", "guards cannot fly");
      performed.push(action.args);
      return { feedback: "The north gate is open." };
    });
    bridge.handle("movement.scene.request", () => {
      throw new Error("scene not loaded yet");
    });
    await bridge.initEntity("g", "guard");
    const got = await answers;
    await bridge.close();
    const byId = Object.fromEntries(got.map((w) => [w.id, w]));
    expect(performed).toEqual([{ gate: "north" }]);
    expect(byId.b1).toEqual({ type: "movement.perform", id: "b1", entity: "g", status: "success", payload: { feedback: "The north gate is open." } });
    expect(byId.b2).toMatchObject({ status: "error", payload: { code: "backend_error", message: "guards cannot fly" } });
    expect(byId.b3).toMatchObject({ status: "error", payload: { code: "backend_error", message: "scene not loaded yet" } });
    expect(byId.b4).toMatchObject({ status: "error", payload: { code: "backend_error", message: "the game has no handler for movement.actions.request" } });
  });
});
