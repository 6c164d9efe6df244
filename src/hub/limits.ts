// How much one backend's Durable Object takes on: tunnels, streams per tunnel and public
// WebSockets, each named, with a var to lower it (docs/limits.md "Counts").
import type { Env } from "../env.ts";
import { RelayError } from "../errors.ts";

/** Agent tunnels one backend may hold open; the next connect gets 429 `too_many_tunnels`. */
export const MAX_TUNNELS = 64;
/** Streams in flight on one tunnel; a request finding every tunnel full gets 503 `too_many_streams`. */
export const MAX_STREAMS_PER_TUNNEL = 1000;
/** Public WebSockets one backend may hold open; the next upgrade gets 503 `too_many_websockets`. */
export const MAX_WEBSOCKETS = 10_000;

/** The limits in force: the constants above, or smaller ones from the vars. */
export interface Limits {
  tunnels: number;
  streamsPerTunnel: number;
  websockets: number;
}

/** Reads the limits from the vars (RELAY_MAX_TUNNELS, RELAY_MAX_STREAMS, RELAY_MAX_WEBSOCKETS). */
export function limitsOf(env: Env): Limits {
  return {
    tunnels: positive(env.RELAY_MAX_TUNNELS, MAX_TUNNELS),
    streamsPerTunnel: positive(env.RELAY_MAX_STREAMS, MAX_STREAMS_PER_TUNNEL),
    websockets: positive(env.RELAY_MAX_WEBSOCKETS, MAX_WEBSOCKETS),
  };
}

function positive(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

/** The 429 for a connect past the backend's tunnel limit. */
export function tooManyTunnels(backend: string, limit: number): RelayError {
  return new RelayError(
    "too_many_tunnels",
    `Backend "${backend}" already has ${limit} agent tunnels, its limit (RELAY_MAX_TUNNELS); lower --connections or run fewer agents.`,
    backend,
  );
}

/** The 503 for a request when every tunnel carries its limit of streams. */
export function tooManyStreams(backend: string, limit: number): RelayError {
  return new RelayError(
    "too_many_streams",
    `Every agent tunnel of backend "${backend}" carries ${limit} streams, its limit (RELAY_MAX_STREAMS); try again shortly.`,
    backend,
  );
}

/** The 503 for a WebSocket upgrade past the backend's public WebSocket limit. */
export function tooManyWebSockets(backend: string, limit: number): RelayError {
  return new RelayError(
    "too_many_websockets",
    `Backend "${backend}" already holds ${limit} public WebSockets, its limit (RELAY_MAX_WEBSOCKETS); try again later.`,
    backend,
  );
}
