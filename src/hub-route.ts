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
  /** The public path prefix the route took off (`/r/<name>` for path routing), for links the relay makes. */
  base?: string;
  /** The Worker verified an access token for this backend (X-Relay-Access-Token). */
  access?: true;
  /** The client address the edge reported (CF-Connecting-IP), for `ip` and `rateLimit` policies. */
  client?: string;
  /** connect: the verified agent token's issue time (unix seconds) and id. */
  token?: { iat: number; id?: string };
  /** revoke: a token id, or every token issued before `before` (unix seconds). */
  revoke?: HubRevocation;
}

/** One revocation as a backend's object applies it: by token id, or by issue time. */
export type HubRevocation = { id: string } | { before: number };

/** Backend names whose object ids are kept, per namespace; the oldest goes first past this. */
const MAX_IDS = 1024;
const ids = new WeakMap<Env["BACKEND_HUB"], Map<string, DurableObjectId>>();

/**
 * The Durable Object of backend `name`. Its id is derived from the name once and kept (an id is
 * a value, not tied to the request that made it), since every public request needs it.
 */
export function backendHub(env: Env, name: string): DurableObjectStub<import("./hub/backend-hub.ts").BackendHub> {
  const namespace = env.BACKEND_HUB;
  let known = ids.get(namespace);
  if (!known) ids.set(namespace, (known = new Map()));
  let id = known.get(name);
  if (!id) {
    id = namespace.idFromName(name);
    if (known.size >= MAX_IDS) known.delete(known.keys().next().value!);
    known.set(name, id);
  }
  return namespace.get(id);
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
