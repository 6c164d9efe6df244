// The `oidc` policy: a browser login at the edge. An unauthenticated browser is sent to the
// provider (authorization code + PKCE + state + nonce); the callback, on a relay path of the
// backend's own host, verifies the ID token and sets a signed session cookie. Other clients get 401.
import { createRemoteJWKSet, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { RelayError } from "../errors.ts";
import { cookieValue } from "./jwt.ts";
import { pathOnly } from "./path.ts";
import type { OidcPolicy } from "./policy.ts";
import type { Outcome, Visitor } from "./verdict.ts";

/** Relay paths on the backend's host (under /r/<name> with path routing). */
export const OIDC_PREFIX = "/_relay/oidc/";
export const OIDC_CALLBACK = "/_relay/oidc/callback";
export const OIDC_LOGOUT = "/_relay/oidc/logout";
const SESSION_COOKIE = "__edge_relay_session";
/** The login in flight (state, nonce, PKCE verifier, where to go back), or "out" after a logout. */
const LOGIN_COOKIE = "__edge_relay_login";
const LOGIN_SECONDS = 600;
const DEFAULT_SESSION_SECONDS = 8 * 3600;

const encoder = new TextEncoder();
const b64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
const unb64url = (text: string) => Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
const random = (n: number) => b64url(crypto.getRandomValues(new Uint8Array(n)));

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
  jwks_uri: string;
}

interface Session {
  sub: string;
  email?: string;
  exp: number;
}

interface Login {
  state: string;
  nonce: string;
  verifier: string;
  to: string;
  exp: number;
}

export class OidcLogin {
  private discovery?: Promise<Discovery>;
  private keys?: JWTVerifyGetKey;
  private key?: Promise<CryptoKey>;

  constructor(private readonly policy: OidcPolicy["oidc"]) {}

  /**
   * The answer for the relay's own paths (the callback of a login this policy started, and the
   * logout), whatever rule of the agent their path falls under; undefined when not this
   * policy's. src/access/compose.ts asks every oidc policy of a table before any rule's checks.
   */
  async relayPath(v: Visitor): Promise<Outcome | undefined> {
    const path = pathOnly(v.path);
    if (path === OIDC_LOGOUT) return { answer: this.logout(v) };
    if (path !== OIDC_CALLBACK) return undefined;
    const login = await this.open<Login>(v, cookieValue(v.headers.get("cookie"), LOGIN_COOKIE));
    return login ? this.callback(v, login) : undefined;
  }

  async check(v: Visitor): Promise<Outcome> {
    const session = await this.open<Session>(v, cookieValue(v.headers.get("cookie"), SESSION_COOKIE));
    if (session && session.exp > Date.now() / 1000) return { user: session.sub, ...(session.email ? { email: session.email } : {}) };
    const browser =
      (v.method === "GET" || v.method === "HEAD") && !v.headers.get("upgrade") && /text\/html/.test(v.headers.get("accept") ?? "");
    if (!browser) return { refused: new RelayError("auth_required", "This backend needs a browser login.", v.backend) };
    return this.startLogin(v);
  }

