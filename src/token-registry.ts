// The token registry, one global Durable Object: for each token id, the backends it connected
// to and whether it was revoked, so that revoking an id alone reaches that token's tunnels.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env.ts";
import { ROUTE_HEADER, backendHub, encodeRoute } from "./hub-route.ts";

/** What the registry keeps per token id (key `token:<id>`). */
interface TokenRecord {
  /** Backends the token opened a tunnel to: a superset of those with live tunnels now. */
  backends: string[];
  /** When it was revoked, unix ms. */
  revokedAt?: number;
}

/** The one registry instance's name. */
const REGISTRY_NAME = "global";

const key = (id: string) => `token:${id}`;

/** The registry's stub (one instance for the whole relay). */
export function tokenRegistry(env: Env): DurableObjectStub<TokenRegistry> {
  return env.TOKEN_REGISTRY.get(env.TOKEN_REGISTRY.idFromName(REGISTRY_NAME));
}

export class TokenRegistry extends DurableObject<Env> {
  /**
   * Called for each agent connect with a token id: false when the id was revoked; otherwise
   * records `backend` for it (before the tunnel exists, so a revocation from now on reaches it).
   */
  async admit(id: string, backend: string): Promise<boolean> {
    const record = (await this.ctx.storage.get<TokenRecord>(key(id))) ?? { backends: [] };
    if (record.revokedAt !== undefined) return false;
    if (!record.backends.includes(backend)) {
      record.backends.push(backend);
      await this.ctx.storage.put(key(id), record);
    }
    return true;
  }

  /**
   * Revokes a token id for good, then has each backend it connected to refuse it and close its
   * tunnels. Resolves with those backends and how many tunnels closed.
   */
  async revoke(id: string): Promise<{ id: string; backends: string[]; closed: number }> {
    const record = (await this.ctx.storage.get<TokenRecord>(key(id))) ?? { backends: [] };
    record.revokedAt ??= Date.now();
    await this.ctx.storage.put(key(id), record);
    const results = await Promise.all(
      record.backends.map(async (backend) => {
        const headers = { [ROUTE_HEADER]: encodeRoute({ op: "revoke", backend, revoke: { id } }) };
        const response = await backendHub(this.env, backend).fetch(
          new Request("https://relay.internal/revoke", { method: "POST", headers }),
        );
        return ((await response.json()) as { closed: number }).closed;
      }),
    );
    return { id, backends: record.backends, closed: results.reduce((a, b) => a + b, 0) };
  }
}
