// The `basicAuth` policy: PBKDF2-SHA256 password hashes (WebCrypto, so the Worker and the agent's
// `hash-password` share them), checked in constant time, with verified credentials cached.
import { RelayError } from "../errors.ts";
import { BoundedCache } from "./cache.ts";
import { PASSWORD_HASH, type BasicAuthPolicy } from "./policy.ts";
import type { Outcome } from "./verdict.ts";

/** Iterations `hash-password` uses: the most PBKDF2 the Workers runtime computes. */
export const PBKDF2_ITERATIONS = 100_000;
const encoder = new TextEncoder();

const b64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const unb64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

async function derive(password: string, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(password), "PBKDF2", false, ["deriveBits"]);
  return new Uint8Array(
    await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations }, key, 256),
  );
}

/** A new hash of `password`: pbkdf2-sha256$<iterations>$<salt>$<hash>, base64. */
export async function hashPassword(password: string, iterations = PBKDF2_ITERATIONS): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  return `pbkdf2-sha256$${iterations}$${b64(salt)}$${b64(await derive(password, salt, iterations))}`;
}

/** Whether `password` matches `hash`, comparing every byte (no early exit). */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = PASSWORD_HASH.exec(hash);
  if (!m) return false;
  const expected = unb64(m[3]);
  const got = await derive(password, unb64(m[2]), Math.min(Number(m[1]), PBKDF2_ITERATIONS));
  let diff = expected.length ^ got.length;
  for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ (got[i] ?? 0);
  return diff === 0;
}

/** The name and password of an `Authorization: Basic` header, or undefined when it is not one. */
export function basicCredentials(header: string | null): { name: string; password: string } | undefined {
  const m = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i.exec(header ?? "");
  if (!m || m[1].length > 4096) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(unb64(m[1]));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(":");
  return colon < 0 ? undefined : { name: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** A compiled basicAuth policy: checks a request's credentials against its users. */
export class BasicAuth {
  /**
   * Authorization values already verified: the user they name. Keyed by the exact value (held
   * only in this object's memory, as the request itself is): a digest would cost an async
   * WebCrypto call per request, and anything weaker than exact could be collided.
   */
  private readonly verified = new BoundedCache<string>(1000, 5 * 60_000);
  private readonly challenge: string;
  /** A hash an unknown user's password is checked against, so the answer takes as long. */
  private readonly decoy: string;

  constructor(private readonly policy: BasicAuthPolicy["basicAuth"]) {
    this.challenge = `Basic realm="${policy.realm ?? "edge-relay"}", charset="UTF-8"`;
    this.decoy = policy.users[0].passwordHash;
  }

  async check(headers: Headers, backend: string): Promise<Outcome> {
    const header = headers.get("authorization");
    const known = header === null ? undefined : this.verified.get(header);
    if (known !== undefined) return { user: known };
    const refuse = (code: "auth_required" | "auth_invalid") =>
      ({
        refused: new RelayError(
          code,
          code === "auth_required" ? "This backend needs a user name and password." : "The user name or password is wrong.",
          backend,
        ),
        headers: { "www-authenticate": this.challenge },
      }) as const;
    const creds = basicCredentials(header);
    if (!creds) return refuse(header && /^Basic\b/i.test(header) ? "auth_invalid" : "auth_required");
    const user = this.policy.users.find((u) => u.name === creds.name);
    const ok = await verifyPassword(creds.password, user?.passwordHash ?? this.decoy);
    if (!ok || !user) return refuse("auth_invalid");
    this.verified.set(header!, user.name);
    return { user: user.name };
  }
}