  /** Redirects the browser to the provider, remembering the login in a short-lived signed cookie. */
  private async startLogin(v: Visitor): Promise<Outcome> {
    const provider = await this.provider(v);
    if (!("authorization_endpoint" in provider)) return provider;
    const login: Login = {
      state: random(16),
      nonce: random(16),
      verifier: random(32),
      to: `${v.base}${v.path}`,
      exp: Math.floor(Date.now() / 1000) + LOGIN_SECONDS,
    };
    const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(login.verifier))));
    const url = new URL(provider.authorization_endpoint);
    const params = {
      response_type: "code",
      client_id: this.policy.clientId,
      redirect_uri: this.redirectUri(v),
      scope: ["openid", ...(this.policy.scopes ?? ["email", "profile"])].join(" "),
      state: login.state,
      nonce: login.nonce,
      code_challenge: challenge,
      code_challenge_method: "S256",
    };
    for (const [k, val] of Object.entries(params)) url.searchParams.set(k, val);
    // After a logout, the provider is asked to show its login form again rather than reuse its own session.
    if (cookieValue(v.headers.get("cookie"), LOGIN_COOKIE) === "out") url.searchParams.set("prompt", "login");
    const headers = new Headers({ location: url.href, "cache-control": "no-store" });
    headers.append("set-cookie", this.cookie(v, LOGIN_COOKIE, await this.seal(v, login), LOGIN_SECONDS));
    return { answer: new Response(null, { status: 302, headers }) };
  }

  /** The provider's redirect back: checks state, exchanges the code, verifies the ID token, opens a session. */
  private async callback(v: Visitor, login: Login): Promise<Outcome> {
    const query = new URL(v.path, "http://x").searchParams;
    const invalid = (why: string) => ({ refused: new RelayError("auth_invalid", `The login did not complete: ${why}.`, v.backend) });
    const code = query.get("code");
    if (login.exp < Date.now() / 1000 || query.get("state") !== login.state) return invalid("it was not started here or took too long");
    if (!code) return invalid(`the provider answered ${(query.get("error") ?? "without a code").slice(0, 60)}`);
    const provider = await this.provider(v);
    if (!("token_endpoint" in provider)) return provider;
    const body = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: this.redirectUri(v),
      code_verifier: login.verifier,
      client_id: this.policy.clientId,
    });
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
    if (this.policy.clientSecret) {
      const pair = `${encodeURIComponent(this.policy.clientId)}:${encodeURIComponent(this.policy.clientSecret)}`;
      headers.authorization = `Basic ${btoa(pair)}`;
    }
    let idToken: unknown;
    try {
      const res = await fetch(provider.token_endpoint, { method: "POST", headers, body });
      idToken = res.ok ? ((await res.json()) as { id_token?: unknown }).id_token : undefined;
      if (!res.ok && res.status < 500) return invalid("the provider refused the code");
    } catch {
      return this.unavailable(v);
    }
    if (typeof idToken !== "string") return this.unavailable(v);
    let claims: JWTPayload;
    try {
      this.keys ??= createRemoteJWKSet(new URL(provider.jwks_uri), { timeoutDuration: 5000, cooldownDuration: 5000 });
      ({ payload: claims } = await jwtVerify(idToken, this.keys, { issuer: this.policy.issuer, audience: this.policy.clientId }));
    } catch {
      return invalid("the provider's ID token did not verify");
    }
    if (claims.nonce !== login.nonce || typeof claims.sub !== "string") return invalid("the ID token is not for this login");
    if (!this.allowed(claims)) return { refused: new RelayError("auth_invalid", "This account may not use this backend.", v.backend) };
    const seconds = this.policy.sessionSeconds ?? DEFAULT_SESSION_SECONDS;
    const session: Session = {
      sub: claims.sub,
      ...(typeof claims.email === "string" ? { email: claims.email } : {}),
      exp: Math.floor(Date.now() / 1000) + seconds,
    };
    // Back to a path on this host only: `//x` and `/\x` would leave it.
    const out = new Headers({ location: /^\/(?![/\\])/.test(login.to) ? login.to : `${v.base}/`, "cache-control": "no-store" });
    out.append("set-cookie", this.cookie(v, SESSION_COOKIE, await this.seal(v, session), seconds));
    out.append("set-cookie", this.cookie(v, LOGIN_COOKIE, "", 0));
    return { answer: new Response(null, { status: 302, headers: out }) };
  }

  /** Ends the session here (the provider's own session stays; the next login asks it to prompt). */
  private logout(v: Visitor): Response {
    const headers = new Headers({ "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    headers.append("set-cookie", this.cookie(v, SESSION_COOKIE, "", 0));
    headers.append("set-cookie", this.cookie(v, LOGIN_COOKIE, "out", LOGIN_SECONDS));
    const home = `${v.base}/`;
    return new Response(`<!doctype html><title>Signed out</title><p>You are signed out. <a href="${home}">Sign in again</a></p>`, {
      headers,
    });
  }

  /** The claims rules: with none, any account of the provider; else one matching email, domain or group. */
  private allowed(claims: JWTPayload): boolean {
    const { allowedEmails, allowedDomains, allowedGroups } = this.policy;
    if (!allowedEmails && !allowedDomains && !allowedGroups) return true;
    const email = typeof claims.email === "string" && claims.email_verified !== false ? claims.email.toLowerCase() : undefined;
    const groups = Array.isArray(claims.groups) ? claims.groups.filter((g): g is string => typeof g === "string") : [];
    return (
      (!!email && !!allowedEmails?.some((e) => e.toLowerCase() === email)) ||
      (!!email && !!allowedDomains?.some((d) => email.endsWith(`@${d.toLowerCase()}`))) ||
      !!allowedGroups?.some((g) => groups.includes(g))
    );
  }

  private redirectUri(v: Visitor): string {
    return `${v.scheme}://${v.authority}${v.base}${OIDC_CALLBACK}`;
  }

  /** A cookie for this backend's path: HttpOnly, SameSite=Lax, Secure on https. */
  private cookie(v: Visitor, name: string, value: string, maxAge: number): string {
    return `${name}=${value}; Path=${v.base || "/"}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${v.scheme === "https" ? "; Secure" : ""}`;
  }

  /** The provider's endpoints, read once from its discovery document; unreachable: policy_unavailable. */
  private async provider(v: Visitor): Promise<Discovery | Outcome> {
    this.discovery ??= fetch(`${this.policy.issuer.replace(/\/$/, "")}/.well-known/openid-configuration`).then(async (res) => {
      if (!res.ok) throw new Error(`discovery answered ${res.status}`);
      return (await res.json()) as Discovery;
    });
    try {
      return await this.discovery;
    } catch {
      this.discovery = undefined;
      return this.unavailable(v);
    }
  }

  private unavailable(v: Visitor): Outcome {
    return { refused: new RelayError("policy_unavailable", "The login provider cannot be reached now; try again shortly.", v.backend) };
  }

  /** The cookie key: HMAC of the provider and client under RELAY_SECRET, per backend. */
  private signingKey(v: Visitor): Promise<CryptoKey> {
    this.key ??= (async () => {
      const root = await crypto.subtle.importKey("raw", encoder.encode(v.secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      const info = `edge-relay oidc session\0${v.backend}\0${this.policy.issuer}\0${this.policy.clientId}`;
      const derived = await crypto.subtle.sign("HMAC", root, encoder.encode(info));
      return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    })();
    return this.key;
  }

  /** `value` as a signed cookie value: base64url JSON, a dot, base64url HMAC. */
  private async seal(v: Visitor, value: object): Promise<string> {
    const body = b64url(encoder.encode(JSON.stringify(value)));
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", await this.signingKey(v), encoder.encode(body)));
    return `${body}.${b64url(mac)}`;
  }

  /** The value of a sealed cookie whose signature verifies, else undefined. */
  private async open<T>(v: Visitor, text: string | undefined): Promise<T | undefined> {
    const m = /^([A-Za-z0-9_-]{1,4096})\.([A-Za-z0-9_-]{43})$/.exec(text ?? "");
    if (!m) return undefined;
    try {
      const ok = await crypto.subtle.verify("HMAC", await this.signingKey(v), unb64url(m[2]) as BufferSource, encoder.encode(m[1]));
      return ok ? (JSON.parse(new TextDecoder().decode(unb64url(m[1]))) as T) : undefined;
    } catch {
      return undefined;
    }
  }
}
