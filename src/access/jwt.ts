// The `jwt` policy: a token from the Authorization bearer, a named header or a cookie, verified
// with jose against a JWKS URL (fetched by the relay, cached, refetched on an unknown kid) or
// inline keys. An unreachable key set fails closed (503 policy_unavailable).
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { RelayError } from "../errors.ts";
import { BoundedCache } from "./cache.ts";
import type { JwtPolicy } from "./policy.ts";
import type { Outcome, Visitor } from "./verdict.ts";

/** Asymmetric algorithms only: the relay holds no shared secret, and `none` is never one. */
const DEFAULT_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const DEFAULT_SKEW_SECONDS = 30;

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | null, name: string): string | undefined {
  for (const part of (header ?? "").split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Failures that mean the keys could not be had (the fetch failed, timed out, or answered
 * something other than a key set), not that the token is bad: jose reports every token problem
 * as a JOSEError subclass with its own code.
 */
function keysUnavailable(err: unknown): boolean {
  if (!(err instanceof errors.JOSEError)) return true;
  return err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === "ERR_JOSE_GENERIC";
}

export class JwtRule {
  private readonly keys: JWTVerifyGetKey;
  /** Tokens already verified, by their exact text (as basic-auth.ts keys credentials): who, until the token expires. */
  private readonly verified = new BoundedCache<{ user?: string; email?: string }>(1000, 5 * 60_000);

  constructor(private readonly policy: JwtPolicy["jwt"]) {
    this.keys = policy.jwksUrl
      ? createRemoteJWKSet(new URL(policy.jwksUrl), { timeoutDuration: 5000, cooldownDuration: 5000, cacheMaxAge: 10 * 60_000 })
      : createLocalJWKSet({ keys: policy.keys as never });
  }

  /** The token the request carries where the policy looks, "" when malformed, undefined when absent. */
  private token(headers: Headers): string | undefined {
    const { header, cookie } = this.policy;
    if (cookie) return cookieValue(headers.get("cookie"), cookie);
    if (header) return headers.get(header)?.trim();
    const auth = headers.get("authorization");
    if (auth === null) return undefined;
    return /^Bearer +([A-Za-z0-9_.-]+) *$/i.exec(auth)?.[1] ?? "";
  }

  async check(visitor: Visitor): Promise<Outcome> {
    const { backend } = visitor;
    const token = this.token(visitor.headers);
    if (token === undefined) {
      return { refused: new RelayError("auth_required", "This backend needs a token.", backend), headers: this.challenge() };
    }
    const invalid = {
      refused: new RelayError("auth_invalid", "The token is not valid for this backend.", backend),
      headers: this.challenge("invalid_token"),
    };
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token) || token.length > 16 * 1024) return invalid;
    const key = token;
    const known = this.verified.get(key);
    if (known) return known;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        audience: this.policy.audience,
        ...(this.policy.issuer ? { issuer: this.policy.issuer as string[] } : {}),
        algorithms: (this.policy.algorithms as string[] | undefined) ?? DEFAULT_ALGORITHMS,
        clockTolerance: this.policy.clockSkew ?? DEFAULT_SKEW_SECONDS,
      }));
    } catch (err) {
      if (keysUnavailable(err)) {
        return { refused: new RelayError("policy_unavailable", "The relay could not check the token now; try again shortly.", backend) };
      }
      return invalid;
    }
    const claim = payload[this.policy.userClaim ?? "sub"];
    const who = {
      ...(typeof claim === "string" ? { user: claim } : {}),
      ...(typeof payload.email === "string" ? { email: payload.email } : {}),
    };
    this.verified.set(key, who, typeof payload.exp === "number" ? payload.exp * 1000 : undefined);
    return who;
  }

  private challenge(error?: string): Record<string, string> | undefined {
    if (this.policy.header || this.policy.cookie) return undefined;
    return { "www-authenticate": error ? `Bearer error="${error}"` : "Bearer" };
  }
}
