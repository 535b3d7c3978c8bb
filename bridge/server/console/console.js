// The bridge's dev console: talk to a character, hear and see it, and watch every frame.
// Served by the bridge itself at /console (same origin, so its Origin check admits this page
// and no other). Built on the JS SDK bundle (entity-bridge.js, from engine_sdk/js).
import { BridgeClient, BridgeError, EntitySpeech, Microphone, SessionRecorder } from "/console/entity-bridge.js";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v); // CSSOM, which the page's CSP allows (no inline style attributes)
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
};

/** Everything the page knows; `window.consoleState` lets the browser tests read it. */
const state = {
  client: null,
  entity: null,
  speech: null,
  audio: null,
  analyser: null,
  mic: null,
  recorder: null,
  frames: [],
  turns: new Map(),
  chatByRef: new Map(),
  t0: performance.now(),
  samplesReceived: 0,
  peak: 0,
  maxPeak: 0,
  mouthMax: 0,
};
window.consoleState = state;

function setStatus(text, phase) {
  $("status").textContent = text;
  if (phase) document.body.dataset.state = phase;
}

// ------------------------------------------------------------------ connection

const wsUrl = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;

async function connect(event) {
  event.preventDefault();
  if (state.client) return;
  // The AudioContext is created here, inside the click, so the browser lets it play.
  if (!state.audio) {
    state.audio = new AudioContext();
    state.analyser = state.audio.createAnalyser();
    state.analyser.fftSize = 1024;
    state.analyser.connect(state.audio.destination);
  }
  await state.audio.resume();
  const framing = $("framing").value;
  const token = $("token").value || undefined;
  state.recorder = new SessionRecorder(framing);
  state.frames = [];
  state.samplesReceived = 0;
  $("frames").replaceChildren();
  setStatus(`Connecting to ${wsUrl()}…`, "connecting");
  try {
    state.client = await BridgeClient.connect(wsUrl(), {
      framing,
      token,
      client: "entity-bridge-console/0.1",
      recorder: state.recorder,
      onFrame: onFrame,
    });
  } catch (error) {
    state.client = null;
    if (error instanceof BridgeError && error.code === "unauthorized") {
      $("token-field").hidden = false;
      $("token").focus();
      setStatus(`The bridge refused the session: ${error.detail}`, "unauthorized");
    } else {
      setStatus(`Cannot connect: ${error.message}`, "error");
    }
    return;
  }
  const client = state.client;
  client.onState((change) => {
    if (change.state === "closed") disconnected(change.code, change.reason);
  });
  client.on(onEvent);
  // No game is attached: actions the LLM picks are shown and acknowledged, so a character
  // with Movement actions can be tried here (its turn then carries them in 'performed').
  client.handle("movement.perform", (request) => {
    const actions = request.payload?.actions ?? [];
    for (const action of actions) {
      chatLine("marker", "", el("span", { text: `movement.perform: ${action.name} ${JSON.stringify(action.args ?? {})} (acknowledged by the console)` }));
    }
    return { feedback: "The dev console acknowledged the action; no game is attached." };
  });
  client.handle("movement.scene.request", () => ({ characters: [], objects: [] }));
  client.handle("movement.actions.request", () => ({ actions: [] }));
  const hello = client.hello;
  setStatus(`Connected: ${hello.server}, session ${hello.session}, ${framing}.`, "connected");
  const list = $("characters");
  list.replaceChildren(...hello.characters.map((name) => el("li", { text: name })));
  $("character").replaceChildren(...hello.characters.map((name) => el("option", { value: name, text: name })));
  for (const id of ["character", "init-entity", "disconnect", "download"]) $(id).disabled = false;
  $("connect").disabled = true;
}

function disconnected(code, reason) {
  state.client = null;
  state.entity = null;
  state.speech?.dispose();
  state.speech = null;
  for (const id of ["character", "init-entity", "disconnect", "line", "send", "interrupt", "mic"]) $(id).disabled = true;
  $("connect").disabled = false;
  setStatus(`Disconnected (code ${code ?? "none"}${reason ? `: ${reason}` : ""}).`, "closed");
}

