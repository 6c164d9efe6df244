// Config for hbone:// targets and --origin-protocol: every bad input is a sentence naming the
// flag (and the file and line for --config).
import { describe, expect, it } from "vitest";
import { buildAgentConfig, ConfigError, type RawAgentOptions } from "../../agent/config.ts";
import { mintToken } from "../../src/auth.ts";

const TOKEN = await mintToken("s3cret-for-tests", "mesh");
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const FILES: Record<string, string> = { "/pki/cert.pem": CERT, "/pki/key.pem": KEY, "/pki/ca.pem": CERT, "/pki/junk.pem": "not pem" };
const readFile = (path: string) => {
  if (path in FILES) return FILES[path];
  throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: "ENOENT" });
};
const MESH: RawAgentOptions = {
  relay: "https://relay.example.com",
  backend: "mesh",
  token: TOKEN,
  to: "hbone://10.8.0.14:9080",
  "hbone-cert": "/pki/cert.pem",
  "hbone-key": "/pki/key.pem",
  "hbone-ca": "/pki/ca.pem",
};

function fails(raw: RawAgentOptions, extraFiles: Record<string, string> = {}): ConfigError {
  try {
    buildAgentConfig(raw, {}, (p) => extraFiles[p] ?? readFile(p));
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
}

describe("hbone targets", () => {
  it("builds the mesh settings with the ambient-mode proxy default", () => {
    const config = buildAgentConfig(
      { ...MESH, "hbone-identity": ["spiffe://cluster.local/ns/a/sa/b"], "hbone-header": ["X-Team=edge"] },
      {},
      readFile,
    );
    expect(config.target).toMatchObject({
      kind: "hbone",
      authority: "10.8.0.14:9080",
      hbone: {
        proxy: { host: "10.8.0.14", port: 15008 },
        cert: CERT,
        key: KEY,
        ca: CERT,
        identities: ["spiffe://cluster.local/ns/a/sa/b"],
        headers: [["x-team", "edge"]],
        tls12: false,
      },
    });
    expect(config.originProtocol).toBe("auto");
  });

  it("takes IPv6 targets and an explicit proxy", () => {
    const config = buildAgentConfig(
      { ...MESH, to: "hbone://[fd00::5]:8080", "hbone-proxy": "[fd00::1]:15008", "hbone-tls12": true },
      {},
      readFile,
    );
    expect(config.target).toMatchObject({ authority: "[fd00::5]:8080", hbone: { proxy: { host: "fd00::1", port: 15008 }, tls12: true } });
  });

  it.each([
    [{ to: "hbone://10.0.0.1" }, "to", /must be hbone:\/\/ip:port/],
    [{ "hbone-cert": undefined }, "hbone-cert", /--hbone-cert is required for an hbone:\/\/ target/],
    [{ "hbone-key": "/pki/missing.pem" }, "hbone-key", /--hbone-key "\/pki\/missing.pem" names a file that cannot be read/],
    [
      { "hbone-ca": "/pki/junk.pem" },
      "hbone-ca",
      /--hbone-ca "\/pki\/junk.pem" names a file that holds no PEM certificate \(it should be the mesh's CA certificate\)/,
    ],
    [{ "hbone-identity": ["https://not-spiffe"] }, "hbone-identity", /must be a SPIFFE ID/],
    [{ "hbone-header": ["no-equals"] }, "hbone-header", /must be name=value/],
    [{ "hbone-proxy": "10.0.0.1" }, "hbone-proxy", /must be host:port/],
  ] as Array<[Partial<RawAgentOptions>, string, RegExp]>)("%j is refused naming --%s", (change, field, message) => {
    const err = fails({ ...MESH, ...change });
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(TOKEN);
  });

  it("refuses --hbone-* flags for other targets", () => {
    const err = fails({ ...MESH, to: "http://127.0.0.1:3000" });
    expect(err.field).toBe("hbone-cert");
    expect(err.message).toMatch(/applies only to hbone:\/\/ targets/);
  });

  it("reads repeated settings from a --config file, naming its line on error", () => {
    const file = JSON.stringify({ ...MESH, "hbone-identity": ["spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"] }, null, 2);
    const config = buildAgentConfig({ config: "/etc/agent.json" }, {}, (p) => (p === "/etc/agent.json" ? file : readFile(p)));
    expect(config.target).toMatchObject({ hbone: { identities: ["spiffe://td/ns/a/sa/b", "spiffe://td/ns/a/sa/c"] } });
    const bad = JSON.stringify({ ...MESH, "hbone-header": [1] }, null, 2);
    const err = fails({ config: "/etc/agent.json" }, { "/etc/agent.json": bad });
    expect(err).toMatchObject({ field: "hbone-header", file: "/etc/agent.json", line: 9 });
  });
});

describe("--origin-protocol", () => {
  const base = { relay: "https://relay.example.com", backend: "mesh", token: TOKEN };
  it.each([
    ["http://127.0.0.1:1", undefined, "auto"],
    ["h2c://127.0.0.1:1", undefined, "h2c"],
    ["http://127.0.0.1:1", "h2c", "h2c"],
    ["https://127.0.0.1:1", "h2", "h2"],
    ["https://127.0.0.1:1", "http1", "http1"],
  ])("%s with %s -> %s", (to, protocol, expected) => {
    const config = buildAgentConfig({ ...base, to, ...(protocol ? { "origin-protocol": protocol } : {}) }, {}, readFile);
    expect(config.originProtocol).toBe(expected);
  });

  it.each([
    ["http://127.0.0.1:1", "h2", /does not fit --to "http:\/\/127.0.0.1:1": use auto, http1, h2c/],
    ["https://127.0.0.1:1", "h2c", /does not fit/],
    ["tcp://127.0.0.1:1", "h2", /applies to http, https, unix and hbone targets/],
    ["http://127.0.0.1:1", "http3", /must be auto, http1, h2 or h2c/],
  ])("%s with %s is refused", (to, protocol, message) => {
    const err = fails({ ...base, to, "origin-protocol": protocol });
    expect(err.field).toBe("origin-protocol");
    expect(err.message).toMatch(message);
  });
});
