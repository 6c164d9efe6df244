// What the Worker tells a backend's Durable Object about a request it passes on: one trusted
// header, x-relay-route, holding JSON. The Worker always sets it (replacing any a public client
// sent), so the object trusts it and nothing else; every other x-relay- field on the request is
// public and is dropped before the request reaches an agent.

import type { Env } from "./env.ts";

/** The one internal header. */
export const ROUTE_HEADER = "x-relay-route";

/** What a request to the Durable Object is for. */
export interface HubRoute {
  /** Absent for a public request to relay; else an agent tunnel, the admin view, drain, a revocation or the observers' view. */
  op?: "connect" | "status" | "drain" | "revoke" | "observe";
  backend: string;
  /** Path and query the backend sees (public requests). */
  path?: string;
  /** The public request's scheme and host: the head's :scheme and :authority, and X-Forwarded-Proto/-Host. */
  scheme?: string;
  authority?: string;
  /** The Worker verified an access token for this backend (X-Relay-Access-Token). */
  access?: true;
  /** connect: the verified agent token's issue time (unix seconds) and id. */
  token?: { iat: number; id?: string };
  /** revoke: a token id, or every token issued before `before` (unix seconds). */
  revoke?: HubRevocation;
}

/** One revocation as a backend's object applies it: by token id, or by issue time. */
export type HubRevocation = { id: string } | { before: number };

/** The Durable Object of backend `name`. */
export function backendHub(env: Env, name: string): DurableObjectStub<import("./hub/backend-hub.ts").BackendHub> {
  return env.BACKEND_HUB.get(env.BACKEND_HUB.idFromName(name));
}

/** Sends an admin or observers' op (`route.op`) to the route's backend object; `url` is the request's, for logs. */
export function askHub(env: Env, url: string, route: HubRoute): Promise<Response> {
  const headers = new Headers({ [ROUTE_HEADER]: encodeRoute(route) });
  return backendHub(env, route.backend).fetch(new Request(url, { method: "POST", headers }));
}

export function encodeRoute(route: HubRoute): string {
  return JSON.stringify(route);
}

/** The route the Worker set, or undefined when the header is missing or malformed. */
export function decodeRoute(value: string | null): HubRoute | undefined {
  if (value === null) return undefined;
  try {
    const route = JSON.parse(value) as HubRoute | null;
    return route && typeof route.backend === "string" ? route : undefined;
  } catch {
    return undefined;
  }
}
