// Visitor access policies as the agent declares them and the relay enforces them: the types and
// their one validator, shared by the agent (config time) and the relay (hello time). Pure.
import { parseCidr } from "./ip.ts";
import { bypassEntryProblem } from "./path.ts";

/** A password hash as `edge-relay hash-password` prints it: pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>. */
export const PASSWORD_HASH = /^pbkdf2-sha256\$(\d{4,7})\$([A-Za-z0-9+/]{16,}={0,2})\$([A-Za-z0-9+/]{43}=?)$/;

export interface BasicAuthPolicy {
  basicAuth: { realm?: string; users: Array<{ name: string; passwordHash: string }> };
}
export interface JwtPolicy {
  jwt: {
    /** Where the token is: the Authorization bearer (default), a named header, or a cookie. */
    header?: string;
    cookie?: string;
    /** The key set: a JWKS URL the relay fetches, or inline JWKs. */
    jwksUrl?: string;
    keys?: Array<Record<string, unknown>>;
    issuer?: string | string[];
    audience: string | string[];
    algorithms?: string[];
    /** Seconds of clock difference tolerated on exp and nbf (default 30). */
    clockSkew?: number;
    /** The claim the backend learns as X-Relay-User (default sub). */
    userClaim?: string;
  };
}
export interface OidcPolicy {
  oidc: {
    /** The provider's issuer URL; its /.well-known/openid-configuration is read by the relay. */
    issuer: string;
    clientId: string;
    /** Absent: a public client (PKCE only). */
    clientSecret?: string;
    /** Scopes asked for besides openid (default email, profile). */
    scopes?: string[];
    /** Claims rules: any one that matches admits (none given: every account of the provider). */
    allowedEmails?: string[];
    allowedDomains?: string[];
    allowedGroups?: string[];
    /** Seconds a login lasts (default 8 h). */
    sessionSeconds?: number;
  };
}
export interface IpPolicy {
  ip: { allow?: string[]; deny?: string[] };
}
export interface RateLimitPolicy {
  rateLimit: { requests: number; perSeconds: number };
}
export interface AccessTokenPolicy {
  accessToken: Record<string, never>;
}
export interface AnyOfPolicy {
  anyOf: Policy[];
}
export interface BypassPolicy {
  bypass: string[];
}
export type Policy = BasicAuthPolicy | JwtPolicy | OidcPolicy | IpPolicy | RateLimitPolicy | AccessTokenPolicy | AnyOfPolicy | BypassPolicy;

export const POLICY_KINDS = ["basicAuth", "jwt", "oidc", "ip", "rateLimit", "accessToken", "anyOf", "bypass"] as const;
export type PolicyKind = (typeof POLICY_KINDS)[number];

/**
 * The policies of one agent rule of a backend, as sent in the agent's hello: the rule's path
 * prefix (absent: every path) and its `access:` list. The agent sends one scope per rule of the
 * backend, in the rule order, so the relay picks the rule the agent will pick.
 */
export interface AccessScope {
  path?: string;
  policies: Policy[];
}

/** Largest `access` a hello may carry, as JSON. */
export const MAX_ACCESS_BYTES = 48 * 1024;
const MAX_ITEMS = 256;
const JWT_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "HS256",
  "HS384",
  "HS512",
];

