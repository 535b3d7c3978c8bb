/**
 * The EEP/1 client: the Python SDK's model (engine_sdk/python/entity_bridge_sdk/client.py) for
 * browsers and Node.
 *
 *     const bridge = await BridgeClient.connect("ws://127.0.0.1:8765");
 *     const npc = await bridge.initEntity("npc-1", "mira");
 *     const turn = await npc.say("Hello!");
 *     console.log(turn.reply.payload.reply);
 *
 * Every frame is routed the moment it arrives: a final reply completes the request waiting
 * for it (outputs with its `ref` are collected on the way), everything else goes to the
 * entity's and the session's event streams, and the bridge's own requests
 * (movement.perform, ...) go to the handler the game registered, whose answer is sent back.
 */
import { decodeFrame, encodeFrame, FrameError, type Framing, type Wire } from "./codec.js";
import type { EventPayloads, SuccessPayloads } from "./generated/protocol.js";
import type { SessionRecorder } from "./recorder.js";
import { AsyncQueue, Fanout } from "./stream.js";

export const PROTOCOL_VERSION = 1;

/** The requests the bridge sends to the engine. */
export const BRIDGE_REQUESTS = ["movement.perform", "movement.scene.request", "movement.actions.request"] as const;
export type BridgeRequestType = (typeof BRIDGE_REQUESTS)[number];

export type Status = "new" | "pending" | "success" | "error";

/** One event, either direction. `payload` is typed by `type` where the schemas say. */
export interface BridgeEvent<P = Record<string, unknown> | null> {
  type: string;
  id: string;
  entity?: string;
  status: Status;
  ref?: string;
  payload: P;
  raw: Wire;
}

export function eventFromWire(wire: Wire): BridgeEvent {
  const payload = wire.payload;
  return {
    type: String(wire.type),
    id: String(wire.id),
    entity: typeof wire.entity === "string" ? wire.entity : undefined,
    status: (typeof wire.status === "string" ? wire.status : "new") as Status,
    ref: typeof wire.ref === "string" ? wire.ref : undefined,
    payload: payload && typeof payload === "object" ? (payload as Record<string, unknown>) : null,
    raw: wire,
  };
}

/** A request ended with status `error`: `code` and `message` are the protocol's. */
export class BridgeError extends Error {
  readonly code: string;
  readonly detail: string;
  constructor(readonly event: BridgeEvent) {
    const payload = event.payload ?? {};
    const code = String(payload.code ?? "");
    const detail = String(payload.message ?? "");
    super(`${event.type} ${event.id}: ${code}: ${detail}`);
    this.name = "BridgeError";
    this.code = code;
    this.detail = detail;
  }
}

/** The connection closed while a request was waiting (or before it could be sent). */
export class ConnectionLost extends Error {
  constructor(
    readonly code: number | undefined,
    readonly reason = "",
  ) {
    super(`connection closed (code ${code ?? "none"}) ${reason}`.trim());
    this.name = "ConnectionLost";
  }
}

export class RequestTimeout extends Error {
  constructor(
    readonly type: string,
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(`${type} ${id}: no final reply within ${timeoutMs} ms`);
    this.name = "RequestTimeout";
  }
}

/** Throw this from a bridge-request handler to answer with a specific error code. */
export class HandlerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = "HandlerError";
  }
}

/** The final reply of a request and every output it caused (events whose `ref` is its id). */
export interface TurnResult<P = Record<string, unknown>> {
  reply: BridgeEvent<P>;
  events: BridgeEvent[];
}

export function ofType(result: TurnResult<unknown>, type: string): BridgeEvent[] {
  return result.events.filter((e) => e.type === type);
}

/** What the SDK needs of a WebSocket: the browser's, or Node's `ws` package. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketFactory = new (url: string) => WebSocketLike;

export interface ReconnectOptions {
  /** First delay; doubles each attempt up to `maxDelayMs`, with ±20% jitter. */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Give up after this many attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface AudioOutFormat {
  encoding?: "pcm_s16le";
  sample_rate?: 8000 | 16000 | 22050 | 24000 | 44100 | 48000;
  chunk_ms?: number;
  lead_ms?: number;
}

