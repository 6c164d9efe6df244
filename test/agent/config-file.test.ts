// The YAML config file: ingress rules into typed rules, ${ENV} and tokenFile, the declared option
// table against the docs and the schema, and a table of bad files each with its exact sentence.
import { readFileSync } from "node:fs";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { buildAgentConfig, type RawAgentOptions } from "../../agent/config.ts";
import { configSchema, OPTIONS, parseArgsOptions } from "../../agent/options.ts";
import { DOC_PATH, withOptionTable } from "../../scripts/docs-config.ts";
import { configError } from "../helpers/config-error.ts";

const SECRET = "config-file-test-secret";
const TOKEN = await mintToken(SECRET, ["shop", "cache", "mesh"]);
const SHOP_TOKEN = await mintToken(SECRET, "shop");
const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    if (Object.hasOwn(contents, path)) return contents[path];
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
  };
}

const EXAMPLE = `relay: https://relay.example.com
token: \${EDGE_RELAY_TOKEN}
connections: 3
ingress:
  - backend: shop
    path: /api/
    stripPrefix: true
    service: http://127.0.0.1:8080
    headers:
      request:  { set: { X-Env: prod }, remove: [x-debug] }
      response: { set: { strict-transport-security: max-age=63072000, x-tag: [a, b] } }
  - backend: shop
    service: http://127.0.0.1:3000
    originRequest: { preserveHost: true, connectTimeout: 5s }
  - backend: cache
    service: tcp://127.0.0.1:6379
  - backend: mesh
    service: hbone://10.0.0.5:8080
    hbone: { proxy: 10.0.0.5:15008, cert: pki/cert.pem, key: pki/key.pem, ca: pki/ca.pem, identity: [spiffe://td/ns/a/sa/b] }
`;
const PKI = { "/etc/edge/pki/cert.pem": CERT, "/etc/edge/pki/key.pem": KEY, "/etc/edge/pki/ca.pem": CERT };

function load(
  text: string,
  env: Record<string, string> = { EDGE_RELAY_TOKEN: TOKEN },
  raw: RawAgentOptions = {},
  extra: Record<string, string> = {},
) {
  return buildAgentConfig({ config: "/etc/edge/edge.yaml", ...raw }, env, files({ "/etc/edge/edge.yaml": text, ...PKI, ...extra }));
}

