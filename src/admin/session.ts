// The dashboard's sign-in cookie: `v1.<expiry>.<nonce>.<mac>`, an HMAC-SHA256 by a key derived
// from RELAY_SECRET (HKDF) over the expiry, the nonce and a digest of the admin token, so the
// cookie holds no secret, and changing either secret signs every dashboard user out.
import { toHex } from "../observe/hex.ts";

/** The cookie's name; it is sent to the dashboard's paths only. */
export const SESSION_COOKIE = "relay_dashboard";
/** How long a sign-in lasts. */
export const SESSION_SECONDS = 12 * 3600;

const VERSION = "v1";
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

/** A fresh session cookie value, valid until `now + SESSION_SECONDS` (unix seconds). */
export async function signSession(relaySecret: string, adminToken: string, now = unixNow()): Promise<string> {
  const nonce = toHex(crypto.getRandomValues(new Uint8Array(16)));
  const claims = `${VERSION}.${now + SESSION_SECONDS}.${nonce}`;
  const mac = await crypto.subtle.sign("HMAC", await sessionKey(relaySecret), await macInput(claims, adminToken));
  return `${claims}.${toHex(new Uint8Array(mac))}`;
}

/** Whether `value` is a session this relay signed for this admin token and not yet expired (constant-time MAC check). */
export async function verifySession(relaySecret: string, adminToken: string, value: string | undefined, now = unixNow()): Promise<boolean> {
  const m = /^v1\.(\d{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})$/.exec(value ?? "");
  if (!m || Number(m[1]) <= now) return false;
  const mac = Uint8Array.from(m[3].match(/../g)!, (h) => Number.parseInt(h, 16));
  return crypto.subtle.verify("HMAC", await sessionKey(relaySecret), mac, await macInput(`${VERSION}.${m[1]}.${m[2]}`, adminToken));
}

/** The signed text: the claims and a SHA-256 digest of the admin token (never the token itself). */
async function macInput(claims: string, adminToken: string): Promise<Uint8Array<ArrayBuffer>> {
  const digest = toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(adminToken))));
  return encoder.encode(`${claims}.${digest}`) as Uint8Array<ArrayBuffer>;
}

/** HKDF-SHA256 of RELAY_SECRET for this one purpose, so the token-signing key is never reused here. */
function sessionKey(relaySecret: string): Promise<CryptoKey> {
  let key = keys.get(relaySecret);
  if (!key) {
    if (keys.size >= 4) keys.clear();
    key = (async () => {
      const base = await crypto.subtle.importKey("raw", encoder.encode(relaySecret), "HKDF", false, ["deriveKey"]);
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: encoder.encode("edge-relay"), info: encoder.encode("dashboard session v1") },
        base,
        { name: "HMAC", hash: "SHA-256", length: 256 },
        false,
        ["sign", "verify"],
      );
    })();
    keys.set(relaySecret, key);
    key.catch(() => keys.delete(relaySecret));
  }
  return key;
}

function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}