export interface ConnectOptions {
  framing?: Framing;
  client?: string;
  token?: string;
  audioOut?: AudioOutFormat;
  audioIn?: { encoding?: "pcm_s16le"; sample_rate?: number };
  visemes?: "ovr15" | "none";
  textDeltas?: boolean;
  scope?: string;
  /** Send session.hello on connect (default true; the replayer sends the recorded one). */
  hello?: boolean;
  /** Default timeout of requests, in ms (default 60000; 0 waits for ever). */
  timeoutMs?: number;
  /** Reconnect with backoff when the connection drops, re-creating every entity. */
  reconnect?: boolean | ReconnectOptions;
  /** WebSocket implementation: the global one by default; pass `ws` in Node 20. */
  WebSocket?: WebSocketFactory;
  /** Records every frame both ways, for `entity-bridge replay`. */
  recorder?: SessionRecorder;
  /** Called with every frame, both ways, as a decoded wire map (the console's inspector). */
  onFrame?: (dir: "in" | "out", wire: Wire, size: number) => void;
}

export type BridgeRequestHandler = (event: BridgeEvent) => unknown | Promise<unknown>;

interface Waiting {
  type: string;
  entity?: string;
  sentAt: number;
  pending: boolean;
  collect: boolean;
  outputs: BridgeEvent[];
  resolve: (event: BridgeEvent) => void;
  reject: (error: Error) => void;
  promise: Promise<BridgeEvent>;
}

/** What `client.pending` tells about an open request. */
export interface OpenRequest {
  type: string;
  entity?: string;
  sentAt: number;
  /** A `pending` reply came: the bridge has started the work. */
  started: boolean;
}

export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

export class BridgeClient {
  hello: SuccessPayloads["session.hello"] | Record<string, never> = {};
  state: ClientState = "connecting";
  closeCode: number | undefined;
  closeReason = "";

  private ws!: WebSocketLike;
  private nextId = 1;
  private readonly waiting = new Map<string, Waiting>();
  private readonly all = new Fanout<BridgeEvent>();
  private readonly perEntity = new Map<string, Fanout<BridgeEvent>>();
  private readonly lifecycle = new Fanout<{ state: ClientState; code?: number; reason?: string }>();
  private readonly handlers = new Map<string, BridgeRequestHandler>();
  /** Entities alive on this connection and what created them, for reconnects. */
  private readonly entities = new Map<string, EntityHandle>();
  private closing = false;
  private closedPromise!: Promise<void>;
  private resolveClosed!: () => void;

