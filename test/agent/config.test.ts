// Agent config: every bad input names its flag (or file and line), env fallbacks, relay URL
// normalisation, and command-line flags winning over the --config file.
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { mintToken } from "../../src/auth.ts";
import { buildAgentConfig, redactedConfig, type RawAgentOptions } from "../../agent/config.ts";
import { configError } from "../helpers/config-error.ts";

const SECRET = "config-test-secret";
const TOKEN = await mintToken(SECRET, "demo");
const OTHER_TOKEN = await mintToken(SECRET, "other");
const PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";

const BASE: RawAgentOptions = { relay: "https://relay.example.com", backend: "demo", token: TOKEN, to: "http://127.0.0.1:3000" };

function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    if (Object.hasOwn(contents, path)) return contents[path];
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
  };
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

describe("buildAgentConfig", () => {
  it("builds a typed config with defaults", () => {
    const config = buildAgentConfig(BASE, {});
    expect(config).toMatchObject({
      backend: "demo",
      token: TOKEN,
      preserveHost: false,
      requireAccess: false,
      connections: 2,
      gracePeriodMs: 30_000,
      heartbeatMs: 15_000,
    });
    expect(config.relayUrl.href).toBe("wss://relay.example.com/_relay/connect");
    expect(config.target).toEqual({ kind: "http", url: new URL("http://127.0.0.1:3000") });
  });

  it("reads every flag", () => {
    const config = buildAgentConfig(
      { ...BASE, to: "https://localhost:8443", "preserve-host": true, "origin-ca": "ca.pem", connections: "16", "grace-period": "2m" },
      {},
      files({ "ca.pem": PEM }),
    );
    expect(config).toMatchObject({ preserveHost: true, connections: 16, gracePeriodMs: 120_000 });
    expect(config.target).toEqual({ kind: "https", url: new URL("https://localhost:8443"), ca: PEM, insecure: false });
    expect(buildAgentConfig({ ...BASE, to: "https://h:1", "origin-insecure": true }, {}).target).toMatchObject({
      kind: "https",
      insecure: true,
    });
    expect(buildAgentConfig({ ...BASE, "grace-period": "0" }, {}).gracePeriodMs).toBe(0);
  });

  it.each([
    ["unix:/run/app.sock", "/run/app.sock"],
    ["unix:///run/app.sock", "/run/app.sock"],
    ["unix:app.sock", "app.sock"],
  ])("reads the unix target %s", (to, path) => {
    expect(buildAgentConfig({ ...BASE, to }, {}).target).toEqual({ kind: "unix", path });
  });

  it.each([
    ["http://127.0.0.1:8787", "ws://127.0.0.1:8787/_relay/connect"],
    ["https://relay.example.com", "wss://relay.example.com/_relay/connect"],
    ["https://relay.example.com/", "wss://relay.example.com/_relay/connect"],
    ["ws://localhost:8787", "ws://localhost:8787/_relay/connect"],
    ["wss://relay.example.com/_relay/connect", "wss://relay.example.com/_relay/connect"],
    ["wss://relay.example.com/_relay/connect/", "wss://relay.example.com/_relay/connect"],
    ["https://example.com/edge/", "wss://example.com/edge/_relay/connect"],
    ["https://example.com/edge/_relay/connect", "wss://example.com/edge/_relay/connect"],
    ["https://relay.example.com?region=eu#frag", "wss://relay.example.com/_relay/connect?region=eu"],
    ["HTTPS://Relay.Example.com:443", "wss://relay.example.com/_relay/connect"],
  ])("normalises the relay URL %s", (relay, href) => {
    expect(buildAgentConfig({ ...BASE, relay }, {}).relayUrl.href).toBe(href);
  });

  it("reads the log, metrics and inspect settings: a bare port binds 127.0.0.1, all off by default", () => {
    expect(buildAgentConfig(BASE, {})).toMatchObject({ logFormat: "text", logLevel: "info", inspectUnmask: false });
    expect(buildAgentConfig(BASE, {}).metrics).toBeUndefined();
    expect(buildAgentConfig(BASE, {}).inspect).toBeUndefined();
    const config = buildAgentConfig(
      { ...BASE, "log-format": "json", "log-level": "debug", metrics: "9464", inspect: "0.0.0.0:4040", "inspect-unmask": true },
      {},
    );
    expect(config).toMatchObject({
      logFormat: "json",
      logLevel: "debug",
      metrics: { host: "127.0.0.1", port: 9464 },
      inspect: { host: "0.0.0.0", port: 4040 },
      inspectUnmask: true,
    });
    expect(buildAgentConfig({ ...BASE, metrics: ":9" }, {}).metrics).toEqual({ host: "127.0.0.1", port: 9 });
    expect(buildAgentConfig({ ...BASE, metrics: "[::1]:9464" }, {}).metrics).toEqual({ host: "::1", port: 9464 });
    expect(() => buildAgentConfig({ ...BASE, metrics: "localhost:99999" }, {})).toThrow(
      '--metrics "localhost:99999": the listen address must be host:port, like 127.0.0.1:9464, or a port.',
    );
    expect(() => buildAgentConfig({ ...BASE, inspect: "http://x:1" }, {})).toThrow(/^--inspect "http:\/\/x:1": the listen address/);
    expect(() => buildAgentConfig({ ...BASE, "log-level": "loud" }, {})).toThrow(
      '--log-level "loud": the log level must be one of debug, info, warn, error, silent.',
    );
    expect(() => buildAgentConfig({ ...BASE, "log-format": "xml" }, {})).toThrow(
      /^--log-format "xml": the log format must be one of text, json\.$/,
    );
  });

  it("falls back to EDGE_RELAY_URL and EDGE_RELAY_TOKEN", () => {
    const env = { EDGE_RELAY_URL: "http://localhost:8787", EDGE_RELAY_TOKEN: TOKEN };
    const config = buildAgentConfig({ backend: "demo", to: "http://127.0.0.1:3000" }, env);
    expect(config.relayUrl.href).toBe("ws://localhost:8787/_relay/connect");
    expect(config.token).toBe(TOKEN);
  });

  it("prefers flags over the env, and ignores empty env values", () => {
    const env = { EDGE_RELAY_URL: "http://env.example:1", EDGE_RELAY_TOKEN: OTHER_TOKEN };
    expect(buildAgentConfig(BASE, env).relayUrl.host).toBe("relay.example.com");
    expect(buildAgentConfig(BASE, env).token).toBe(TOKEN);
    const missing = configError(() => buildAgentConfig({ ...BASE, relay: undefined }, { EDGE_RELAY_URL: "" }));
    expect(missing.field).toBe("relay");
  });

  it("lets command-line flags win over the file, and the file win over the env", () => {
    const file = json({
      relay: "https://file.example",
      backend: "demo",
      token: TOKEN,
      to: "http://127.0.0.1:4000",
      connections: 4,
      "grace-period": 90,
      "preserve-host": true,
    });
    const env = { EDGE_RELAY_URL: "https://env.example", EDGE_RELAY_TOKEN: OTHER_TOKEN };
    const fromFile = buildAgentConfig({ config: "agent.json" }, env, files({ "agent.json": file }));
    expect(fromFile).toMatchObject({ backend: "demo", token: TOKEN, connections: 4, gracePeriodMs: 90_000, preserveHost: true });
    expect(fromFile.relayUrl.host).toBe("file.example");
    expect(fromFile.target).toEqual({ kind: "http", url: new URL("http://127.0.0.1:4000") });

    const flagsWin = buildAgentConfig(
      { config: "agent.json", relay: "https://flag.example", to: "unix:/s.sock", connections: "2" },
      env,
      files({ "agent.json": file }),
    );
    expect(flagsWin.relayUrl.host).toBe("flag.example");
    expect(flagsWin.target).toEqual({ kind: "unix", path: "/s.sock" });
    expect(flagsWin.connections).toBe(2);
    expect(flagsWin.gracePeriodMs).toBe(90_000);
  });

  it("reads a JSON file with a trailing comma, as YAML flow mappings allow one", () => {
    const config = buildAgentConfig(
      { config: "agent.json" },
      {},
      files({ "agent.json": `{\n  "relay": "https://r.example", "backend": "demo", "to": "http://h:1", "token": "${TOKEN}",\n\n}` }),
    );
    expect(config.backend).toBe("demo");
  });

  it("resolves paths in the file relative to the file", () => {
    const file = json({ ...BASE, to: "https://127.0.0.1:8443", "origin-ca": "certs/ca.pem" });
    const config = buildAgentConfig(
      { config: "/etc/edge/agent.json" },
      {},
      files({ "/etc/edge/agent.json": file, "/etc/edge/certs/ca.pem": PEM }),
    );
    expect(config.target).toMatchObject({ kind: "https", ca: PEM });
    const unix = buildAgentConfig(
      { config: "/etc/edge/agent.json", to: undefined },
      {},
      files({ "/etc/edge/agent.json": json({ ...BASE, to: "unix:app.sock" }) }),
    );
    expect(unix.target).toEqual({ kind: "unix", path: "/etc/edge/app.sock" });
  });

  it("keeps the token out of JSON.stringify, util.inspect and redactedConfig", () => {
    const config = buildAgentConfig(BASE, {});
    for (const text of [JSON.stringify(config), inspect(config), JSON.stringify(redactedConfig(config)), String(config)]) {
      expect(text).not.toContain(TOKEN);
    }
    expect(JSON.parse(JSON.stringify(config))).toMatchObject({ token: "[redacted]", backend: "demo" });
  });

  type Case = [
    label: string,
    raw: RawAgentOptions,
    expected: { field: string; message: RegExp | string; file?: string; line?: number },
    env?: Record<string, string>,
    fs?: Record<string, string>,
  ];
  const agentJson = (lines: string): Record<string, string> => ({ "agent.json": lines });
  const cases: Case[] = [
    [
      "missing --relay",
      { ...BASE, relay: undefined },
      {
        field: "relay",
        message: "--relay is required: pass --relay <url> (the relay's base URL, like https://relay.example.com) or set EDGE_RELAY_URL.",
      },
    ],
    ["missing --backend", { ...BASE, backend: undefined }, { field: "backend", message: /^--backend is required: pass --backend <name>/ }],
    [
      "missing --token",
      { ...BASE, token: undefined },
      { field: "token", message: "--token is required: pass --token or set EDGE_RELAY_TOKEN; mint one with `edge-relay token demo`." },
    ],
    ["missing --to", { ...BASE, to: undefined }, { field: "to", message: /^--to is required: pass --to with http:\/\/host:port/ }],
    [
      "a bad target scheme",
      { ...BASE, to: "ftp://x" },
      {
        field: "to",
        message:
          '--to "ftp://x": the target must be http://host:port, https://host:port, unix:/path, h2c://host:port, hbone://ip:port, tcp://host:port or bridge+tcp://host:port.',
      },
    ],
    ["a schemeless target", { ...BASE, to: "localhost:3000" }, { field: "to", message: /^--to "localhost:3000": the target must be/ }],
    [
      "a target with a path",
      { ...BASE, to: "http://h:1/api" },
      { field: "to", message: /^--to "http:\/\/h:1\/api": the target must be only a scheme, host and port/ },
    ],
    ["an empty unix path", { ...BASE, to: "unix:" }, { field: "to", message: /^--to "unix:": the target must be/ }],
    [
      "a bad relay scheme",
      { ...BASE, relay: "ftp://relay" },
      { field: "relay", message: /^--relay "ftp:\/\/relay": the relay URL must be an http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/ URL/ },
    ],
    [
      "a relay that is not a URL",
      { ...BASE, relay: "relay.example.com" },
      { field: "relay", message: /^--relay "relay.example.com": the relay URL must be/ },
    ],
    [
      "a relay URL with a password",
      { ...BASE, relay: "https://u:p@relay" },
      { field: "relay", message: /must not carry a user name or password/ },
    ],
    [
      "a bad relay from the env",
      { ...BASE, relay: undefined },
      { field: "relay", message: /^EDGE_RELAY_URL "nope": the relay URL must be/ },
      { EDGE_RELAY_URL: "nope" },
    ],
    [
      "a bad backend name",
      { ...BASE, backend: "Demo_1" },
      {
        field: "backend",
        message:
          '--backend "Demo_1": the backend name must be 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit.',
      },
    ],
    [
      "a token that is not a token",
      { ...BASE, token: "hunter2-the-secret" },
      { field: "token", message: /^--token is not an agent token; tokens look like er1\.<payload>\.<signature>/ },
    ],
    [
      "a token for another backend",
      { ...BASE, token: OTHER_TOKEN },
      {
        field: "token",
        message: '--token was minted for backend "other", but --backend is "demo"; mint one with `edge-relay token demo`.',
      },
    ],
    [
      "an env token for another backend",
      { ...BASE, token: undefined },
      { field: "token", message: /^EDGE_RELAY_TOKEN was minted for backend "other"/ },
      { EDGE_RELAY_TOKEN: OTHER_TOKEN },
    ],
    [
      "zero connections",
      { ...BASE, connections: "0" },
      { field: "connections", message: '--connections "0": the connection count must be a whole number from 1 to 16.' },
    ],
    ["17 connections", { ...BASE, connections: "17" }, { field: "connections", message: /^--connections "17"/ }],
    ["word connections", { ...BASE, connections: "lots" }, { field: "connections", message: /^--connections "lots"/ }],
    ["fractional connections", { ...BASE, connections: "1.5" }, { field: "connections", message: /^--connections "1.5"/ }],
    [
      "a bad grace period",
      { ...BASE, "grace-period": "soon" },
      { field: "grace-period", message: /^--grace-period "soon": the grace period must be a duration from 0s to 24h/ },
    ],
    ["a grace period over a day", { ...BASE, "grace-period": "2d" }, { field: "grace-period", message: /^--grace-period "2d"/ }],
    [
      "--origin-ca with an http target",
      { ...BASE, "origin-ca": "ca.pem" },
      { field: "origin-ca", message: '--origin-ca "ca.pem" applies only to https:// targets, but --to is "http://127.0.0.1:3000".' },
    ],
    [
      "--origin-insecure with a unix target",
      { ...BASE, to: "unix:/s", "origin-insecure": true },
      { field: "origin-insecure", message: '--origin-insecure applies only to https:// targets, but --to is "unix:/s".' },
    ],
    [
      "--origin-ca with --origin-insecure",
      { ...BASE, to: "https://h:1", "origin-ca": "ca.pem", "origin-insecure": true },
      { field: "origin-insecure", message: /^--origin-insecure cannot be combined with --origin-ca/ },
      {},
      { "ca.pem": PEM },
    ],
    [
      "an unreadable --origin-ca",
      { ...BASE, to: "https://h:1", "origin-ca": "missing.pem" },
      { field: "origin-ca", file: "missing.pem", message: '--origin-ca "missing.pem" names a file that cannot be read (no such file).' },
    ],
    [
      "a --origin-ca that is not PEM",
      { ...BASE, to: "https://h:1", "origin-ca": "ca.der" },
      { field: "origin-ca", file: "ca.der", message: /^--origin-ca "ca.der" names a file that holds no PEM certificate/ },
      {},
      { "ca.der": "\u0030\u0082binary" },
    ],
    [
      "an unknown option",
      { ...BASE, ...({ "to-host": "x" } as RawAgentOptions) },
      { field: "to-host", message: /^--to-host is not an agent flag/ },
    ],
    [
      "an unreadable --config",
      { config: "nope.json" },
      { field: "config", file: "nope.json", message: '--config "nope.json": the file cannot be read (no such file).' },
    ],
    [
      "a bad value in the file",
      { config: "agent.json", token: TOKEN },
      {
        field: "connections",
        file: "agent.json",
        line: 4,
        message: 'agent.json:4:3: connections must be a whole number from 1 to 16, not "lots".',
      },
      {},
      agentJson(`{\n  "relay": "https://r.example",\n  "backend": "demo",\n  "connections": "lots",\n  "to": "http://127.0.0.1:3000"\n}`),
    ],
    [
      "a bad target in the file",
      { config: "agent.json", token: TOKEN },
      {
        field: "to",
        file: "agent.json",
        line: 3,
        message:
          'agent.json:3:2: to must be http://host:port, https://host:port, unix:/path, h2c://host:port, hbone://ip:port, tcp://host:port or bridge+tcp://host:port, not "ftp://x".',
      },
      {},
      agentJson(`{"relay": "https://r.example",\n "backend": "demo",\n "to": "ftp://x"}`),
    ],
    [
      "an unknown key in the file",
      { ...BASE, config: "agent.json" },
      {
        field: "conections",
        file: "agent.json",
        line: 2,
        message:
          /^agent\.json:2:3: "conections" is not a setting; the keys are relay, token, tokenFile, connections, gracePeriod, heartbeat, requireAccessToken, logFormat, logLevel, metrics, inspect, inspectUnmask, ingress \(and, for a single rule, the long flag names\)\.$/,
      },
      {},
      agentJson(`{\n  "conections": 2\n}`),
    ],
    [
      "a nested config key in the file",
      { ...BASE, config: "agent.json" },
      { field: "config", file: "agent.json", line: 1, message: /^agent\.json:1:2: "config" is not a setting/ },
      {},
      agentJson(`{"config": "other.json"}`),
    ],
    [
      "a wrong type in the file",
      { ...BASE, config: "agent.json" },
      { field: "preserve-host", file: "agent.json", line: 3, message: 'agent.json:3:3: preserve-host must be true or false, not "yes".' },
      {},
      agentJson(`{\n\n  "preserve-host": "yes"\n}`),
    ],
    [
      "a number where a string belongs in the file",
      { ...BASE, config: "agent.json" },
      { field: "backend", file: "agent.json", line: 1, message: "agent.json:1:2: backend must be a string, not 42." },
      {},
      agentJson(`{"backend": 42}`),
    ],
    [
      "a token of the wrong type in the file, not quoted",
      { ...BASE, config: "agent.json" },
      { field: "token", file: "agent.json", line: 2, message: "agent.json:2:1: token must be a string." },
      {},
      agentJson(`{\n"token": 12345678}`),
    ],
    [
      "a token for another backend in the file",
      { relay: "https://r", to: "http://h:1", config: "agent.json" },
      {
        field: "token",
        file: "agent.json",
        line: 3,
        message: `agent.json:3:3: token was minted for backend "other", but backend is "demo"; mint one with \`edge-relay token demo\`.`,
      },
      {},
      agentJson(`{\n  "backend": "demo",\n  "token": "${OTHER_TOKEN}"\n}`),
    ],
    [
      "origin-ca in the file with an http target",
      { ...BASE, config: "agent.json" },
      {
        field: "origin-ca",
        file: "agent.json",
        line: 2,
        message: 'agent.json:2:3: origin-ca "ca.pem" applies only to https:// targets, but --to is "http://127.0.0.1:3000".',
      },
      {},
      agentJson(`{\n  "origin-ca": "ca.pem"\n}`),
    ],
    [
      "an unreadable origin-ca named in the file",
      { ...BASE, to: "https://h:1", config: "/etc/edge/agent.json" },
      {
        field: "origin-ca",
        file: "/etc/edge/agent.json",
        line: 1,
        message: '/etc/edge/agent.json:1:2: origin-ca "ca.pem" names a file that cannot be read (no such file at /etc/edge/ca.pem).',
      },
      {},
      { "/etc/edge/agent.json": `{"origin-ca": "ca.pem"}` },
    ],
    [
      "a duplicate key in the file",
      { ...BASE, config: "agent.json" },
      { field: "backend", file: "agent.json", line: 3, message: 'agent.json:3:3: "backend" appears twice in one mapping; keep one.' },
      {},
      agentJson(`{\n  "backend": "demo",\n  "backend": "demo"\n}`),
    ],
    [
      "a JSON syntax error",
      { ...BASE, config: "agent.json" },
      {
        field: "config",
        file: "agent.json",
        line: 3,
        message: "agent.json:3:3: the file is not valid YAML: missing , between flow map items.",
      },
      {},
      agentJson(`{\n  "backend": "demo"\n  "to": "http://h:1"\n}`),
    ],
    [
      "a file that is not an object",
      { ...BASE, config: "agent.json" },
      {
        field: "config",
        file: "agent.json",
        line: 2,
        message: /^agent\.json:2:1: the file holds a list; it must hold a mapping of settings/,
      },
      {},
      agentJson(`\n["demo"]`),
    ],
    [
      "an empty file",
      { ...BASE, config: "agent.json" },
      { field: "config", file: "agent.json", line: 1, message: /^agent\.json:1:1: the file is empty; it must hold a mapping of settings/ },
      {},
      agentJson(""),
    ],
  ];

  it.each(cases)("rejects %s", (_label, raw, expected, env = {}, fs = {}) => {
    const error = configError(() => buildAgentConfig(raw, env, files(fs)));
    expect(error.field).toBe(expected.field);
    expect(error.file).toBe(expected.file);
    expect(error.line).toBe(expected.line);
    if (typeof expected.message === "string") expect(error.message).toBe(expected.message);
    else expect(error.message).toMatch(expected.message);
    expect(error.message).toMatch(/\.$/);
    for (const token of [TOKEN, OTHER_TOKEN, SECRET]) expect(error.message).not.toContain(token);
  });
});