/** A policy list that cannot be used; `path` is the key path inside it (`[1].basicAuth.users[0].name`). */
export class PolicyError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path} ${problem}`);
    this.name = "PolicyError";
  }
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

function fail(path: string, problem: string): never {
  throw new PolicyError(path, problem);
}

function keysOnly(o: Obj, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(o))
    if (!allowed.includes(key)) fail(`${path}.${key}`, `is not a setting; the keys are ${allowed.join(", ")}`);
}

function str(v: unknown, path: string, max = 2048): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max) fail(path, `must be a non-empty string of at most ${max} characters`);
  return v;
}

function strList(v: unknown, path: string, optional = true): string[] | undefined {
  if (v === undefined && optional) return undefined;
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || list.length > MAX_ITEMS)
    fail(path, `must be a string or a list of 1 to ${MAX_ITEMS} strings`);
  return list.map((item, i) => str(item, `${path}[${i}]`));
}

function urlProtocol(text: string): string {
  try {
    return new URL(text).protocol;
  } catch {
    return "";
  }
}

/** Checks one policy list (`access:`) and returns it typed; throws PolicyError naming the key path. */
export function validatePolicies(value: unknown, path = ""): Policy[] {
  if (!Array.isArray(value) || value.length > MAX_ITEMS) fail(path || "access", `must be a list of at most ${MAX_ITEMS} policies`);
  return value.map((p, i) => validatePolicy(p, `${path}[${i}]`));
}

function validatePolicy(p: unknown, path: string): Policy {
  if (!isObj(p) || Object.keys(p).length !== 1) fail(path, `must be a mapping with one key, the policy kind (${POLICY_KINDS.join(", ")})`);
  const kind = Object.keys(p)[0] as PolicyKind;
  const body = p[kind];
  const at = `${path}.${kind}`;
  switch (kind) {
    case "basicAuth": {
      if (!isObj(body)) fail(at, "must be a mapping with users (and realm)");
      keysOnly(body, at, ["realm", "users"]);
      if (
        body.realm !== undefined &&
        (typeof body.realm !== "string" || !/^[\x20-\x7e]{1,100}$/.test(body.realm) || /["\\]/.test(body.realm))
      )
        fail(`${at}.realm`, "must be 1 to 100 printable ASCII characters without quotes or backslashes");
      if (!Array.isArray(body.users) || body.users.length === 0 || body.users.length > MAX_ITEMS)
        fail(`${at}.users`, `must list 1 to ${MAX_ITEMS} users`);
      const names = new Set<string>();
      const users = body.users.map((u, j) => {
        const up = `${at}.users[${j}]`;
        if (!isObj(u)) fail(up, "must be a mapping with name and passwordHash");
        keysOnly(u, up, ["name", "passwordHash"]);
        const name = str(u.name, `${up}.name`, 256);
        if (name.includes(":")) fail(`${up}.name`, 'must not contain ":" (basic auth separates name and password with it)');
        if (names.has(name)) fail(`${up}.name`, `repeats user "${name}"`);
        names.add(name);
        if (typeof u.passwordHash !== "string" || !PASSWORD_HASH.test(u.passwordHash))
          fail(`${up}.passwordHash`, "must be a hash from `edge-relay hash-password` (pbkdf2-sha256$iterations$salt$hash)");
        return { name, passwordHash: u.passwordHash };
      });
      return { basicAuth: { ...(body.realm !== undefined ? { realm: body.realm as string } : {}), users } };
    }
    case "jwt": {
      if (!isObj(body)) fail(at, "must be a mapping with audience and jwksUrl or keys");
      keysOnly(body, at, ["header", "cookie", "jwksUrl", "keys", "issuer", "audience", "algorithms", "clockSkew", "userClaim"]);
      if (body.header !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/.test(String(body.header)))
        fail(`${at}.header`, "must be a header name");
      if (body.cookie !== undefined && !/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/.test(String(body.cookie)))
        fail(`${at}.cookie`, "must be a cookie name");
      if (body.header !== undefined && body.cookie !== undefined) fail(at, "takes header or cookie, not both");
      if ((body.jwksUrl === undefined) === (body.keys === undefined)) fail(at, "needs exactly one of jwksUrl and keys");
      if (body.jwksUrl !== undefined) {
        const url = str(body.jwksUrl, `${at}.jwksUrl`);
        if (!/^https?:$/.test(urlProtocol(url))) fail(`${at}.jwksUrl`, "must be an http(s) URL");
      }
      if (
        body.keys !== undefined &&
        (!Array.isArray(body.keys) || body.keys.length === 0 || body.keys.length > 32 || !body.keys.every(isObj))
      )
        fail(`${at}.keys`, "must be a list of 1 to 32 JWKs (mappings with kty)");
      (body.keys as Obj[] | undefined)?.forEach((k, j) => {
        if (typeof k.kty !== "string") fail(`${at}.keys[${j}]`, "must be a JWK with kty");
        if ("d" in k || "p" in k || "k" in k)
          fail(`${at}.keys[${j}]`, "must be a public key (no d, p or k): the relay needs no secret to verify");
      });
      const audience = strList(body.audience, `${at}.audience`, false)!;
      const issuer = strList(body.issuer, `${at}.issuer`);
      const algorithms = strList(body.algorithms, `${at}.algorithms`);
      algorithms?.forEach((a, j) => {
        if (!JWT_ALGORITHMS.includes(a) || a.startsWith("HS"))
          fail(`${at}.algorithms[${j}]`, `must be one of ${JWT_ALGORITHMS.filter((x) => !x.startsWith("HS")).join(", ")}`);
      });
      if (
        body.clockSkew !== undefined &&
        !(Number.isInteger(body.clockSkew) && (body.clockSkew as number) >= 0 && (body.clockSkew as number) <= 600)
      )
        fail(`${at}.clockSkew`, "must be a whole number of seconds from 0 to 600");
      if (body.userClaim !== undefined) str(body.userClaim, `${at}.userClaim`, 100);
      return { jwt: { ...(body as JwtPolicy["jwt"]), audience, ...(issuer ? { issuer } : {}), ...(algorithms ? { algorithms } : {}) } };
    }
    case "oidc": {
      if (!isObj(body)) fail(at, "must be a mapping with issuer and clientId");
      keysOnly(body, at, [
        "issuer",
        "clientId",
        "clientSecret",
        "scopes",
        "allowedEmails",
        "allowedDomains",
        "allowedGroups",
        "sessionSeconds",
      ]);
      const issuer = str(body.issuer, `${at}.issuer`);
      if (!/^https?:$/.test(urlProtocol(issuer))) fail(`${at}.issuer`, "must be the provider's http(s) issuer URL");
      str(body.clientId, `${at}.clientId`, 256);
      if (body.clientSecret !== undefined) str(body.clientSecret, `${at}.clientSecret`, 1024);
      const lists: Record<string, string[] | undefined> = {};
      for (const key of ["scopes", "allowedEmails", "allowedDomains", "allowedGroups"]) lists[key] = strList(body[key], `${at}.${key}`);
      const seconds = body.sessionSeconds;
      if (seconds !== undefined && !(Number.isInteger(seconds) && (seconds as number) >= 60 && (seconds as number) <= 30 * 86_400))
        fail(`${at}.sessionSeconds`, "must be a whole number of seconds from 60 to 2592000 (30 days)");
      return { oidc: { ...(body as OidcPolicy["oidc"]), ...Object.fromEntries(Object.entries(lists).filter(([, v]) => v)) } };
    }
    case "ip": {
      if (!isObj(body)) fail(at, "must be a mapping with allow and/or deny");
      keysOnly(body, at, ["allow", "deny"]);
      if (body.allow === undefined && body.deny === undefined) fail(at, "needs allow or deny");
      for (const side of ["allow", "deny"] as const) {
        strList(body[side], `${at}.${side}`)?.forEach((c, j) => {
          if (!parseCidr(c)) fail(`${at}.${side}[${j}]`, `"${c.slice(0, 60)}" is not an IPv4 or IPv6 address or CIDR block`);
        });
      }
      return {
        ip: {
          ...(body.allow !== undefined ? { allow: strList(body.allow, "")! } : {}),
          ...(body.deny !== undefined ? { deny: strList(body.deny, "")! } : {}),
        },
      };
    }
    case "rateLimit": {
      if (!isObj(body)) fail(at, "must be a mapping with requests and perSeconds");
      keysOnly(body, at, ["requests", "perSeconds"]);
      const { requests, perSeconds } = body;
      if (!Number.isInteger(requests) || (requests as number) < 1 || (requests as number) > 1_000_000)
        fail(`${at}.requests`, "must be a whole number from 1 to 1000000");
      if (!Number.isInteger(perSeconds) || (perSeconds as number) < 1 || (perSeconds as number) > 86_400)
        fail(`${at}.perSeconds`, "must be a whole number of seconds from 1 to 86400");
      return { rateLimit: { requests: requests as number, perSeconds: perSeconds as number } };
    }
    case "accessToken": {
      if (body !== null && body !== true && !(isObj(body) && Object.keys(body).length === 0))
        fail(at, "takes no settings (write accessToken: {})");
      return { accessToken: {} };
    }
    case "anyOf": {
      if (!Array.isArray(body) || body.length < 2 || body.length > MAX_ITEMS) fail(at, "must list at least 2 alternative policies");
      return {
        anyOf: body.map((alt, j) => {
          const policy = validatePolicy(alt, `${at}[${j}]`);
          if ("bypass" in policy || "rateLimit" in policy)
            fail(`${at}[${j}]`, "cannot be an alternative: bypass and rateLimit apply to the whole list");
          return policy;
        }),
      };
    }
    case "bypass": {
      const paths = strList(body, at, false)!;
      paths.forEach((entry, j) => {
        const problem = bypassEntryProblem(entry);
        if (problem) fail(`${at}[${j}]`, problem);
      });
      return { bypass: paths };
    }
    default:
      return fail(path, `names "${String(kind).slice(0, 40)}", which is not a policy kind (${POLICY_KINDS.join(", ")})`);
  }
}

/** Checks the `access` field of a hello: a list of scopes with a path prefix and policies. */
export function validateScopes(value: unknown): AccessScope[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_ITEMS) fail("access", `must be a list of 1 to ${MAX_ITEMS} scopes`);
  return value.map((s, i) => {
    const at = `access[${i}]`;
    if (!isObj(s)) fail(at, "must be a mapping with path and policies");
    keysOnly(s, at, ["path", "policies"]);
    if (s.path !== undefined && (typeof s.path !== "string" || !/^\/[^?#\s]*[^/?#\s]$/.test(s.path)))
      fail(`${at}.path`, "must be a path prefix like /api");
    return { ...(s.path !== undefined ? { path: s.path as string } : {}), policies: validatePolicies(s.policies, `${at}.policies`) };
  });
}