  private constructor(
    readonly url: string,
    private readonly options: ConnectOptions,
  ) {
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get framing(): Framing {
    return this.options.framing ?? "msgpack";
  }

  /** Open the connection and (unless `hello: false`) say hello; rejects if either fails. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<BridgeClient> {
    if (options.framing && options.framing !== "msgpack" && options.framing !== "json") {
      throw new Error("framing is 'msgpack' or 'json'");
    }
    const client = new BridgeClient(url, options);
    await client.open();
    client.state = "open";
    return client;
  }

  private async open(): Promise<void> {
    const Factory = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketFactory }).WebSocket;
    if (!Factory) {
      throw new Error("no WebSocket implementation: pass options.WebSocket (e.g. the `ws` package in Node 20)");
    }
    const ws = new Factory(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new ConnectionLost(undefined, `cannot connect to ${this.url}`));
      ws.onclose = (ev) => reject(new ConnectionLost(ev.code, ev.reason || `cannot connect to ${this.url}`));
    });
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => undefined; // the close event that follows carries the code
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
    if (this.options.hello !== false) {
      const o = this.options;
      const payload: Record<string, unknown> = {
        protocol: PROTOCOL_VERSION,
        client: o.client ?? "entity-bridge-sdk-js/0.1.0",
        visemes: o.visemes ?? "ovr15",
        text_deltas: o.textDeltas ?? true,
      };
      if (o.token !== undefined) payload.token = o.token;
      if (o.audioOut) payload.audio_out = { ...o.audioOut };
      if (o.audioIn) payload.audio_in = { ...o.audioIn };
      if (o.scope !== undefined) payload.scope = o.scope;
      const reply = await this.request("session.hello", payload);
      this.hello = (reply.payload ?? {}) as SuccessPayloads["session.hello"];
    }
  }

  // ------------------------------------------------------------------ sending

  newId(): string {
    return `c${this.nextId++}`;
  }

  /** Open requests by id (sent, no final reply yet). */
  get pending(): ReadonlyMap<string, OpenRequest> {
    const view = new Map<string, OpenRequest>();
    for (const [id, w] of this.waiting) {
      view.set(id, { type: w.type, entity: w.entity, sentAt: w.sentAt, started: w.pending });
    }
    return view;
  }

  /** Send a frame as is (tests use this for malformed input). */
  sendRaw(data: Uint8Array | string): void {
    if (this.state === "closed" || this.ws.readyState !== 1) {
      throw new ConnectionLost(this.closeCode, "not connected");
    }
    this.ws.send(data);
  }

  private sendWire(wire: Wire): void {
    const frame = encodeFrame(wire, this.framing);
    this.sendRaw(frame);
    this.options.recorder?.write("out", wire);
    this.options.onFrame?.("out", wire, typeof frame === "string" ? frame.length : frame.byteLength);
  }

  /**
   * Send a request without waiting; returns its id. `wait(id)` gets the final reply. `stt.audio`
   * (answered only on failure) is not tracked unless `track` is set.
   */
  send(type: string, payload: unknown = null, opts: { entity?: string; id?: string; track?: boolean; collect?: boolean } = {}): string {
    const id = opts.id ?? this.newId();
    const wire: Wire = { type, id, payload: payload ?? null };
    if (opts.entity !== undefined) wire.entity = opts.entity;
    if (opts.track ?? type !== "stt.audio") {
      this.track(id, type, opts.entity, opts.collect ?? true);
    }
    try {
      this.sendWire(wire);
    } catch (error) {
      this.waiting.get(id)?.reject(error as Error);
      this.waiting.delete(id);
      throw error;
    }
    return id;
  }

  private track(id: string, type: string, entity: string | undefined, collect: boolean): void {
    let resolve!: (e: BridgeEvent) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<BridgeEvent>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // a request nobody waits for must not be an unhandled rejection
    this.waiting.set(id, { type, entity, sentAt: Date.now(), pending: false, collect, outputs: [], resolve, reject, promise });
  }

  /** Wait for the final reply of a request sent with `send`; rejects with BridgeError on `error`. */
  async wait<P = Record<string, unknown>>(id: string, opts: { timeoutMs?: number; check?: boolean } = {}): Promise<TurnResult<P>> {
    const w = this.waiting.get(id);
    if (!w) {
      throw new Error(`no open request with id ${id}`);
    }
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs ?? 60_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout =
      timeoutMs > 0
        ? new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              this.waiting.delete(id);
              reject(new RequestTimeout(w.type, id, timeoutMs));
            }, timeoutMs);
          })
        : null;
    try {
      const reply = await (timeout ? Promise.race([w.promise, timeout]) : w.promise);
      if ((opts.check ?? true) && reply.status === "error") {
        throw new BridgeError(reply);
      }
      return { reply: reply as BridgeEvent<P>, events: w.outputs };
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  /** Send a request and wait for its final reply and the outputs it caused. */
  async turn<T extends string>(
    type: T,
    payload: unknown = null,
    opts: { entity?: string; timeoutMs?: number; check?: boolean } = {},
  ): Promise<TurnResult<T extends keyof SuccessPayloads ? SuccessPayloads[T] : Record<string, unknown>>> {
    const id = this.send(type, payload, { entity: opts.entity });
    return this.wait(id, opts);
  }

  /** Send a request and wait for its final reply. */
  async request<T extends string>(
    type: T,
    payload: unknown = null,
    opts: { entity?: string; timeoutMs?: number; check?: boolean } = {},
  ): Promise<BridgeEvent<T extends keyof SuccessPayloads ? SuccessPayloads[T] : Record<string, unknown>>> {
    return (await this.turn(type, payload, opts)).reply;
  }

  // ------------------------------------------------------------------ entities

  /** Create an entity played by a configured character (a name) or an inline one (a map). */
  async initEntity(name: string, character: EventPayloads["entity.init"]["character"]): Promise<EntityHandle> {
    const handle = new EntityHandle(this, name, character);
    const reply = await this.request("entity.init", { character }, { entity: name });
    handle.info = (reply.payload ?? {}) as SuccessPayloads["entity.init"];
    this.entities.set(name, handle);
    return handle;
  }

  /** Called by EntityHandle.remove: the entity is not re-created on reconnect. */
  forget(name: string): void {
    this.entities.delete(name);
  }

  entity(name: string): EntityHandle | undefined {
    return this.entities.get(name);
  }

  // ------------------------------------------------------------------ streams

  /** Every event the bridge sends that is not a reply to one of our requests, from now on. */
  events(): AsyncQueue<BridgeEvent> {
    return this.all.subscribe();
  }

  /** Listen to the same events as `events()`; returns the unsubscribe function. */
  on(listener: (event: BridgeEvent) => void): () => void {
    return this.all.on(listener);
  }

  /** Connection state changes: reconnecting, open (again), closed. */
  onState(listener: (change: { state: ClientState; code?: number; reason?: string }) => void): () => void {
    return this.lifecycle.on(listener);
  }

  entityStream(name: string): Fanout<BridgeEvent> {
    let fan = this.perEntity.get(name);
    if (!fan) {
      fan = new Fanout<BridgeEvent>();
      this.perEntity.set(name, fan);
    }
    return fan;
  }

  /**
   * Answer the bridge's requests of this type (movement.perform, ...). The handler's return
   * value is the success payload; a thrown HandlerError answers with its code, any other error
   * with `backend_error` and its message (which the LLM reads).
   */
  handle(type: BridgeRequestType, handler: BridgeRequestHandler): () => void {
    this.handlers.set(type, handler);
    return () => this.handlers.delete(type);
  }

  // ------------------------------------------------------------------ reading

  private onMessage(data: unknown): void {
    let wire: Wire;
    const size = typeof data === "string" ? data.length : (data as ArrayBuffer).byteLength ?? 0;
    try {
      wire = decodeFrame(typeof data === "string" ? data : new Uint8Array(data as ArrayBuffer));
    } catch (error) {
      const message = error instanceof FrameError ? error.message : String(error);
      console.error(`entity-bridge: dropped a frame the SDK cannot decode: ${message}`);
      return;
    }
    this.options.recorder?.write("in", wire);
    this.options.onFrame?.("in", wire, size);
    this.route(eventFromWire(wire));
  }

  private route(event: BridgeEvent): void {
    const w = event.status !== "new" ? this.waiting.get(event.id) : undefined;
    if (w) {
      if (event.status === "pending") {
        w.pending = true;
      } else {
        this.waiting.delete(event.id);
        w.resolve(event);
      }
      return;
    }
    if (event.ref !== undefined) {
      const owner = this.waiting.get(event.ref);
      if (owner?.collect) {
        owner.outputs.push(event);
      }
    }
    if (event.entity !== undefined) {
      this.entityStream(event.entity).emit(event);
    }
    this.all.emit(event);
    if (event.status === "new" && (BRIDGE_REQUESTS as readonly string[]).includes(event.type)) {
      void this.answer(event);
    }
  }

  private async answer(event: BridgeEvent): Promise<void> {
    const handler = this.handlers.get(event.type);
    const wire: Wire = { type: event.type, id: event.id };
    if (event.entity !== undefined) wire.entity = event.entity;
    if (!handler) {
      wire.status = "error";
      wire.payload = { code: "backend_error", message: `the game has no handler for ${event.type}` };
    } else {
      try {
        const result = await handler(event);
        wire.status = "success";
        wire.payload = result === undefined ? {} : result;
      } catch (error) {
        wire.status = "error";
        wire.payload =
          error instanceof HandlerError
            ? { code: error.code, message: error.message }
            : { code: "backend_error", message: error instanceof Error ? error.message : String(error) };
      }
    }
    try {
      this.sendWire(wire);
    } catch {
      // The connection went away while the game worked: the bridge has cancelled the turn.
    }
  }

  private failWaiting(code: number | undefined, reason: string): void {
    for (const w of this.waiting.values()) {
      w.reject(new ConnectionLost(code, reason));
    }
    this.waiting.clear();
  }

  private onClose(ws: WebSocketLike, code: number, reason: string): void {
    if (ws !== this.ws) {
      return;
    }
    this.closeCode = code;
    this.closeReason = reason;
    this.failWaiting(code, reason);
    const policy = this.options.reconnect;
    if (!this.closing && policy && this.state === "open") {
      void this.reconnect(policy === true ? {} : policy);
      return;
    }
    this.finish(code, reason);
  }

  private finish(code: number | undefined, reason: string): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.lifecycle.emit({ state: "closed", code, reason });
    this.all.close();
    for (const fan of this.perEntity.values()) fan.close();
    this.resolveClosed();
  }

  private async reconnect(policy: ReconnectOptions): Promise<void> {
    this.state = "reconnecting";
    this.lifecycle.emit({ state: "reconnecting", code: this.closeCode, reason: this.closeReason });
    let delay = policy.minDelayMs ?? 250;
    const maxDelay = policy.maxDelayMs ?? 5000;
    for (let attempt = 1; !this.closing; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, delay * (0.8 + Math.random() * 0.4)));
      if (this.closing) break;
      try {
        await this.open();
        this.state = "open";
        for (const handle of [...this.entities.values()]) {
          const reply = await this.request("entity.init", { character: handle.character }, { entity: handle.name });
          handle.info = (reply.payload ?? {}) as SuccessPayloads["entity.init"];
        }
        this.lifecycle.emit({ state: "open" });
        return;
      } catch {
        this.state = "reconnecting";
        if (policy.maxAttempts !== undefined && attempt >= policy.maxAttempts) break;
        delay = Math.min(delay * 2, maxDelay);
      }
    }
    this.finish(this.closeCode, this.closeReason || "gave up reconnecting");
  }

  /** Close cleanly (code 1000); open requests reject with ConnectionLost. */
  async close(code = 1000, reason = ""): Promise<void> {
    this.closing = true;
    if (this.state === "closed") return;
    if (this.ws && this.ws.readyState <= 1) {
      this.ws.close(code, reason);
    } else {
      this.finish(code, reason);
    }
    await this.closedPromise;
  }

  /** Resolves once the connection is closed for good. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }
}

/** One entity on a connection: requests about it and its stream of events. */
export class EntityHandle {
  info: SuccessPayloads["entity.init"] | Record<string, never> = {};