describe("the YAML config file", () => {
  it("reads the ingress rules of every backend into typed rules", () => {
    const config = load(EXAMPLE);
    expect(config.backends).toEqual(["shop", "cache", "mesh"]);
    expect(config.connections).toBe(3);
    expect(config.token).toBe(TOKEN);
    expect(config.rules.map((r) => [r.name, r.backend, r.path, r.stripPrefix, r.target.kind])).toEqual([
      ["ingress[0]", "shop", "/api", true, "http"],
      ["ingress[1]", "shop", undefined, false, "http"],
      ["ingress[2]", "cache", undefined, false, "tcp"],
      ["ingress[3]", "mesh", undefined, false, "hbone"],
    ]);
    expect(config.rules[0].headers).toEqual({
      request: { set: [["x-env", ["prod"]]], remove: ["x-debug"] },
      response: {
        set: [
          ["strict-transport-security", ["max-age=63072000"]],
          ["x-tag", ["a", "b"]],
        ],
        remove: [],
      },
    });
    expect(config.rules[1]).toMatchObject({ preserveHost: true, connectTimeoutMs: 5000 });
    expect(config.rules[3].target).toMatchObject({
      authority: "10.0.0.5:8080",
      hbone: { proxy: { host: "10.0.0.5", port: 15008 }, cert: CERT, identities: ["spiffe://td/ns/a/sa/b"] },
    });
  });

  it("reads the token from tokenFile, relative to the file, trimmed", () => {
    const text = EXAMPLE.replace("token: ${EDGE_RELAY_TOKEN}", "tokenFile: secrets/token");
    expect(load(text, {}, {}, { "/etc/edge/secrets/token": `${TOKEN}\n` }).token).toBe(TOKEN);
  });

  it("keeps $${NAME} as text and lets flags win over the file's agent settings", () => {
    const text = `relay: https://r.example\ntoken: ${SHOP_TOKEN}\ningress:\n  - backend: shop\n    service: http://127.0.0.1:1\n    headers: { request: { set: { x-literal: "$\${HOME}" } } }\n`;
    const config = load(text, {}, { connections: "5" });
    expect(config.rules[0].headers.request.set).toEqual([["x-literal", ["${HOME}"]]]);
    expect(config.connections).toBe(5);
  });

  it("still reads a JSON file of earlier versions as one rule", () => {
    const json = JSON.stringify(
      {
        relay: "https://r.example",
        backend: "shop",
        token: SHOP_TOKEN,
        to: "https://127.0.0.1:8443",
        "origin-insecure": true,
        "grace-period": 90,
      },
      null,
      2,
    );
    const config = load(json, {});
    expect(config.rules).toHaveLength(1);
    expect(config.rules[0]).toMatchObject({ name: "--to", backend: "shop", target: { kind: "https", insecure: true } });
    expect(config.gracePeriodMs).toBe(90_000);
  });

  type Bad = [label: string, text: string, message: string, field: string, env?: Record<string, string>, raw?: RawAgentOptions];
  const rule = (body: string) => `relay: https://r.example\ntoken: \${EDGE_RELAY_TOKEN}\ningress:\n${body}`;
  const bad: Bad[] = [
    [
      "an unknown key in a rule",
      rule("  - backend: shop\n    servce: http://127.0.0.1:1\n"),
      '/etc/edge/edge.yaml:5:5: ingress[0] has no key "servce"; its keys are backend, service, path, stripPrefix, headers, originRequest, hbone, bridge.',
      "servce",
    ],
    [
      "an unknown key at the top",
      `relay: https://r.example\nconections: 2\n`,
      '/etc/edge/edge.yaml:2:1: "conections" is not a setting; the keys are relay, token, tokenFile, connections, gracePeriod, heartbeat, requireAccessToken, logFormat, logLevel, metrics, inspect, inspectUnmask, ingress (and, for a single rule, the long flag names).',
      "conections",
    ],
    [
      "an unknown key under originRequest",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    originRequest: { caPool: x }\n"),
      '/etc/edge/edge.yaml:6:22: ingress[0].originRequest has no key "caPool"; its keys are preserveHost, connectTimeout, ca, insecure, protocol.',
      "caPool",
    ],
    [
      "a wrong type",
      rule("  - backend: shop\n    service: 8080\n"),
      "/etc/edge/edge.yaml:5:5: ingress[0].service must be a string, not 8080.",
      "to",
    ],
    [
      "a wrong type for a switch",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    stripPrefix: yes\n"),
      '/etc/edge/edge.yaml:6:5: ingress[0].stripPrefix must be true or false, not "yes".',
      "stripPrefix",
    ],
    [
      "a rule without a service",
      rule("  - backend: shop\n"),
      "/etc/edge/edge.yaml:4:5: ingress[0] has no service; a rule needs backend and service.",
      "service",
    ],
    [
      "an empty ingress list",
      `relay: https://r.example\ningress: []\n`,
      "/etc/edge/edge.yaml:2:1: ingress must list at least one rule.",
      "ingress",
    ],
    [
      "a bad URL",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n  - backend: cache\n    service: ftp://x\n"),
      '/etc/edge/edge.yaml:7:5: ingress[1].service must be http://host:port, https://host:port, unix:/path, h2c://host:port, hbone://ip:port, tcp://host:port or bridge+tcp://host:port, not "ftp://x".',
      "to",
    ],
    [
      "a bad backend name",
      rule("  - backend: Shop_1\n    service: http://127.0.0.1:1\n"),
      '/etc/edge/edge.yaml:4:5: ingress[0].backend must be 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit, not "Shop_1".',
      "backend",
    ],
    [
      "a duplicate rule",
      rule(
        "  - backend: shop\n    path: /api\n    service: http://127.0.0.1:1\n  - backend: shop\n    path: /api/\n    service: http://127.0.0.1:2\n",
      ),
      "/etc/edge/edge.yaml:7:5: ingress[1] repeats ingress[0] (backend shop, path /api): the first one always wins, so remove one.",
      "ingress",
    ],
    [
      "a rule after a catch-all",
      rule(
        "  - backend: shop\n    service: http://127.0.0.1:1\n  - backend: cache\n    service: tcp://127.0.0.1:2\n  - backend: shop\n    path: /api\n    service: http://127.0.0.1:3\n",
      ),
      "/etc/edge/edge.yaml:8:5: ingress[2] can never match: ingress[0] before it is the catch-all of shop (no path); move the catch-all last.",
      "ingress",
    ],
    [
      "a longer path after a shorter one",
      rule(
        "  - backend: shop\n    path: /api\n    service: http://127.0.0.1:1\n  - backend: shop\n    path: /api/v1\n    service: http://127.0.0.1:2\n",
      ),
      "/etc/edge/edge.yaml:7:5: ingress[1] can never match: ingress[0] before it takes every shop request under /api; put the longer path first.",
      "ingress",
    ],
    [
      "a path without a slash",
      rule("  - backend: shop\n    path: api\n    service: http://127.0.0.1:1\n"),
      '/etc/edge/edge.yaml:5:5: ingress[0].path must start with "/", like /api, not "api".',
      "path",
    ],
    [
      "stripPrefix without a path",
      rule("  - backend: shop\n    stripPrefix: true\n    service: http://127.0.0.1:1\n"),
      "/etc/edge/edge.yaml:5:5: ingress[0].stripPrefix true needs a path other than / to strip.",
      "stripPrefix",
    ],
    [
      "a missing token",
      `relay: https://r.example\ningress:\n  - backend: shop\n    service: http://127.0.0.1:1\n  - backend: cache\n    service: tcp://127.0.0.1:2\n`,
      "--token is required: put token or tokenFile in /etc/edge/edge.yaml, pass --token or set EDGE_RELAY_TOKEN; mint one with `edge-relay token shop cache`.",
      "token",
      {},
    ],
    [
      "a token that does not cover a backend",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n  - backend: blog\n    service: http://127.0.0.1:2\n"),
      '/etc/edge/edge.yaml:2:1: token was minted for backends "shop", "cache", "mesh", not for "blog" of ingress[1]; mint one with `edge-relay token shop blog`.',
      "token",
    ],
    [
      "an unset env variable",
      rule("  - backend: shop\n    service: http://127.0.0.1:${SHOP_PORT}\n"),
      "/etc/edge/edge.yaml:5:14: ingress[0].service uses ${SHOP_PORT}, but SHOP_PORT is not set in the environment.",
      "SHOP_PORT",
    ],
    [
      "a YAML syntax error",
      rule("  - backend: shop\n    service: [http://127.0.0.1:1\n"),
      "/etc/edge/edge.yaml:6:1: the file is not valid YAML: flow sequence in block collection must be sufficiently indented and end with a ].",
      "config",
    ],
    [
      "a tab as indentation",
      `relay: https://r.example\ningress:\n\t- backend: shop\n`,
      "/etc/edge/edge.yaml:3:1: the file is not valid YAML: tabs are not allowed as indentation.",
      "config",
    ],
    [
      "a duplicate key",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    service: http://127.0.0.1:2\n"),
      '/etc/edge/edge.yaml:6:5: "service" appears twice in one mapping; keep one.',
      "service",
    ],
    [
      "a managed header",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    headers: { request: { set: { Host: x } } }\n"),
      '/etc/edge/edge.yaml:6:5: ingress[0].headers.request.set names "Host", which is managed by the agent and cannot be rewritten.',
      "headers",
    ],
    [
      "a header set and removed",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    headers: { response: { set: { x-a: b }, remove: [X-A] } }\n"),
      '/etc/edge/edge.yaml:6:5: ingress[0].headers.response.remove names "X-A", which response.set sets too; keep one.',
      "headers",
    ],
    [
      "hbone settings on an http rule",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    hbone: { cert: a.pem }\n"),
      '/etc/edge/edge.yaml:6:14: ingress[0].hbone.cert "a.pem" applies only to hbone:// targets.',
      "hbone-cert",
    ],
    [
      "an hbone rule without its certificate",
      rule("  - backend: mesh\n    service: hbone://10.0.0.5:8080\n"),
      "/etc/edge/edge.yaml:4:5: ingress[0].hbone.cert is required for an hbone:// target: the agent's client certificate (PEM file).",
      "hbone-cert",
    ],
    [
      "a connect timeout on a tcp rule",
      rule("  - backend: cache\n    service: tcp://127.0.0.1:1\n    originRequest: { connectTimeout: 5s }\n"),
      '/etc/edge/edge.yaml:6:22: ingress[0].originRequest.connectTimeout "5s" applies only to http, https, h2c and unix targets.',
      "connect-timeout",
    ],
    [
      "a bad origin protocol",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n    originRequest: { protocol: http3 }\n"),
      '/etc/edge/edge.yaml:6:22: ingress[0].originRequest.protocol must be one of auto, http1, h2, h2c, not "http3".',
      "origin-protocol",
    ],
    [
      "a one-rule key beside ingress",
      `relay: https://r.example\nto: http://127.0.0.1:1\ningress:\n  - backend: shop\n    service: http://127.0.0.1:1\n`,
      "/etc/edge/edge.yaml:2:1: to belongs in an ingress rule (as service) once the file has ingress.",
      "to",
    ],
    [
      "a rule flag beside ingress",
      rule("  - backend: shop\n    service: http://127.0.0.1:1\n"),
      "--to cannot be combined with the ingress rules of /etc/edge/edge.yaml: --backend and --to are the one-rule form; drop the flag, or put the setting into a rule.",
      "to",
      undefined,
      { to: "http://127.0.0.1:9" },
    ],
    [
      "a list as the file",
      `- backend: shop\n`,
      "/etc/edge/edge.yaml:1:1: the file holds a list; it must hold a mapping of settings, like relay: https://relay.example.com and ingress: a list of rules.",
      "config",
    ],
    [
      "a wrong token type, never quoted",
      `relay: https://r.example\ntoken: [${TOKEN}]\n`,
      "/etc/edge/edge.yaml:2:1: token must be a string.",
      "token",
    ],
  ];

  it.each(bad)("refuses %s with one sentence", (_label, text, message, field, env = { EDGE_RELAY_TOKEN: TOKEN }, raw = {}) => {
    const error = configError(() => load(text, env, raw));
    expect(error.message).toBe(message);
    expect(error.field).toBe(field);
    for (const secret of [TOKEN, SHOP_TOKEN, SECRET]) expect(error.message).not.toContain(secret);
  });

  it("has at least 15 bad files in its table", () => {
    expect(bad.length).toBeGreaterThanOrEqual(15);
  });
});

describe("the declared option table", () => {
  it("matches docs/configuration.md (run `npm run docs:config` after changing agent/options.ts)", () => {
    const doc = readFileSync(DOC_PATH, "utf8");
    expect(withOptionTable(doc)).toBe(doc);
  });

  it("is a valid JSON Schema that accepts the docs' example and refuses a misspelt key", () => {
    const ajv = new Ajv({ allowUnionTypes: true, strict: true });
    ajv.addKeyword({ keyword: "expected", schemaType: "string" });
    const validate = ajv.compile(configSchema());
    expect(
      validate({
        relay: "https://r",
        tokenFile: "t",
        ingress: [{ backend: "a", service: "http://h:1", originRequest: { preserveHost: true } }],
      }),
    ).toBe(true);
    expect(validate({ ingress: [{ backend: "a", service: "http://h:1", originrequest: {} }] })).toBe(false);
  });

  it("gives every flag a parser entry and every option a config key or a flag", () => {
    const parsed = parseArgsOptions();
    for (const option of OPTIONS) {
      expect(option.flag ?? option.key).toBeTruthy();
      if (option.flag) expect(parsed[option.flag]?.type).toBe(option.type === "boolean" ? "boolean" : "string");
    }
  });
});
