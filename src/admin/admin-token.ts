// The admin API's bearer token (RELAY_ADMIN_TOKEN): checked in constant time; the API is off
// without it.
import type { Context } from "hono";
import { sameSecret } from "../auth.ts";
import type { Env } from "../env.ts";
import { RelayError } from "../errors.ts";

/** The configured admin token; throws not_found when the admin API is off. */
export function adminToken(env: Env): string {
  const admin = env.RELAY_ADMIN_TOKEN;
  if (!admin) throw new RelayError("not_found", "The admin API is off: set the RELAY_ADMIN_TOKEN secret to turn it on.");
  return admin;
}

/** Checks the admin bearer token in constant time; the admin API is off without RELAY_ADMIN_TOKEN. */
export async function requireAdmin(c: Context<{ Bindings: Env }>): Promise<void> {
  const admin = adminToken(c.env);
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1] ?? "";
  if (!(await sameSecret(bearer, admin)))
    throw new RelayError("admin_unauthorized", "The admin API needs Authorization: Bearer <RELAY_ADMIN_TOKEN>.");
}
