// Tokens: `er1.<payload>.<signature>`, HMAC-SHA256 over WebCrypto only, so the Worker and the
// Node agent share this file (no `node:` or `cloudflare:` imports). An agent token lets an
// agent serve a backend; an access token (scope "access") lets a public client reach a backend
// whose agent requires one. Tokens carry a random id (`jti`) so one can be revoked alone;
// tokens minted before ids existed carry none and still verify.

/** The claims an agent token carries. */
export interface TokenClaims {
  /** The first (often the only) backend the token is for. */
  backend: string;
  /** Set only on a token for several backends (`edge-relay token a b c`): all of them, `backend` first. */
  backends?: string[];
  /** Issued at, unix seconds. */
  iat: number;
  /** Expiry, unix seconds; absent means the token never expires. */
  exp?: number;
  /** What the token allows: serving the backend (agent) or reaching it (access). */
  scope: TokenScope;
  /** The token's id (claim `jti`), for revocation; absent in tokens minted before ids existed. */
  id?: string;
}

/** "agent" tokens carry no scope claim; "access" tokens carry `"s": "access"`. */
export type TokenScope = "agent" | "access";

export type TokenFailure = "missing" | "malformed" | "bad_signature" | "expired";

export type TokenVerification = ({ ok: true } & TokenClaims) | { ok: false; reason: TokenFailure; message: string };

const VERSION = "er1";
const SIGNATURE_BYTES = 32;
/** Longer input is rejected before any decoding or crypto work (room for a few hundred backend names). */
const MAX_TOKEN_LENGTH = 8192;
const MAX_CACHED_KEYS = 16;
/** Backends one token may name; their names must also fit MAX_TOKEN_LENGTH. */
export const MAX_TOKEN_BACKENDS = 1000;
const BACKEND_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
/** A token id: what mintToken makes (16 random bytes, base64url), or any short base64url word. */
const TOKEN_ID = /^[A-Za-z0-9_-]{8,64}$/;
const TOKEN_ID_BYTES = 16;
const DURATION = /^(\d+)([smhd]?)$/;
const UNIT_SECONDS: Record<string, number> = { "": 1, s: 1, m: 60, h: 3600, d: 86400 };

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const keys = new Map<string, Promise<CryptoKey>>();

/**
 * Mints a token for `backend` (or for each of several backends), signed with `secret`, with a
 * fresh random id (or `opts.id`). `now` is unix seconds; without `ttlSeconds` the token never
 * expires. Throws on an empty secret, a bad name, more than MAX_TOKEN_BACKENDS names, a bad ttl
 * or a bad id.
 */
export async function mintToken(
  secret: string,
  backend: string | string[],
  opts: { ttlSeconds?: number; now?: number; scope?: TokenScope; id?: string } = {},
): Promise<string> {
  const names = [...new Set(Array.isArray(backend) ? backend : [backend])];
  for (const name of names.length ? names : [""]) {
    if (!isValidBackendName(name)) {
      throw new Error(
        `"${name}" is not a valid backend name; use 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit.`,
      );
    }
  }
  if (names.length > MAX_TOKEN_BACKENDS) throw new Error(`A token names at most ${MAX_TOKEN_BACKENDS} backends, not ${names.length}.`);
  const { ttlSeconds } = opts;
  if (ttlSeconds !== undefined && !(Number.isSafeInteger(ttlSeconds) && ttlSeconds > 0)) {
    throw new Error(`The token lifetime must be a whole number of seconds above zero, not ${ttlSeconds}.`);
  }
  const id = opts.id ?? toBase64Url(crypto.getRandomValues(new Uint8Array(TOKEN_ID_BYTES)));
  if (!isValidTokenId(id)) throw new Error(`"${id}" is not a token id; use 8 to 64 base64url characters.`);
  const iat = opts.now ?? unixNow();
  const claims: { b: string | string[]; iat: number; exp?: number; s?: "access"; jti: string } = {
    b: names.length === 1 ? names[0] : names,
    iat,
    jti: id,
  };
  if (ttlSeconds !== undefined) claims.exp = iat + ttlSeconds;
  if (opts.scope === "access") claims.s = "access";
  const payloadPart = toBase64Url(encoder.encode(JSON.stringify(claims)));
  const signed = `${VERSION}.${payloadPart}`;
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(signed));
  const token = `${signed}.${toBase64Url(new Uint8Array(mac))}`;
  if (token.length > MAX_TOKEN_LENGTH)
    throw new Error(
      `The ${names.length} backend names make a token longer than ${MAX_TOKEN_LENGTH} characters; split them over several tokens and agents.`,
    );
  return token;
}

/**
 * Checks a token's signature (constant time, via `crypto.subtle.verify`) and expiry.
 * `secrets` is the current secret, or the current one then previous ones (a rotation): a
 * token signed with any of them verifies. `now` is unix seconds. Failure messages never
 * quote the token or the secret. Throws only when the first secret is empty, which is a
 * relay misconfiguration, not a bad token.
 */