async function initEntity(event) {
  event.preventDefault();
  const client = state.client;
  if (!client) return;
  const name = $("entity-name").value.trim();
  const character = $("character").value;
  try {
    if (state.entity) {
      state.speech?.dispose();
      await state.entity.remove().catch(() => undefined);
    }
    const entity = await client.initEntity(name, character);
    state.entity = entity;
    state.speech = new EntitySpeech(entity, state.audio, { output: state.analyser, jitterMs: 60 });
    const modules = Object.entries(entity.info.modules ?? {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    $("entity-info").textContent = `${name} plays ${entity.info.display_name ?? character} (${modules || "no modules listed"}).`;
    for (const id of ["line", "send", "interrupt", "mic"]) $(id).disabled = false;
    setStatus(`Entity ${name} ready.`, "entity-ready");
    $("line").focus();
  } catch (error) {
    $("entity-info").textContent = error instanceof BridgeError ? `${error.code}: ${error.detail}` : String(error);
  }
}

// ------------------------------------------------------------------ chat

function chatLine(cls, who, ...parts) {
  const li = el("li", { class: cls }, el("span", { class: "who", text: who }), ...parts);
  $("chat").append(li);
  $("chat").scrollTop = $("chat").scrollHeight;
  return li;
}

function characterLine(ref) {
  let entry = state.chatByRef.get(ref);
  if (!entry) {
    const text = el("span", { class: "said" });
    const li = chatLine("character", `${state.entity?.info.display_name ?? "character"}:`, text);
    entry = { li, text };
    state.chatByRef.set(ref, entry);
  }
  return entry;
}

async function say(event) {
  event.preventDefault();
  const entity = state.entity;
  const text = $("line").value.trim();
  if (!entity || !text) return;
  const kind = $("kind").value;
  $("line").value = "";
  chatLine("player", "you:", el("span", { text }));
  const id = entity.startSay(text, kind);
  characterLine(id);
  try {
    await state.client.wait(id, { timeoutMs: 180000 });
  } catch (error) {
    const entry = characterLine(id);
    entry.li.append(el("span", { class: "error", text: ` [${error.code ?? error.name}: ${error.detail ?? error.message}]` }));
  }
}

async function interrupt() {
  if (!state.speech) return;
  try {
    await state.speech.interrupt();
  } catch (error) {
    chatLine("marker", "", el("span", { text: `interrupt failed: ${error.message}` }));
  }
}

function onEvent(event) {
  const p = event.payload ?? {};
  switch (event.type) {
    case "ai.text":
      characterLine(event.ref).text.append(document.createTextNode(String(p.delta)));
      break;
    case "ai.action":
      characterLine(event.ref).text.append(el("span", { class: "action", text: `*${p.text}*` }));
      break;
    case "ai.countenance": {
      // One chip per change of mood in a reply (each segment repeats the current one).
      const entry = event.ref ? characterLine(event.ref) : null;
      const label = `${p.emotion} (${p.expression})`;
      if (entry && entry.mood !== label) {
        entry.mood = label;
        entry.li.append(el("span", { class: "emotion", text: label }));
      }
      break;
    }
    case "stt.speech.started":
      chatLine("marker", "", el("span", { text: `mic: speech started at ${p.t} ms` }));
      break;
    case "stt.speech.stopped":
      chatLine("marker", "", el("span", { text: `mic: speech stopped at ${p.t} ms` }));
      break;
    case "stt.transcript":
      if (p.final) chatLine("player", "you (mic):", el("span", { text: String(p.text) }));
      break;
    case "error":
      chatLine("marker error", "", el("span", { text: `bridge error: ${p.code}: ${p.message}` }));
      break;
  }
}

// ------------------------------------------------------------------ microphone

async function micDown() {
  if (!state.entity || state.mic?.mode) return;
  state.mic ??= new Microphone(state.entity, {
    sampleRate: state.client.hello.audio_in?.sample_rate ?? 16000,
    onLevel: (peak) => ($("mic-level").value = peak),
  });
  $("mic").setAttribute("aria-pressed", "true");
  try {
    await state.mic.start($("mic-mode").value);
  } catch (error) {
    $("mic").setAttribute("aria-pressed", "false");
    chatLine("marker error", "", el("span", { text: `microphone: ${error.code ? `${error.code}: ${error.detail}` : error.message}` }));
  }
}

async function micUp() {
  if (!state.mic?.mode) return;
  $("mic").setAttribute("aria-pressed", "false");
  await state.mic.stop().catch((error) => chatLine("marker error", "", el("span", { text: `microphone: ${error.message}` })));
}

function wireMic() {
  const button = $("mic");
  const ptt = () => $("mic-mode").value === "push_to_talk";
  button.addEventListener("pointerdown", () => ptt() && micDown());
  button.addEventListener("pointerup", () => ptt() && micUp());
  button.addEventListener("pointerleave", () => ptt() && micUp());
  button.addEventListener("click", () => {
    if (ptt()) return;
    if (state.mic?.mode) micUp();
    else micDown();
  });
  button.addEventListener("keydown", (e) => {
    if (e.key === " " && ptt() && !e.repeat) {
      e.preventDefault();
      micDown();
    }
  });
  button.addEventListener("keyup", (e) => {
    if (e.key === " " && ptt()) micUp();
  });
  $("mic-mode").addEventListener("change", () => {
    button.textContent = ptt() ? "Hold to talk" : "Start / stop listening";
  });
}

// ------------------------------------------------------------------ inspector

const TURN_TYPES = new Set(["user.utterance", "tts.say", "world.event"]);

function onFrame(dir, wire, size) {
  const frame = { n: state.frames.length, t: Math.round(performance.now() - state.t0), dir, wire, size };
  state.frames.push(frame);
  if (dir === "in" && wire.type === "ai.speech.audio" && wire.payload?.audio) state.samplesReceived += wire.payload.audio.byteLength / 2;
  trackTurn(frame);
  if (matches(frame)) pendingRows.push(frame);
  scheduleRender();
  $("frame-count").textContent = `${state.frames.length} frames`;
}

let pendingRows = [];
let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const body = $("frames");
    for (const frame of pendingRows) body.append(frameRow(frame));
    pendingRows = [];
    while (body.rows.length > 3000) body.deleteRow(0);
    renderTimeline();
  });
}

