// The agent command's config, built in a worker thread when a file is to be parsed: the same
// AgentConfig (URLs and all) and the same ConfigError sentences as buildAgentConfig in place.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { buildAgentConfig, ConfigError, type RawAgentOptions } from "../../agent/config.ts";
import { loadAgentConfig } from "../../agent/config-worker.ts";
import { mintToken } from "../../src/auth.ts";

const TOKEN = await mintToken("config-worker-test-secret", ["shop", "cache", "mesh", "db", "pg"]);
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const ENV = { EDGE_RELAY_TOKEN: TOKEN };

const dir = mkdtempSync(join(tmpdir(), "edge-relay-config-worker-"));
mkdirSync(join(dir, "pki"));
for (const [name, text] of Object.entries({ "cert.pem": CERT, "key.pem": KEY, "ca.pem": CERT }))
  writeFileSync(join(dir, "pki", name), text);
writeFileSync(join(dir, "policy.yaml"), "access:\n  - ip: { allow: [10.0.0.0/8] }\n");

/** Writes `text` into the test's folder; returns its path. */
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const EVERY_KIND = file(
  "every-kind.yaml",
  `relay: https://relay.example.com/base
token: \${EDGE_RELAY_TOKEN}
connections: 3
gracePeriod: 45s
ingress:
  - backend: shop
    path: /api/
    stripPrefix: true
    service: http://127.0.0.1:8080
    headers:
      request:  { set: { X-Env: prod }, remove: [x-debug] }
    access:
      - ip: { allow: [127.0.0.1/32] }
  - backend: shop
    path: /h2
    service: h2c://127.0.0.1:8081
  - backend: shop
    service: https://127.0.0.1:8443
    policy: policy.yaml
    originRequest: { preserveHost: true, connectTimeout: 5s, ca: pki/ca.pem }
  - backend: cache
    service: tcp://127.0.0.1:6379
  - backend: db
    service: unix:sock/db.sock
  - backend: pg
    service: bridge+tcp://127.0.0.1:5432
  - backend: mesh
    service: hbone://10.0.0.5:8080
    hbone: { proxy: 10.0.0.5:15008, cert: pki/cert.pem, key: pki/key.pem, ca: pki/ca.pem, identity: [spiffe://td/ns/a/sa/b] }
`,
);

/** Plain data to compare configs by: URLs as `URL <href>`, everything else as it is. */
function plain(value: unknown): unknown {
  if (value instanceof URL) return `URL ${value.href}`;
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

/** The ConfigError a promise rejects with, as the fields a caller reads. */
async function rejection(run: () => unknown): Promise<Record<string, unknown>> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const { name, message, field, file, line, column } = error as ConfigError;
    return { name, message, field, file, line, column };
  }
  throw new Error("expected a ConfigError");
}

describe("loadAgentConfig", () => {
  it("builds a --config file with every target kind in a worker into the config buildAgentConfig builds in place", async () => {
    const raw: RawAgentOptions = { config: EVERY_KIND, "log-level": "debug" };
    const config = await loadAgentConfig(raw, ENV);
    const direct = buildAgentConfig(raw, ENV);
    expect(plain(config)).toEqual(plain(direct));
    expect(config.relayUrl).toBeInstanceOf(URL);
    expect(config.relayUrl.href).toBe("wss://relay.example.com/base/_relay/connect");
    expect(config.rules.map((rule) => rule.target.kind)).toEqual(["http", "http", "https", "tcp", "unix", "bridge", "hbone"]);
    const https = config.rules[2].target;
    expect(https.kind === "https" && https.url instanceof URL && https.url.port).toBe("8443");
    expect(config.rules[2].access).toEqual([{ ip: { allow: ["10.0.0.0/8"] } }]);
    expect(config.target).toBe(config.rules[0].target);
    expect(config.backends).toEqual(["shop", "cache", "db", "pg", "mesh"]);
    expect(JSON.stringify(config)).toBe(JSON.stringify(direct));
    expect(JSON.stringify(config)).not.toContain(TOKEN);
    expect(inspect(config)).not.toContain(TOKEN);
  });

  it("reads a --policy file given with flags in a worker too", async () => {
    const raw: RawAgentOptions = {
      relay: "http://127.0.0.1:8787",
      backend: "shop",
      token: TOKEN,
      to: "http://127.0.0.1:3000",
      policy: join(dir, "policy.yaml"),
    };
    const config = await loadAgentConfig(raw, {});
    expect(plain(config)).toEqual(plain(buildAgentConfig(raw, {})));
    expect(config.rules[0].access).toEqual([{ ip: { allow: ["10.0.0.0/8"] } }]);
  });

  it.each([
    ["not YAML", "relay: [\n"],
    ["a misspelt key", "relay: http://r\ntoken: ${EDGE_RELAY_TOKEN}\ningress:\n  - backend: shop\n    servce: http://h:1\n"],
    ["a value of the wrong type", "relay: http://r\ntoken: ${EDGE_RELAY_TOKEN}\ningress: 5\n"],
    ["a variable that is not set", "relay: ${NOT_SET_ANYWHERE}\n"],
    ["a bad target", "relay: http://r\ntoken: ${EDGE_RELAY_TOKEN}\ningress:\n  - backend: shop\n    service: ftp://h\n"],
    [
      "a policy file that is not there",
      "relay: http://r\ntoken: ${EDGE_RELAY_TOKEN}\ningress:\n  - backend: shop\n    service: http://h:1\n    policy: gone.yaml\n",
    ],
  ])("rejects %s with the ConfigError, file, line and key path buildAgentConfig gives", async (_what, text) => {
    const raw: RawAgentOptions = { config: file("bad.yaml", text) };
    const fromWorker = await rejection(() => loadAgentConfig(raw, ENV));
    expect(fromWorker).toEqual(await rejection(() => buildAgentConfig(raw, ENV)));
    expect(fromWorker.message).toMatch(new RegExp(`^${join(dir, "bad.yaml")}`));
  });

  it("rejects a --config file that cannot be read", async () => {
    const raw: RawAgentOptions = { config: join(dir, "missing.yaml") };
    expect(await rejection(() => loadAgentConfig(raw, ENV))).toEqual({
      name: "ConfigError",
      message: `--config "${raw.config}": the file cannot be read (no such file).`,
      field: "config",
      file: raw.config,
      line: undefined,
      column: undefined,
    });
  });
});
