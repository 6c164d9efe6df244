// What one backend's Durable Object shows the admin API, /_relay/metrics and the dashboard: its
// open tunnels (agent version, targets, streams in flight), public WebSockets and counters.
import type { TunnelRegistry } from "../hub/tunnel-registry.ts";
import type { CounterSnapshot } from "./hub-counters.ts";

/** One open tunnel as the admin views list it. */
export interface TunnelView {
  tunnelId: string;
  agentId: string | null;
  /** The version from the agent's hello `software` (`edge-relay-agent/0.1.0` -> `0.1.0`). */
  agentVersion: string | null;
  software: string | null;
  /** What the agent's targets speak (its hello's `targetProtocols`). */
  targets: string[];
  caps: string[];
  streams: number;
  draining: boolean;
  connectedAt: string;
  lastHeartbeat: string;
}

/** One backend's view: the answer of the hub's `observe` op. */
export interface HubView {
  backend: string;
  tunnels: TunnelView[];
  /** Streams in flight over all its tunnels. */
  streams: number;
  /** Public WebSockets open. */
  websockets: number;
  counters: CounterSnapshot;
}

/** The version part of a hello's `software` ("name/version"), or the whole string without a slash. */
export function agentVersion(software: string | null): string | null {
  if (software === null) return null;
  const slash = software.lastIndexOf("/");
  return slash === -1 ? software : software.slice(slash + 1);
}

/** Builds the view from the registry's admin status (open tunnels only), the WebSocket count and counters. */
export function hubView(status: ReturnType<TunnelRegistry["status"]>, websockets: number, counters: CounterSnapshot): HubView {
  const tunnels = status.tunnels
    .filter((t) => t.open)
    .map(
      (t): TunnelView => ({
        tunnelId: t.tunnelId,
        agentId: t.agentId,
        agentVersion: agentVersion(t.software),
        software: t.software,
        targets: t.targetProtocols,
        caps: t.caps,
        streams: t.streams,
        draining: t.draining,
        connectedAt: t.connectedAt,
        lastHeartbeat: t.lastHeartbeat,
      }),
    );
  return { backend: status.backend, tunnels, streams: tunnels.reduce((n, t) => n + t.streams, 0), websockets, counters };
}