function matches(frame) {
  const needle = $("filter").value.trim().toLowerCase();
  const dir = $("direction").value;
  if (dir && frame.dir !== dir) return false;
  if ($("hide-audio").checked && frame.wire.type === "ai.speech.audio") return false;
  if (!needle) return true;
  return String(frame.wire.type).toLowerCase().includes(needle) || String(frame.wire.entity ?? "").toLowerCase().includes(needle);
}

function rerender() {
  pendingRows = [];
  $("frames").replaceChildren(...state.frames.filter(matches).slice(-3000).map(frameRow));
}

/** A frame as JSON text: bytes shown by their length (the log download keeps them whole). */
function frameJson(wire) {
  return JSON.stringify(wire, (key, value) => (value instanceof Uint8Array ? `<${value.byteLength} bytes>` : typeof value === "bigint" ? String(value) : value), 2);
}

function frameRow(frame) {
  const w = frame.wire;
  const status = w.status ?? "new";
  const row = el("tr", { class: `${frame.dir} st-${status}`, "data-n": String(frame.n), "data-type": String(w.type) });
  const expand = el("button", { type: "button", "aria-expanded": "false", text: "Expand", "aria-label": `Expand frame ${frame.n} (${w.type})` });
  const copy = el("button", { type: "button", text: "Copy", "aria-label": `Copy frame ${frame.n} as JSON` });
  row.append(
    el("td", { text: String(frame.t) }),
    el("td", { class: "dir", text: frame.dir === "out" ? "→ out" : "← in" }),
    el("td", { text: String(w.type) }),
    el("td", { class: "status", text: status }),
    el("td", { text: String(w.entity ?? "") }),
    el("td", { text: w.ref ? `${w.id} ← ${w.ref}` : String(w.id) }),
    el("td", { text: String(frame.size) }),
    el("td", {}, expand, " ", copy),
  );
  expand.addEventListener("click", () => {
    const open = expand.getAttribute("aria-expanded") === "true";
    if (open) {
      row.nextElementSibling?.classList.contains("detail") && row.nextElementSibling.remove();
    } else {
      const detail = el("tr", { class: "detail" }, el("td", { colspan: "8" }, el("pre", { text: frameJson(w) })));
      row.after(detail);
    }
    expand.setAttribute("aria-expanded", String(!open));
    expand.textContent = open ? "Expand" : "Collapse";
  });
  copy.addEventListener("click", async () => {
    const text = frameJson(w);
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = el("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    state.lastCopied = text;
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy"), 1200);
  });
  return row;
}

function download() {
  if (!state.recorder) return;
  const blob = new Blob([state.recorder.toText()], { type: "application/x-ndjson" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `entity-bridge-session-${new Date().toISOString().replace(/[:.]/g, "-")}.log` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

// ------------------------------------------------------------------ turn timeline

function trackTurn(frame) {
  const w = frame.wire;
  if (frame.dir === "out" && TURN_TYPES.has(w.type) && (w.status ?? "new") === "new") {
    state.turns.set(w.id, { id: w.id, type: w.type, sent: frame.t, text: String(w.payload?.text ?? "") });
    return;
  }
  if (frame.dir !== "in") return;
  if (w.type === "stt.transcript" && w.payload?.final) {
    // Speech from the microphone starts a turn with no request of ours: its outputs carry
    // ref = the transcript's id, and it has no final reply, so it ends at its last output.
    state.turns.set(w.id, { id: w.id, type: "mic turn", sent: frame.t, text: String(w.payload.text ?? ""), open: true });
    return;
  }
  const own = state.turns.get(w.id);
  if (own && w.status === "pending") own.pending ??= frame.t;
  if (own && (w.status === "success" || w.status === "error")) {
    own.end = frame.t;
    own.status = w.status;
    own.timing = w.payload?.timing;
  }
  const caused = w.ref ? state.turns.get(w.ref) : undefined;
  if (caused && w.type === "ai.text") caused.firstText ??= frame.t;
  if (caused && w.type === "ai.speech.audio") caused.firstAudio ??= frame.t;
  if (caused?.open) caused.end = frame.t;
}

function renderTimeline() {
  const turns = [...state.turns.values()];
  const span = Math.max(1000, ...turns.map((t) => (t.end ?? performance.now() - state.t0) - t.sent));
  const pct = (ms) => `${Math.max(0, Math.min(100, (ms / span) * 100)).toFixed(2)}%`;
  $("timeline").replaceChildren(
    ...turns.map((turn) => {
      const rel = (t) => (t === undefined ? undefined : t - turn.sent);
      const end = rel(turn.end) ?? performance.now() - state.t0 - turn.sent;
      const bar = el("div", { class: "bar", role: "img" });
      const seg = (cls, from, to) => from !== undefined && to !== undefined && to >= from && bar.append(el("div", { class: `seg ${cls}`, style: { left: pct(from), width: pct(to - from) } }));
      const pending = rel(turn.pending) ?? 0;
      seg("pending", 0, pending);
      seg("text", pending, rel(turn.firstText) ?? rel(turn.firstAudio) ?? end);
      if (turn.firstAudio !== undefined) seg("audio", rel(turn.firstAudio), end);
      bar.append(el("div", { class: "tick end", style: { left: pct(end) } }));
      const timing = turn.timing ?? {};
      for (const key of ["llm_first_token_ms", "first_segment_ms", "tts_first_audio_ms"]) {
        if (typeof timing[key] === "number") bar.append(el("div", { class: "tick bridge", style: { left: pct(timing[key]) }, title: key }));
      }
      const parts = [
        `pending ${fmt(rel(turn.pending))}`,
        `first text ${fmt(rel(turn.firstText))}`,
        `first audio ${fmt(rel(turn.firstAudio))}`,
        `end ${fmt(rel(turn.end))}${turn.status === "error" ? " (error)" : ""}`,
      ];
      const bridge = ["llm_first_token_ms", "first_segment_ms", "tts_first_audio_ms"].filter((k) => typeof timing[k] === "number");
      if (bridge.length) parts.push(`bridge: ${bridge.map((k) => `${k.replace(/_ms$/, "").replace(/_/g, " ")} ${timing[k]} ms`).join(", ")}`);
      bar.setAttribute("aria-label", parts.join("; "));
      return el("li", { "data-turn": turn.id }, el("div", { text: `${turn.type} ${turn.id} “${turn.text.slice(0, 40)}” — ${parts.join(" · ")}` }), bar);
    }),
  );
}
const fmt = (ms) => (ms === undefined ? "–" : `${Math.round(ms)} ms`);

// ------------------------------------------------------------------ face

const EXPRESSIONS = {
  neutral: { brow: 0, browTilt: 0, eye: 9, smile: 0 },
  happy: { brow: -3, browTilt: 0, eye: 7, smile: 1 },
  sad: { brow: 2, browTilt: -6, eye: 8, smile: -0.8 },
  angry: { brow: 4, browTilt: 7, eye: 6, smile: -0.5 },
  surprised: { brow: -9, browTilt: 0, eye: 12, smile: 0 },
  afraid: { brow: -6, browTilt: -5, eye: 11, smile: -0.4 },
  disgusted: { brow: 3, browTilt: 4, eye: 6, smile: -0.6 },
};

function drawFace() {
  const frame = state.speech ? state.speech.frame() : { mouthOpen: 0, mouthWide: 0, expression: { emotion: "neutral", intensity: 0 } };
  const e = EXPRESSIONS[frame.expression.emotion] ?? EXPRESSIONS.neutral;
  const k = Math.max(0.3, Math.min(1, frame.expression.intensity || 0.6));
  const open = frame.mouthOpen;
  const half = 30 + frame.mouthWide * 8;
  const smile = e.smile * k * 10;
  const top = 140 - open * 4;
  const bottom = 140 + open * 26;
  $("mouth").setAttribute("d", `M${100 - half} ${140 - smile} Q100 ${top + smile} ${100 + half} ${140 - smile} Q100 ${bottom + smile * 1.5} ${100 - half} ${140 - smile} Z`);
  const by = 62 + e.brow * k;
  const tilt = e.browTilt * k;
  $("brow-left").setAttribute("d", `M55 ${by - tilt} Q70 ${by - 7} 85 ${by + tilt}`);
  $("brow-right").setAttribute("d", `M115 ${by + tilt} Q130 ${by - 7} 145 ${by - tilt}`);
  for (const id of ["eye-left", "eye-right"]) $(id).setAttribute("ry", String(e.eye));
  const face = $("face");
  face.dataset.mouthOpen = open.toFixed(3);
  face.dataset.emotion = frame.expression.emotion;
  $("mouth-readout").textContent = open.toFixed(2);
  $("expression-readout").textContent = `${frame.expression.emotion} (${frame.expression.expression ?? "-"})`;
  state.mouthMax = Math.max(state.mouthMax, open);
  if (state.analyser) {
    const data = new Float32Array(state.analyser.fftSize);
    state.analyser.getFloatTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v));
    state.peak = peak;
    state.maxPeak = Math.max(state.maxPeak, peak);
  }
  $("samples-readout").textContent = String(state.speech?.player.samplesScheduled ?? 0);
  requestAnimationFrame(drawFace);
}

// ------------------------------------------------------------------ health

async function refreshHealth() {
  const box = $("health");
  try {
    const [health, modules] = await Promise.all([fetch("/health").then((r) => r.json()), fetch("/modules").then((r) => r.json())]);
    if (modules.token_required) $("token-field").hidden = false;
    const rows = (modules.modules ?? []).map((m) =>
      el(
        "tr",
        {},
        el("td", { text: m.name }),
        el("td", { text: m.kind }),
        el("td", { text: m.provider }),
        el("td", { class: m.reachable === true ? "ok" : m.reachable === false ? "down" : "unknown", text: m.reachable === true ? "reachable" : m.reachable === false ? "unreachable" : "not checked" }),
        el("td", { text: m.detail ?? "" }),
        el("td", { text: (m.characters ?? []).join(", ") }),
      ),
    );
    const table = el(
      "table",
      {},
      el("caption", { class: "visually-hidden", text: "Configured modules" }),
      el("thead", {}, el("tr", {}, ...["module", "kind", "provider", "state", "detail", "used by"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...rows),
    );
    box.replaceChildren(
      el("p", { text: `${health.server}: ${health.status}, up ${health.uptime_s} s, ${health.connections} connection(s), config ${health.config}.` }),
      table,
    );
    state.health = { health, modules };
  } catch (error) {
    box.replaceChildren(el("p", { class: "down", text: `Cannot read /health or /modules: ${error.message}` }));
  }
}

// ------------------------------------------------------------------ start

$("connect-form").addEventListener("submit", connect);
$("disconnect").addEventListener("click", () => state.client?.close());
$("entity-form").addEventListener("submit", initEntity);
$("say-form").addEventListener("submit", say);
$("interrupt").addEventListener("click", interrupt);
$("download").addEventListener("click", download);
$("refresh-health").addEventListener("click", refreshHealth);
for (const id of ["filter", "direction", "hide-audio"]) $(id).addEventListener("input", rerender);
wireMic();
refreshHealth();
requestAnimationFrame(drawFace);
setStatus("Not connected. Press Connect.", "idle");
