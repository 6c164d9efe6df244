// A backend tunnel's access table compiled: the scope (agent rule) a request falls under, its
// bypass paths, and its policies, all of which must pass (`anyOf`: one of the alternatives).
import { RelayError } from "../errors.ts";
import { BasicAuth } from "./basic-auth.ts";
import { IpRule } from "./ip-rule.ts";
import { JwtRule } from "./jwt.ts";
import { OIDC_PREFIX, OidcLogin } from "./oidc.ts";
import { bypassed, pathOnly, scopesFor } from "./path.ts";
import type { AccessScope, Policy } from "./policy.ts";
import { RateLimit } from "./rate-limit.ts";
import { type Outcome, type Visitor, isRefusal } from "./verdict.ts";

/** One compiled policy. */
interface Check {
  check(visitor: Visitor): Outcome | Promise<Outcome>;
}

class AccessTokenCheck implements Check {
  check(visitor: Visitor): Outcome {
    if (visitor.accessToken) return {};
    const { backend } = visitor;
    return {
      refused: new RelayError(
        "access_denied",
        `Backend "${backend}" requires an access token in the X-Relay-Access-Token header (mint one with \`edge-relay token ${backend} --access\`).`,
        backend,
      ),
    };
  }
}

class AnyOf implements Check {
  constructor(readonly alternatives: Check[]) {}

  /** The first alternative that admits; else the most telling refusal, with every challenge. */
  async check(visitor: Visitor): Promise<Outcome> {
    const refusals: Array<{ refused: RelayError; headers?: Record<string, string> }> = [];
    let answer: Outcome | undefined;
    for (const alt of this.alternatives) {
      const outcome = await alt.check(visitor);
      if (!isRefusal(outcome)) return outcome;
      if (outcome.refused) refusals.push(outcome);
      else answer ??= outcome;
    }
    // A browser sent to an oidc login is the answer when no alternative took the request.
    if (answer && refusals.every((r) => r.refused.code === "auth_required")) return answer;
    const telling = refusals.find((r) => r.refused.code !== "auth_required") ?? refusals[0];
    const challenges = refusals.map((r) => r.headers?.["www-authenticate"]).filter((c): c is string => !!c);
    return { ...telling, headers: { ...telling.headers, ...(challenges.length ? { "www-authenticate": challenges.join(", ") } : {}) } };
  }
}

function compile(policy: Policy): Check | undefined {
  if ("basicAuth" in policy) {
    const rule = new BasicAuth(policy.basicAuth);
    return { check: (v) => rule.check(v.headers, v.backend) };
  }
  if ("jwt" in policy) return new JwtRule(policy.jwt);
  if ("ip" in policy) return new IpRule(policy.ip);
  if ("rateLimit" in policy) return new RateLimit(policy.rateLimit);
  if ("accessToken" in policy) return new AccessTokenCheck();
  if ("anyOf" in policy) return new AnyOf(policy.anyOf.map((p) => compile(p)!));
  if ("oidc" in policy) return new OidcLogin(policy.oidc);
  return undefined;
}

/** One scope compiled: its bypass paths and its checks. */
interface CompiledScope {
  prefix?: string;
  bypass: string[];
  checks: Check[];
}

/** What a tunnel's requests must pass. */
export interface AccessGate {
  admit(visitor: Visitor): Promise<Outcome>;
}

/** The compiled access table of one or more tunnels (shared by tunnels that sent the same one). */
export class AccessTable implements AccessGate {
  private readonly scopes: CompiledScope[];
  private readonly prefixes: Array<string | undefined>;
  /** Every oidc login of the table, alternatives included: they own the relay's /_relay/oidc/ paths. */
  private readonly logins: OidcLogin[];

  constructor(scopes: AccessScope[]) {
    this.scopes = scopes.map((s) => ({
      prefix: s.path,
      bypass: s.policies.flatMap((p) => ("bypass" in p ? p.bypass : [])),
      checks: s.policies.map(compile).filter((c): c is Check => !!c),
    }));
    this.prefixes = this.scopes.map((s) => s.prefix);
    const all = (checks: Check[]): Check[] => checks.flatMap((c) => (c instanceof AnyOf ? all(c.alternatives) : [c]));
    this.logins = all(this.scopes.flatMap((s) => s.checks)).filter((c): c is OidcLogin => c instanceof OidcLogin);
  }

  /**
   * Whether the request may reach a tunnel with this table: every scope it falls under
   * (src/access/path.ts scopesFor) must pass, each by a bypass path or by all its checks.
   * The first user a check names is the one the backend learns.
   */
  async admit(visitor: Visitor): Promise<Outcome> {
    // The login callback and logout are the relay's, under whichever rule their path falls: a
    // table with an oidc login never forwards them.
    if (this.logins.length && pathOnly(visitor.path).startsWith(OIDC_PREFIX)) {
      for (const login of this.logins) {
        const answer = await login.relayPath(visitor);
        if (answer) return answer;
      }
      return {
        refused: new RelayError("auth_invalid", "The login did not complete: it was not started here or took too long.", visitor.backend),
      };
    }
    let who: Outcome = {};
    for (const index of scopesFor(this.prefixes, visitor.path)) {
      const scope = this.scopes[index];
      if (scope.bypass.length && bypassed(scope.bypass, visitor.path)) continue;
      for (const check of scope.checks) {
        const outcome = await check.check(visitor);
        if (isRefusal(outcome)) return outcome;
        if (!who.user && outcome.user) who = outcome;
      }
    }
    return who;
  }
}