  constructor(
    readonly client: BridgeClient,
    readonly name: string,
    readonly character: EventPayloads["entity.init"]["character"],
  ) {}

  /** A player utterance; resolves when the character's turn is over. */
  say(text: string, kind: EventPayloads["user.utterance"]["kind"] = "verbal", opts: { speaker?: string; timeoutMs?: number; check?: boolean } = {}) {
    const payload: Record<string, unknown> = { kind, text };
    if (opts.speaker !== undefined) payload.speaker = opts.speaker;
    return this.client.turn("user.utterance", payload, { entity: this.name, timeoutMs: opts.timeoutMs ?? 120_000, check: opts.check });
  }

  /** Send an utterance without waiting; `client.wait(id)` collects the turn later. */
  startSay(text: string, kind: EventPayloads["user.utterance"]["kind"] = "verbal"): string {
    return this.client.send("user.utterance", { kind, text }, { entity: this.name });
  }

  /** `tts.say`: the character speaks the given text, no LLM involved. */
  speak(text: string, opts: { timeoutMs?: number; check?: boolean } = {}) {
    return this.client.turn("tts.say", { text }, { entity: this.name, timeoutMs: opts.timeoutMs ?? 120_000, check: opts.check });
  }

  interrupt(playedMs?: number) {
    return this.client.request("entity.interrupt", playedMs === undefined ? {} : { played_ms: playedMs }, { entity: this.name });
  }

  request<T extends string>(type: T, payload: unknown = null, opts: { timeoutMs?: number; check?: boolean } = {}) {
    return this.client.request(type, payload, { ...opts, entity: this.name });
  }

  /** Send without waiting (stt.audio, playback reports); replies are absorbed, not streamed. */
  send(type: string, payload: unknown = null): string {
    return this.client.send(type, payload, { entity: this.name, collect: false });
  }

  async remove() {
    const reply = await this.client.request("entity.remove", {}, { entity: this.name });
    this.client.forget(this.name);
    return reply;
  }

  /** This entity's events from now on (outputs of its turns and anything else about it). */
  events(): AsyncQueue<BridgeEvent> {
    return this.client.entityStream(this.name).subscribe();
  }

  on(listener: (event: BridgeEvent) => void): () => void {
    return this.client.entityStream(this.name).on(listener);
  }
}
