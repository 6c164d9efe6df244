// Token revocations: the admin request's body, and a backend's own revocations (its Durable
// Object's storage), which refuse revoked tokens at connect and pick out tunnels to close.
import { isValidBackendName, isValidTokenId } from "./auth.ts";
import { RelayError } from "./errors.ts";
import type { HubRevocation } from "./hub-route.ts";
import type { TunnelAttachment } from "./hub/tunnels.ts";

/** A revocation request: one token by id, or every token of a backend issued before a time. */
export type RevokeRequest = { id: string } | { backend: string; before: number };

/** Longest admin request body read; a revocation is a few dozen bytes. */
const MAX_REVOKE_BODY = 4096;

/** How far in the future `before` may lie: clock skew between the operator and the edge. */
const MAX_FUTURE_SECONDS = 300;

const KEY_BEFORE = "revoked-before";
const idKey = (id: string) => `revoked-id:${id}`;

/** Reads and validates the body of POST /_relay/tokens/revoke (see parseRevokeRequest). */
export async function readRevokeRequest(request: Request): Promise<RevokeRequest> {
  const declared = Number(request.headers.get("content-length") ?? 0);
  return parseRevokeRequest(declared > MAX_REVOKE_BODY ? null : await request.text());
}

/**
 * Validates the body of POST /_relay/tokens/revoke: `{"id": "<token id>"}` or
 * `{"backend": "<name>", "before": "<ISO time>" | <unix seconds>}`. A mistake is a 400
 * `bad_revocation` naming the field; null stands for a body over the size limit. `now` is unix
 * seconds.
 */
export function parseRevokeRequest(text: string | null, now: number = Math.floor(Date.now() / 1000)): RevokeRequest {
  const bad = (message: string) => new RelayError("bad_revocation", message);
  if (text === null || text.length > MAX_REVOKE_BODY)
    throw bad(`The body is over ${MAX_REVOKE_BODY} bytes; send {"id": "<token id>"} or {"backend": "<name>", "before": "<time>"}.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('The body is not JSON; send {"id": "<token id>"} or {"backend": "<name>", "before": "<time>"}.');
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad('The body must be a JSON object: {"id": "<token id>"} or {"backend": "<name>", "before": "<time>"}.');
  }
  const fields = value as Record<string, unknown>;
  const unknown = Object.keys(fields).find((k) => k !== "id" && k !== "backend" && k !== "before");
  if (unknown !== undefined) throw bad(`"${unknown.slice(0, 40)}" is not a field of a revocation; use "id", or "backend" and "before".`);
  if ("id" in fields) {
    if ("backend" in fields || "before" in fields) throw bad('"id" revokes one token: send it alone, without "backend" or "before".');
    if (!isValidTokenId(fields.id)) throw bad('"id" must be a token id (8 to 64 base64url characters), as `edge-relay token` prints it.');
    return { id: fields.id };
  }
  if (!("backend" in fields)) throw bad('Name what to revoke: "id", or "backend" with "before".');
  if (typeof fields.backend !== "string" || !isValidBackendName(fields.backend)) {
    throw bad('"backend" must be a backend name: 1 to 63 lowercase letters, digits or hyphens.');
  }
  if (!("before" in fields)) throw bad('"before" is missing: every token of the backend issued before this time is revoked.');
  const before = parseTime(fields.before);
  if (before === undefined) throw bad('"before" must be an ISO 8601 time like "2026-01-31T12:00:00Z", or unix seconds.');
  if (before > now + MAX_FUTURE_SECONDS) {
    throw bad('"before" lies in the future: it would refuse tokens not minted yet; give the current time or an earlier one.');
  }
  return { backend: fields.backend, before };
}

/** Unix seconds from a whole number of seconds (number or digits) or an ISO 8601 time with a zone. */
function parseTime(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== "string" || value.length > 40) return undefined;
  if (/^\d{1,12}$/.test(value)) return Number(value);
  // A zone is required: a time without one would depend on the edge's local zone.
  if (!/^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$/i.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms / 1000) : undefined;
}

/** True when `revocation` covers the token a tunnel connected with. */
export function revokes(revocation: HubRevocation, meta: Pick<TunnelAttachment, "tokenId" | "tokenIat">): boolean {
  if ("id" in revocation) return meta.tokenId === revocation.id;
  // A tunnel accepted before attachments carried the issue time may hold an older token: close
  // it, and its reconnect is judged on its token.
  return meta.tokenIat === undefined || meta.tokenIat < revocation.before;
}

/**
 * One backend's revocations, in its Durable Object's storage: the latest "issued before" time
 * and the ids the token registry revoked here (kept so that a connect racing the revocation is
 * refused too).
 */
export class BackendRevocations {
  constructor(private readonly storage: DurableObjectStorage) {}

  /** Records a revocation; a "before" earlier than one already kept changes nothing. */
  async add(revocation: HubRevocation): Promise<void> {
    if ("id" in revocation) return this.storage.put(idKey(revocation.id), true);
    const kept = (await this.storage.get<number>(KEY_BEFORE)) ?? 0;
    if (revocation.before > kept) await this.storage.put(KEY_BEFORE, revocation.before);
  }

  /** True when a token with this issue time and id may no longer connect. */
  async refuses(token: { iat: number; id?: string }): Promise<boolean> {
    const before = (await this.storage.get<number>(KEY_BEFORE)) ?? 0;
    if (token.iat < before) return true;
    return token.id !== undefined && (await this.storage.get<boolean>(idKey(token.id))) === true;
  }
}

/** The 401 a revoked token gets at connect. */
export function tokenRevoked(backend: string): RelayError {
  return new RelayError(
    "token_revoked",
    `This agent token for "${backend}" was revoked; mint a new one with \`edge-relay token ${backend}\`.`,
    backend,
  );
}
