// The access check of one public request in the backend's Durable Object: each tunnel's
// policies are checked (once per distinct table), and the request may go only to a tunnel whose
// own policies admitted it, so agents of one backend cannot widen each other's access.
import { type AccessGate, AccessTable } from "../access/compose.ts";
import type { AccessScope } from "../access/policy.ts";
import { type Outcome, type Visitor, isRefusal, refusalResponse } from "../access/verdict.ts";
import { RelayError } from "../errors.ts";
import type { HubRoute } from "../hub-route.ts";
import type { HeaderList } from "../protocol/frame.ts";
import type { TunnelRegistry } from "./tunnel-registry.ts";
import type { Tunnel } from "./tunnels.ts";

/** Tables kept at most; each is small, and one backend's agents rarely send more than a few. */
const MAX_TABLES = 64;

/** A gate for a tunnel whose stored policies were lost: it fails closed. */
const LOST: AccessGate = {
  admit: async (v) => ({
    refused: new RelayError("policy_unavailable", "The relay lost this agent's access policies; it reconnects shortly.", v.backend),
  }),
};

/** Compiled access tables by their policies' JSON, so tunnels sending the same ones share caches and counters. */
export class AccessTables {
  private readonly tables = new Map<string, AccessGate>();

  /** The gate for a hello's policies (`null`: stored ones that were lost) and --require-access-token. */
  of(json: string | null | undefined, requireAccess = false): AccessGate | undefined {
    if (json === null) return LOST;
    if (json === undefined && !requireAccess) return undefined;
    const key = `${requireAccess ? 1 : 0}${json ?? ""}`;
    let table = this.tables.get(key);
    if (!table) {
      let scopes: AccessScope[] = json ? JSON.parse(json) : [{ policies: [] }];
      if (requireAccess) scopes = scopes.map((s) => ({ ...s, policies: [{ accessToken: {} }, ...s.policies] }));
      if (this.tables.size >= MAX_TABLES) this.tables.delete(this.tables.keys().next().value!);
      table = new AccessTable(scopes);
      this.tables.set(key, table);
    }
    return table;
  }
}

/**
 * One request's access check over a backend's tunnels: each distinct table's verdict is
 * reached once (a rate limit counts the request once, however many attempts it takes), and a
 * tunnel is admitted only when its own table admitted the request.
 */
export class Admission {
  private readonly verdicts = new Map<AccessGate | undefined, Outcome>();
  private readonly visitor: Visitor;
  /** Who each admitted tunnel's policies said came (X-Relay-User). */
  readonly who = new Map<Tunnel, Outcome>();
  /** The first refusal met, answered when no tunnel admits the request. */
  refusal?: Outcome;

  constructor(
    request: Request,
    route: HubRoute,
    private readonly registry: TunnelRegistry,
    secret: string,
  ) {
    this.visitor = {
      path: route.path ?? "/",
      headers: request.headers,
      clientIp: route.client,
      accessToken: !!route.access,
      backend: route.backend,
      method: request.method,
      scheme: route.scheme ?? "https",
      authority: route.authority ?? "",
      base: route.base ?? "",
      secret,
    };
  }

  /**
   * The tunnels of `tunnels` whose policies admit the request. A tunnel whose hello has not
   * arrived is left out: its policies are not known yet, and it cannot carry a stream before
   * then anyway (a later attempt judges it again).
   */
  async admitted(tunnels: Tunnel[]): Promise<Tunnel[]> {
    if (allOpen(tunnels)) return tunnels;
    const out: Tunnel[] = [];
    for (const tunnel of tunnels) {
      if (!tunnel.meta.hello) continue;
      const gate = tunnel.access ?? (await this.registry.accessOf(tunnel));
      let verdict = this.verdicts.get(gate);
      if (!verdict) {
        verdict = gate ? await gate.admit(this.visitor) : {};
        this.verdicts.set(gate, verdict);
      }
      if (isRefusal(verdict)) this.refusal ??= verdict;
      else {
        out.push(tunnel);
        if (verdict.user || verdict.email) this.who.set(tunnel, verdict);
      }
    }
    return out;
  }

  /** The answer when no tunnel admitted the request. */
  refused(): Response | undefined {
    const r = this.refusal;
    return r && isRefusal(r) ? refusalResponse(r) : undefined;
  }
}

/** Whether every tunnel is known to have no access policies: then any request may take any of them. */
export function allOpen(tunnels: Tunnel[]): boolean {
  for (const t of tunnels) if (!t.meta.hello || t.meta.access || t.meta.hello.requireAccess) return false;
  return true;
}

/** A header value the backend can be given for a user name or email: non-printable characters escaped. */
function headerSafe(text: string): string {
  return text.slice(0, 256).replace(/[^\x20-\x7e]/gu, (c) => encodeURIComponent(c));
}

/** `head` with X-Relay-User and -Email for the tunnel's admitted visitor (public ones were dropped earlier). */
export function withUser(head: HeaderList, who: Outcome | undefined): HeaderList {
  if (!who || isRefusal(who) || (!who.user && !who.email)) return head;
  const fields: HeaderList = [...head];
  if (who.user) fields.push(["x-relay-user", headerSafe(who.user)]);
  if (who.email) fields.push(["x-relay-user-email", headerSafe(who.email)]);
  return fields;
}