export async function verifyToken(
  secrets: string | readonly string[],
  token: string | null | undefined,
  now: number = unixNow(),
): Promise<TokenVerification> {
  const candidates = typeof secrets === "string" ? [secrets] : secrets;
  assertSecret(candidates[0]);
  if (!token) return fail("missing", "No agent token was given.");
  const parts = splitToken(token);
  if (!parts) return fail("malformed", "The agent token is not in the er1.<payload>.<signature> form.");
  let valid = false;
  for (const secret of candidates) {
    if (!secret) continue;
    valid = await crypto.subtle.verify("HMAC", await hmacKey(secret), parts.signature, encoder.encode(parts.signed));
    if (valid) break;
  }
  if (!valid) {
    return fail("bad_signature", "The agent token's signature does not match; it was minted with a different secret or altered.");
  }
  const claims = decodeClaims(parts.payload);
  if (!claims) return fail("malformed", "The agent token's payload is not a valid claims object.");
  if (claims.exp !== undefined && now >= claims.exp) {
    return fail(
      "expired",
      `The agent token for "${tokenBackends(claims).join('", "')}" expired at ${new Date(claims.exp * 1000).toISOString()}; mint a new one with \`edge-relay token ${tokenBackends(claims).join(" ")}\`.`,
    );
  }
  return { ok: true, ...claims };
}

/**
 * Reads a token's claims WITHOUT checking its signature: for early hints on the agent
 * side (such as a token minted for another backend), never for authorisation.
 */
export function readTokenClaims(token: string): TokenClaims | undefined {
  const parts = splitToken(token);
  return parts && decodeClaims(parts.payload);
}

/** Every backend a token (its claims or verification) is for: its list, or its one backend. */
export function tokenBackends(claims: { backend: string; backends?: string[] }): string[] {
  return claims.backends ?? [claims.backend];
}

/**
 * Compares two secrets in constant time: equal-length SHA-256 digests compared without an early
 * exit, so neither the content nor the length of the expected value leaks through timing.
 */
export async function sameSecret(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all(
    [given, expected].map(async (v) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(v)))),
  );
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** True for a token id as mintToken makes them: 8 to 64 base64url characters. */
export function isValidTokenId(id: unknown): id is string {
  return typeof id === "string" && TOKEN_ID.test(id);
}

/** True for a DNS-label-shaped backend name: 1-63 of `a-z 0-9 -`, not starting or ending with `-`. */
export function isValidBackendName(name: string): boolean {
  return typeof name === "string" && BACKEND_NAME.test(name);
}

/** Parses `30d`, `12h`, `15m`, `45s` or bare seconds (`90`) into whole seconds. */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  const seconds = match ? Number(match[1]) * UNIT_SECONDS[match[2]] : NaN;
  if (!Number.isSafeInteger(seconds)) {
    throw new Error(
      `"${text}" is not a duration; use a whole number with an optional unit s, m, h or d, like 45s, 15m, 12h, 30d or 90 (seconds).`,
    );
  }
  return seconds;
}

function fail(reason: TokenFailure, message: string): TokenVerification {
  return { ok: false, reason, message };
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

function splitToken(token: string): { signed: string; payload: Uint8Array; signature: Uint8Array<ArrayBuffer> } | undefined {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return undefined;
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION) return undefined;
  const payload = fromBase64Url(parts[1]);
  const signature = fromBase64Url(parts[2]);
  if (!payload || !signature || signature.length !== SIGNATURE_BYTES) return undefined;
  return { signed: `${VERSION}.${parts[1]}`, payload, signature };
}

/** The one place claims are read from a payload (the relay and the agent both go through it). */
function decodeClaims(payload: Uint8Array): TokenClaims | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { b, iat, exp, s, jti } = value as Record<string, unknown>;
  const backends =
    typeof b === "string"
      ? [b]
      : Array.isArray(b) && b.length > 1 && b.length <= MAX_TOKEN_BACKENDS && new Set(b).size === b.length
        ? (b as unknown[])
        : [];
  if (backends.length === 0 || !backends.every((name) => typeof name === "string" && isValidBackendName(name))) return undefined;
  const names = backends as string[];
  if (!isUnixSeconds(iat) || (exp !== undefined && !isUnixSeconds(exp))) return undefined;
  if (s !== undefined && s !== "access") return undefined;
  if (jti !== undefined && !isValidTokenId(jti)) return undefined;
  const claims: TokenClaims = { backend: names[0], iat, scope: s === "access" ? "access" : "agent" };
  if (names.length > 1) claims.backends = names;
  if (exp !== undefined) claims.exp = exp;
  if (jti !== undefined) claims.id = jti;
  return claims;
}

function isUnixSeconds(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function assertSecret(secret: string): void {
  if (typeof secret !== "string" || secret.length === 0) {
    throw new Error("The relay secret is empty; set RELAY_SECRET to a long random string.");
  }
}

function hmacKey(secret: string): Promise<CryptoKey> {
  assertSecret(secret);
  let key = keys.get(secret);
  if (!key) {
    if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value!);
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    keys.set(secret, key);
    key.catch(() => keys.delete(secret));
  }
  return key;
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes canonical unpadded base64url only, so each token has exactly one spelling. */
function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return undefined;
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  return toBase64Url(bytes) === text ? bytes : undefined;
}
