// The `auth` bench row: small GETs at concurrency 32 through a backend guarded by a `jwt` policy
// (a JWKS the relay fetched once and caches) and one guarded by `basicAuth`, taking turns with
// the plain relay, so the cost of checking a visitor shows as a ratio.
import { mkdtempSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import { hashPassword } from "../src/access/basic-auth.ts";
import { mintToken } from "../src/auth.ts";
import { type LoadResult, wrk } from "./load.ts";

export const AUTH_JWT = "bench-jwt";
export const AUTH_BASIC = "bench-basic";

export interface AuthRowOptions {
  relayUrl: string;
  secret: string;
  backendUrl: string;
  /** The plain relay's small-GET URL, measured in the same turns. */
  plainUrl: string;
  seconds: number;
  warmup: number;
  connections?: number;
  /** Starts `edge-relay <args>` and resolves once its tunnels are up; returns its stop. */
  startAgent(args: string[]): Promise<{ stop(): Promise<unknown> | unknown }>;
  log(line: string): void;
}

export interface AuthRow {
  rps: Record<"relay" | "jwt" | "basic", number>;
  p50Ms: Record<"relay" | "jwt" | "basic", number>;
  jwtRatio: number;
  basicRatio: number;
}

/** Runs the auth row: its own agent (two backends, one per policy) and a loopback JWKS server. */
export async function authRow(o: AuthRowOptions): Promise<AuthRow> {
  const key = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(key.publicKey)), kid: "bench", alg: "RS256" };
  let jwksFetches = 0;
  const jwks = http.createServer((_req, res) => {
    jwksFetches++;
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: "bench" })
    .setSubject("bench")
    .setAudience(AUTH_JWT)
    .setIssuedAt()
    .setExpirationTime("2h")
    .sign(key.privateKey);
  const hash = await hashPassword("bench password");
  const file = join(mkdtempSync(join(tmpdir(), "edge-relay-bench-auth-")), "auth.yaml");
  writeFileSync(
    file,
    `relay: ${o.relayUrl}
token: ${await mintToken(o.secret, [AUTH_JWT, AUTH_BASIC])}
ingress:
  - backend: ${AUTH_JWT}
    service: ${o.backendUrl}
    access:
      - jwt: { jwksUrl: "http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks", audience: ${AUTH_JWT} }
  - backend: ${AUTH_BASIC}
    service: ${o.backendUrl}
    access:
      - basicAuth: { users: [{ name: bench, passwordHash: "${hash}" }] }
`,
  );
  const agent = await o.startAgent(["agent", "--config", file, ...(o.connections ? ["--connections", String(o.connections)] : [])]);
  try {
    const rows = {
      relay: { url: o.plainUrl, headers: {} },
      jwt: { url: `${o.relayUrl}/r/${AUTH_JWT}/small`, headers: { authorization: `Bearer ${token}` } },
      basic: {
        url: `${o.relayUrl}/r/${AUTH_BASIC}/small`,
        headers: { authorization: `Basic ${Buffer.from("bench:bench password").toString("base64")}` },
      },
    } as const;
    const names = Object.keys(rows) as Array<keyof typeof rows>;
    for (const name of names) {
      const res = await fetch(rows[name].url, { headers: rows[name].headers });
      if (res.status !== 200) throw new Error(`auth row: ${name} answered ${res.status} ${await res.text()}`);
      await wrk(rows[name].url, 32, o.warmup, undefined, rows[name].headers);
    }
    const results = new Map<string, LoadResult[]>(names.map((n) => [n, []]));
    const slices = Math.max(1, Math.round(o.seconds));
    for (let i = 0; i < slices; i++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(i + j) % names.length];
        const r = await wrk(rows[name].url, 32, o.seconds / slices, undefined, rows[name].headers);
        if (r.errors || r.badStatus) {
          const sample = await fetch(rows[name].url, { headers: rows[name].headers });
          throw new Error(
            `auth row: ${name} had ${r.errors} socket errors and ${r.badStatus} bad statuses (now: ${sample.status} ${(await sample.text()).slice(0, 200)})`,
          );
        }
        results.get(name)!.push(r);
      }
    }
    const rps = {} as AuthRow["rps"];
    const p50Ms = {} as AuthRow["p50Ms"];
    for (const name of names) {
      const rs = results.get(name)!;
      rps[name] = rs.reduce((n, r) => n + r.requests, 0) / rs.reduce((n, r) => n + r.seconds, 0);
      p50Ms[name] = [...rs.map((r) => r.p50Ms)].sort((a, b) => a - b)[Math.floor(rs.length / 2)];
    }
    o.log(`  auth: the JWKS was fetched ${jwksFetches} time(s)`);
    return { rps, p50Ms, jwtRatio: rps.jwt / rps.relay, basicRatio: rps.basic / rps.relay };
  } finally {
    await agent.stop();
    await new Promise((resolve) => jwks.close(resolve));
  }
}
