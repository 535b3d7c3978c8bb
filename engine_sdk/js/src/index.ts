/** Entity Bridge SDK for web games: EEP/1 client, speech player, face timeline, microphone. */
export * from "./codec.js";
export * from "./client.js";
export * from "./recorder.js";
export * from "./timeline.js";
export * from "./player.js";
export * from "./mic.js";
export { AsyncQueue, Fanout } from "./stream.js";
export type * from "./generated/protocol.js";
export { EVENT_DIRECTIONS } from "./generated/protocol.js";
