// The backend directory, one global Durable Object: which backends hold agent tunnels, kept
// current by each backend's object on every connect and close, so the admin API can list them.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.ts";

/** What the directory keeps per backend (key `backend:<name>`). */
interface BackendEntry {
  /** Open tunnels, as the backend's object last counted them. */
  tunnels: number;
  /** The report's order stamp: an older report arriving late never overwrites a newer one. */
  at: number;
  /** When the count last went to zero, unix ms. */
  emptySince?: number;
}

/** The one directory instance's name. */
const DIRECTORY_NAME = "global";
/** A backend without tunnels stays listed this long, so its counters still reach /_relay/metrics. */
const KEEP_EMPTY_MS = 24 * 3600 * 1000;
const PREFIX = "backend:";

/** The directory's stub (one instance for the whole relay). */
export function backendDirectory(env: Env): DurableObjectStub<BackendDirectory> {
  return env.BACKEND_DIRECTORY.get(env.BACKEND_DIRECTORY.idFromName(DIRECTORY_NAME));
}

export class BackendDirectory extends DurableObject<Env> {
  /**
   * Records that `backend` has `tunnels` open tunnels. Reports carry the whole count, never a
   * change, so an object rebuilt after hibernation or a report sent twice cannot count a tunnel
   * twice; `at` orders the reports of one backend.
   */
  async report(backend: string, tunnels: number, at: number): Promise<void> {
    const key = PREFIX + backend;
    const prior = await this.ctx.storage.get<BackendEntry>(key);
    if (prior && prior.at > at) return;
    const entry: BackendEntry = { tunnels, at };
    if (tunnels === 0) entry.emptySince = prior?.tunnels === 0 ? (prior.emptySince ?? Date.now()) : Date.now();
    await this.ctx.storage.put(key, entry);
  }

  /**
   * Backend names, sorted: those with tunnels, and with `recent` also those that had some in the
   * last day. Entries empty for longer are forgotten here.
   */
  async backends(recent = false): Promise<string[]> {
    const now = Date.now();
    const names: string[] = [];
    const stale: string[] = [];
    for (const [key, entry] of await this.ctx.storage.list<BackendEntry>({ prefix: PREFIX })) {
      if (entry.tunnels > 0) names.push(key.slice(PREFIX.length));
      else if (now - (entry.emptySince ?? 0) > KEEP_EMPTY_MS) stale.push(key);
      else if (recent) names.push(key.slice(PREFIX.length));
    }
    // delete() takes at most 128 keys; the rest go at the next listing.
    if (stale.length) await this.ctx.storage.delete(stale.slice(0, 128));
    return names;
  }
}
