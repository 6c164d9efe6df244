// The agent's settings: flags, an optional JSON --config file and env fallbacks, validated
// into one typed AgentConfig; every error is a sentence naming the flag (or file and line).
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { isValidBackendName, parseDuration, readTokenClaims } from "../src/auth.ts";
import type { PluginRef } from "./bridge/load.ts";
import type { HboneSettings } from "./hbone/pool.ts";

export type Target =
  | { kind: "http"; url: URL; /** Given as h2c://. */ h2c?: boolean }
  | { kind: "https"; url: URL; ca?: string; insecure: boolean }
  | { kind: "unix"; path: string }
  /** Raw TCP: each public WebSocket stream becomes a TCP connection (docs/targets.md). */
  | { kind: "tcp"; host: string; port: number }
  /** A mesh workload behind an HBONE proxy (docs/hbone.md). */
  | { kind: "hbone"; authority: string; hbone: HboneSettings }
  /** HTTP to a TCP protocol through a plugin (docs/targets.md "Bridging HTTP to a TCP protocol"). */
  | { kind: "bridge"; host: string; port: number; plugin: PluginRef; idleMs: number };

export interface AgentConfig {
  /** ws: or wss: URL of the relay's `/_relay/connect`. */
  relayUrl: URL;
  backend: string;
  /** Secret: print `redactedConfig(config)` instead; `JSON.stringify` and `util.inspect` already redact it. */
  token: string;
  target: Target;
  /** Send the public Host header to the target instead of the target's own host. */
  preserveHost: boolean;
  /** Public requests must carry an access token (`edge-relay token <name> --access`). */
  requireAccess: boolean;
  /** Tunnels to keep open, 1 to 16. */
  connections: number;
  /** How long in-flight requests may finish after SIGINT/SIGTERM. */
  gracePeriodMs: number;
  /** How often the agent pings each tunnel; a tunnel with no pong for 3 of these is dropped. */
  heartbeatMs: number;
  /** --origin-protocol: auto (ALPN for https), http1, h2, or h2c (cleartext, prior knowledge). */
  originProtocol: "auto" | "http1" | "h2" | "h2c";
}

/** Flag values as `node:util` parseArgs returns them, keyed by long flag name. */
export interface RawAgentOptions {
  relay?: string;
  backend?: string;
  token?: string;
  to?: string;
  "preserve-host"?: boolean;
  "require-access-token"?: boolean;
  "origin-ca"?: string;
  "origin-insecure"?: boolean;
  connections?: string;
  "grace-period"?: string;
  heartbeat?: string;
  "origin-protocol"?: string;
  "hbone-proxy"?: string;
  "hbone-cert"?: string;
  "hbone-key"?: string;
  "hbone-ca"?: string;
  "hbone-identity"?: string | string[];
  "hbone-header"?: string | string[];
  "hbone-tls12"?: boolean;
  "bridge-plugin"?: string;
  "bridge-idle"?: string;
  config?: string;
}

/** A setting that cannot be used; `field` is the long flag name without dashes. */
export class ConfigError extends Error {
  readonly field: string;
  readonly file?: string;
  readonly line?: number;

  constructor(message: string, where: { field: string; file?: string; line?: number }) {
    super(message);
    this.name = "ConfigError";
    this.field = where.field;
    if (where.file !== undefined) this.file = where.file;
    if (where.line !== undefined) this.line = where.line;
  }
}

export const RELAY_URL_ENV = "EDGE_RELAY_URL";
export const TOKEN_ENV = "EDGE_RELAY_TOKEN";
export const CONNECT_PATH = "/_relay/connect";
export const DEFAULT_CONNECTIONS = 2;
export const DEFAULT_HEARTBEAT_MS = 15_000;
export const MAX_CONNECTIONS = 16;
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
export const MAX_GRACE_PERIOD_MS = 24 * 3600 * 1000;
/** The plugins that ship with the agent (agent/bridge/load.ts maps each to its module). */
export const BUILT_IN_BRIDGE_PLUGINS = ["raw", "resp"] as const;
export const DEFAULT_BRIDGE_PLUGIN = "raw";
export const DEFAULT_BRIDGE_IDLE_MS = 1000;
/** Every form --to takes, one per target kind; errors and `--help` list these. */
export const TARGET_FORMS = [
  "http://host:port",
  "https://host:port",
  "unix:/path",
  "h2c://host:port",
  "hbone://ip:port",
  "tcp://host:port",
  "bridge+tcp://host:port",
] as const;
const TARGET_LIST = `${TARGET_FORMS.slice(0, -1).join(", ")} or ${TARGET_FORMS[TARGET_FORMS.length - 1]}`;

type Key = Exclude<keyof RawAgentOptions, "config">;
const BOOLEAN_KEYS = ["preserve-host", "origin-insecure", "require-access-token", "hbone-tls12"] as const;
/** Keys that may be given several times (flags repeated, or a JSON array in the file). */
const LIST_KEYS: readonly string[] = ["hbone-identity", "hbone-header"];
const HBONE_KEYS = ["hbone-proxy", "hbone-cert", "hbone-key", "hbone-ca", "hbone-identity", "hbone-header", "hbone-tls12"] as const;
const BRIDGE_KEYS = ["bridge-plugin", "bridge-idle"] as const;
const NUMERIC_KEYS: readonly string[] = ["connections", "grace-period", "heartbeat", "bridge-idle"];
const FILE_KEYS: readonly Key[] = ["relay", "backend", "token", "to", "preserve-host", "require-access-token", "origin-ca", "origin-insecure", "connections", "grace-period", "heartbeat", "origin-protocol", ...HBONE_KEYS, ...BRIDGE_KEYS];
const ENV_FALLBACKS: Partial<Record<Key, string>> = { relay: RELAY_URL_ENV, token: TOKEN_ENV };
const WS_PROTOCOLS: Record<string, string> = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" };
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const JSON_WORDS = [["true", true], ["false", false], ["null", null]] as const;
const MAX_JSON_DEPTH = 64;

type Origin = { kind: "flag" } | { kind: "env"; name: string } | { kind: "file"; file: string; line: number };

/** One setting's value as text, how to quote it in errors, and where it came from. */
interface Setting {
  key: Key;
  text: string;
  shown: string;
  origin: Origin;
}

/**
 * Validates the agent's options into an AgentConfig. Precedence: command-line flags, then
 * the `--config` JSON file, then the env fallbacks. Throws ConfigError.
 */
export function buildAgentConfig(
  raw: RawAgentOptions,
  env: Record<string, string | undefined>,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): AgentConfig {
  for (const key of Object.keys(raw)) {
    if (key !== "config" && !FILE_KEYS.includes(key as Key)) {
      throw new ConfigError(`--${key} is not an agent flag; run \`edge-relay agent --help\` to see them.`, { field: key });
    }
  }
  const file = raw.config === undefined ? undefined : loadConfigFile(raw.config, readFile);
  const pickAll = (key: Key): Setting[] => {
    const flag = raw[key];
    if (flag !== undefined) {
      return (Array.isArray(flag) ? flag : [flag]).map((v) => ({ key, text: String(v), shown: JSON.stringify(String(v)), origin: { kind: "flag" } as const }));
    }
    return file?.lists.get(key) ?? [];
  };
  const pick = (key: Key): Setting | undefined => {
    if (LIST_KEYS.includes(key)) return pickAll(key)[0];
    const flag = raw[key];
    if (flag !== undefined) return { key, text: String(flag), shown: JSON.stringify(String(flag)), origin: { kind: "flag" } };
    const fromFile = file?.settings.get(key);
    if (fromFile) return fromFile;
    const name = ENV_FALLBACKS[key];
    const value = name === undefined ? undefined : env[name];
    if (name !== undefined && value !== undefined && value !== "") {
      return { key, text: value, shown: JSON.stringify(value), origin: { kind: "env", name } };
    }
    return undefined;
  };

  const relayUrl = parseRelayUrl(pick("relay"));
  const backendSetting = pick("backend");
  const backend = parseBackend(backendSetting);
  const token = parseToken(pick("token"), backendSetting, backend);
  const parsed = parseTarget(pick("to"), pick("origin-ca"), pick("origin-insecure"), file?.dir, readFile);
  const target =
    parsed.kind === "hbone" ? { ...parsed, hbone: parseHbone(parsed, pick, pickAll, file?.dir, readFile) }
    : parsed.kind === "bridge" ? { ...parsed, plugin: parsePluginRef(pick("bridge-plugin"), file?.dir), idleMs: parseBridgeIdle(pick("bridge-idle")) }
    : parsed;
  if (target.kind !== "bridge") {
    for (const key of BRIDGE_KEYS) {
      const setting = pick(key);
      if (setting) problem(setting, "applies only to bridge+tcp:// targets");
    }
  }
  if (target.kind !== "hbone") {
    for (const key of HBONE_KEYS) {
      const setting = pickAll(key)[0];
      if (setting && !(setting.key === "hbone-tls12" && setting.text === "false")) problem(setting, "applies only to hbone:// targets");
    }
  }
  const config: AgentConfig = {
    relayUrl,
    backend,
    token,
    target,
    preserveHost: parseBoolean(pick("preserve-host")),
    requireAccess: parseBoolean(pick("require-access-token")),
    connections: parseConnections(pick("connections")),
    gracePeriodMs: parseGracePeriod(pick("grace-period")),
    heartbeatMs: parseHeartbeat(pick("heartbeat")),
    originProtocol: parseOriginProtocol(pick("origin-protocol"), target, pick("to")),
  };
  Object.defineProperty(config, "toJSON", { value: () => redactedConfig(config) });
  Object.defineProperty(config, inspect.custom, { value: () => redactedConfig(config) });
  return config;
}

/** A printable copy of the config with the token replaced by `[redacted]`. */
export function redactedConfig(config: AgentConfig): Record<string, unknown> {
  const { target } = config;
  return {
    relayUrl: config.relayUrl.href,
    backend: config.backend,
    token: "[redacted]",
    target:
      target.kind === "unix"
        ? `unix:${target.path}`
        : target.kind === "tcp"
          ? `tcp://${target.host}:${target.port}`
          : target.kind === "hbone"
            ? `hbone://${target.authority} via ${target.hbone.proxy.host}:${target.hbone.proxy.port}`
            : target.kind === "bridge"
              ? `bridge+tcp://${target.host}:${target.port}`
              : target.url.origin,
    ...(target.kind === "bridge" ? { bridgePlugin: target.plugin.text, bridgeIdleMs: target.idleMs } : {}),
    ...(target.kind === "https" ? { originCa: target.ca !== undefined, originInsecure: target.insecure } : {}),
    preserveHost: config.preserveHost,
    requireAccess: config.requireAccess,
    connections: config.connections,
    gracePeriodMs: config.gracePeriodMs,
    heartbeatMs: config.heartbeatMs,
    originProtocol: config.originProtocol,
  };
}

function parseBackend(setting: Setting | undefined): string {
  if (!setting) {
    throw new ConfigError('--backend is required: pass --backend <name> or put "backend" in the --config file.', { field: "backend" });
  }
  if (!isValidBackendName(setting.text)) {
    invalid(setting, "the backend name", "must be 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit");
  }
  return setting.text;
}

function parseRelayUrl(setting: Setting | undefined): URL {
  if (!setting) {
    throw new ConfigError(
      `--relay is required: pass --relay <url> (the relay's base URL, like https://relay.example.com) or set ${RELAY_URL_ENV}.`,
      { field: "relay" },
    );
  }
  const rule = "must be an http://, https://, ws:// or wss:// URL of the relay, like https://relay.example.com";
  const url = URL.canParse(setting.text) ? new URL(setting.text) : undefined;
  if (!url || !url.hostname) invalid(setting, "the relay URL", rule);
  const protocol = WS_PROTOCOLS[url.protocol];
  if (!protocol) invalid(setting, "the relay URL", rule);
  if (url.username || url.password) {
    invalid(setting, "the relay URL", "must not carry a user name or password; the agent authenticates with --token");
  }
  url.protocol = protocol;
  url.hash = "";
  const path = url.pathname.replace(/\/+$/, "");
  url.pathname = path.endsWith(CONNECT_PATH) ? path : path + CONNECT_PATH;
  return url;
}

function parseToken(setting: Setting | undefined, backendSetting: Setting | undefined, backend: string): string {
  if (!setting) {
    throw new ConfigError(
      `--token is required: pass --token or set ${TOKEN_ENV}; mint one with \`edge-relay token ${backend}\`.`,
      { field: "token" },
    );
  }
  const claims = readTokenClaims(setting.text);
  if (!claims) {
    problem(setting, `is not an agent token; tokens look like er1.<payload>.<signature>, mint one with \`edge-relay token ${backend}\``);
  }
  if (claims.backend !== backend) {
    const backendName = backendSetting ? nameOf(backendSetting) : "--backend";
    problem(setting, `was minted for backend "${claims.backend}", but ${backendName} is "${backend}"; mint one with \`edge-relay token ${backend}\``);
  }
  return setting.text;
}

function parseTarget(
  to: Setting | undefined,
  caSetting: Setting | undefined,
  insecureSetting: Setting | undefined,
  configDir: string | undefined,
  readFile: (path: string) => string,
): Target {
  if (!to) {
    throw new ConfigError(
      `--to is required: pass --to with ${TARGET_LIST}, or put "to" in the --config file.`,
      { field: "to" },
    );
  }
  const target = parseTargetText(to, configDir);
  const insecure = parseBoolean(insecureSetting);
  if (target.kind !== "https") {
    const https = "applies only to https:// targets";
    if (caSetting) problem(caSetting, `${https}, but ${nameOf(to)} is ${to.shown}`);
    if (insecure && insecureSetting) problem(insecureSetting, `${https}, but ${nameOf(to)} is ${to.shown}`);
    return target;
  }
  if (!caSetting) return { ...target, insecure };
  if (insecure && insecureSetting) {
    problem(insecureSetting, `cannot be combined with ${nameOf(caSetting)}: either trust that CA or skip verification, not both`);
  }
  const path = resolveFromFile(caSetting, configDir);
  const at = path === caSetting.text ? "" : ` at ${path}`;
  let pem: string;
  try {
    pem = readFile(path);
  } catch (error) {
    problem(caSetting, `names a file that cannot be read (${describeError(error)}${at})`, path);
  }
  if (!/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(pem)) {
    problem(caSetting, 'names a file that holds no PEM certificate (no "-----BEGIN CERTIFICATE-----" block)', path);
  }
  return { ...target, ca: pem, insecure };
}

function parseTargetText(setting: Setting, configDir: string | undefined): Target {
  const rule = `must be ${TARGET_LIST}`;
  const text = setting.text;
  if (text.startsWith("h2c://")) {
    // Cleartext HTTP/2 with prior knowledge: an http target spoken to in h2 (--origin-protocol h2c).
    const target = parseTargetText({ ...setting, text: text.replace(/^h2c:/, "http:") }, configDir);
    return { ...target, h2c: true } as Target;
  }
  if (text.startsWith("hbone://")) {
    const url = URL.canParse(text.replace(/^hbone:/, "http:")) ? new URL(text.replace(/^hbone:/, "http:")) : undefined;
    if (!url || !url.hostname || !/:\d+$/.test(text) || url.username || url.password || url.pathname !== "/" || url.search || url.hash) {
      invalid(setting, "the target", "must be hbone://ip:port (IPv6 in brackets) or hbone://host:port, with the port");
    }
    // A placeholder until parseHbone fills in the TLS settings.
    return { kind: "hbone", authority: url.host, hbone: undefined as unknown as HboneSettings };
  }
  if (text.startsWith("bridge+")) {
    const url = text.startsWith("bridge+tcp://") && URL.canParse(text.slice("bridge+".length)) ? new URL(text.slice("bridge+".length)) : undefined;
    if (!url || !url.hostname || !url.port) invalid(setting, "the target", "must be bridge+tcp://host:port, with the port");
    if (url.username || url.password || (url.pathname !== "" && url.pathname !== "/") || url.search || url.hash) {
      invalid(setting, "the target", "must be only bridge+tcp://host:port, with no user, path, query or fragment");
    }
    // The plugin and idle time are filled in by buildAgentConfig.
    return { kind: "bridge", host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port), plugin: undefined as unknown as PluginRef, idleMs: 0 };
  }
  if (text.startsWith("tcp://")) {
    const url = URL.canParse(text) ? new URL(text) : undefined;
    if (!url || !url.hostname || !url.port) invalid(setting, "the target", "must be tcp://host:port, with the port");
    if (url.username || url.password || (url.pathname !== "" && url.pathname !== "/") || url.search || url.hash) {
      invalid(setting, "the target", "must be only tcp://host:port, with no user, path, query or fragment");
    }
    return { kind: "tcp", host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) };
  }
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    if (!path) invalid(setting, "the target", rule);
    return { kind: "unix", path: resolveFromFile({ ...setting, text: path }, configDir) };
  }
  const url = URL.canParse(text) ? new URL(text) : undefined;
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !url.hostname) {
    invalid(setting, "the target", rule);
  }
  if (url.username || url.password || url.pathname !== "/" || url.search || url.hash) {
    invalid(setting, "the target", "must be only a scheme, host and port, with no user, path, query or fragment");
  }
  return url.protocol === "http:" ? { kind: "http", url } : { kind: "https", url, insecure: false };
}

/** The mTLS settings of an hbone:// target; every file is PEM, read now so errors come early. */
function parseHbone(
  target: Extract<Target, { kind: "hbone" }>,
  pick: (key: Key) => Setting | undefined,
  pickAll: (key: Key) => Setting[],
  configDir: string | undefined,
  readFile: (path: string) => string,
): HboneSettings {
  const pem = (key: "hbone-cert" | "hbone-key" | "hbone-ca", what: string, marker: RegExp, block: string): string => {
    const setting = pick(key);
    if (!setting) {
      throw new ConfigError(`--${key} is required for an hbone:// target: ${what} (PEM file).`, { field: key });
    }
    const path = resolveFromFile(setting, configDir);
    let text: string;
    try {
      text = readFile(path);
    } catch (error) {
      problem(setting, `names a file that cannot be read (${describeError(error)})`, path);
    }
    if (!marker.test(text)) problem(setting, `names a file that holds no ${block} (it should be ${what})`, path);
    return text;
  };
  const cert = pem("hbone-cert", "the agent's client certificate", /-----BEGIN CERTIFICATE-----/, "PEM certificate");
  const key = pem("hbone-key", "the client certificate's private key", /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/, "PEM private key");
  const ca = pem("hbone-ca", "the mesh's CA certificate", /-----BEGIN CERTIFICATE-----/, "PEM certificate");
  const identities = pickAll("hbone-identity").map((s) => {
    if (!/^spiffe:\/\/[^/\s]+\/\S*$/.test(s.text)) invalid(s, "the identity", "must be a SPIFFE ID like spiffe://cluster.local/ns/default/sa/reviews");
    return s.text;
  });
  const headers = pickAll("hbone-header").map((s): [string, string] => {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)$/.exec(s.text);
    if (!m || m[1].startsWith(":")) invalid(s, "the header", "must be name=value with a valid header name");
    return [m[1].toLowerCase(), m[2]];
  });
  const proxySetting = pick("hbone-proxy");
  const targetHost = target.authority.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  let proxy = { host: targetHost, port: 15008 };
  if (proxySetting) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(proxySetting.text);
    if (!m || Number(m[3]) > 65535) invalid(proxySetting, "the proxy", "must be host:port (IPv6 in brackets), like 10.0.0.5:15008");
    proxy = { host: m[1] ?? m[2], port: Number(m[3]) };
  }
  return { proxy, cert, key, ca, identities, headers, tls12: parseBoolean(pick("hbone-tls12")) };
}

/**
 * Where --bridge-plugin points: a built-in name, a path (./x, ../x, /x or file:, relative to the
 * working directory or the --config file's folder), or else a package name.
 */
function parsePluginRef(setting: Setting | undefined, configDir: string | undefined): PluginRef {
  const text = setting?.text ?? DEFAULT_BRIDGE_PLUGIN;
  const from = setting?.origin.kind === "file" && configDir !== undefined ? resolve(configDir) : process.cwd();
  const where = { field: "bridge-plugin", ...(setting ? fileOf(setting) : {}) };
  const subject = setting ? `${setting.origin.kind === "file" ? `${setting.origin.file} line ${setting.origin.line}: ` : ""}${subjectOf(setting)}` : `--bridge-plugin "${text}"`;
  const ref = { text, from, where, subject };
  if ((BUILT_IN_BRIDGE_PLUGINS as readonly string[]).includes(text)) return { ...ref, kind: "builtin", specifier: text };
  if (/^(\.{1,2}[\\/]|\/|file:)/.test(text)) {
    let path = text;
    try {
      if (text.startsWith("file:")) path = fileURLToPath(text);
    } catch {
      invalid(setting!, "the bridge plugin", "must be a file: URL of a local file");
    }
    return { ...ref, kind: "file", specifier: resolve(from, path) };
  }
  if (!/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[^\s]*)?$/i.test(text)) {
    invalid(setting!, "the bridge plugin", `must be a built-in plugin (${BUILT_IN_BRIDGE_PLUGINS.join(", ")}), a path like ./codec.ts, or a package name`);
  }
  return { ...ref, kind: "package", specifier: text };
}

function parseBridgeIdle(setting: Setting | undefined): number {
  if (!setting) return DEFAULT_BRIDGE_IDLE_MS;
  let ms = NaN;
  const millis = /^(\d{1,9})ms$/.exec(setting.text);
  try {
    ms = millis ? Number(millis[1]) : parseDuration(setting.text) * 1000;
  } catch {}
  if (!(ms >= 10 && ms <= 600_000)) {
    invalid(setting, "the bridge idle time", "must be a duration from 10ms to 10m, like 250ms, 1s or 30s");
  }
  return ms;
}

/** --origin-protocol, checked against the target kind. */
function parseOriginProtocol(setting: Setting | undefined, target: Target, to: Setting | undefined): AgentConfig["originProtocol"] {
  const implied = target.kind === "http" && target.h2c ? "h2c" : "auto";
  if (!setting) return implied;
  const value = setting.text;
  if (!["auto", "http1", "h2", "h2c"].includes(value)) invalid(setting, "the protocol", "must be auto, http1, h2 or h2c");
  const fits: Record<string, string[]> = { http: ["auto", "http1", "h2c"], https: ["auto", "http1", "h2"], hbone: ["auto", "http1", "h2", "h2c"], unix: ["auto", "http1"] };
  const allowed = fits[target.kind];
  if (!allowed || !allowed.includes(value) || (implied === "h2c" && value !== "h2c" && value !== "auto")) {
    problem(setting, `does not fit ${to ? `${nameOf(to)} ${to.shown}` : "the target"}: ${allowed ? `use ${allowed.join(", ")}` : "it applies to http, https, unix and hbone targets"}`);
  }
  return value === "auto" ? implied : (value as AgentConfig["originProtocol"]);
}

function parseBoolean(setting: Setting | undefined): boolean {
  return setting?.text === "true";
}

function parseConnections(setting: Setting | undefined): number {
  if (!setting) return DEFAULT_CONNECTIONS;
  const count = /^\d+$/.test(setting.text) ? Number(setting.text) : NaN;
  if (!(count >= 1 && count <= MAX_CONNECTIONS)) {
    invalid(setting, "the connection count", `must be a whole number from 1 to ${MAX_CONNECTIONS}`);
  }
  return count;
}

function parseGracePeriod(setting: Setting | undefined): number {
  if (!setting) return DEFAULT_GRACE_PERIOD_MS;
  let ms = NaN;
  try {
    ms = parseDuration(setting.text) * 1000;
  } catch {}
  if (!(ms <= MAX_GRACE_PERIOD_MS)) {
    invalid(setting, "the grace period", "must be a duration from 0s to 24h, like 45s, 15m, 2h or 90 (seconds)");
  }
  return ms;
}

function parseHeartbeat(setting: Setting | undefined): number {
  if (!setting) return DEFAULT_HEARTBEAT_MS;
  let ms = NaN;
  try {
    ms = parseDuration(setting.text) * 1000;
  } catch {}
  if (!(ms >= 1000 && ms <= 300_000)) {
    invalid(setting, "the heartbeat interval", "must be a duration from 1s to 5m, like 15s");
  }
  return ms;
}

/**
 * Throws for a value that breaks `rule`. Flags and env read `--to "ftp://x": the target must be …`;
 * file entries read `agent.json line 4: "to" must be …, not "ftp://x".` The token is never quoted.
 */
function invalid(setting: Setting, noun: string, rule: string): never {
  const secret = setting.key === "token";
  const where = { field: setting.key, ...fileOf(setting) };
  const { origin } = setting;
  if (origin.kind === "file") {
    const shown = secret ? "" : `, not ${setting.shown}`;
    throw new ConfigError(`${origin.file} line ${origin.line}: "${setting.key}" ${rule}${shown}.`, where);
  }
  const name = origin.kind === "flag" ? `--${setting.key}` : origin.name;
  throw new ConfigError(`${name}${secret ? "" : ` ${setting.shown}`}: ${noun} ${rule}.`, where);
}

/** Throws `<subject> <predicate>.`, prefixed by the file and line when the setting came from the file. */
function problem(setting: Setting, predicate: string, file?: string): never {
  const prefix = setting.origin.kind === "file" ? `${setting.origin.file} line ${setting.origin.line}: ` : "";
  const where = { field: setting.key, ...fileOf(setting), ...(file !== undefined && setting.origin.kind !== "file" ? { file } : {}) };
  throw new ConfigError(`${prefix}${subjectOf(setting)} ${predicate}.`, where);
}

/** `--to`, `EDGE_RELAY_URL` or `"to"` (in a file). */
function nameOf(setting: Setting): string {
  const { origin } = setting;
  return origin.kind === "flag" ? `--${setting.key}` : origin.kind === "env" ? origin.name : `"${setting.key}"`;
}

/** The name with the value (left out for the token and boolean flags): `--to "x"` or `"to": "x"`. */
function subjectOf(setting: Setting): string {
  const isBooleanFlag = setting.origin.kind === "flag" && (BOOLEAN_KEYS as readonly string[]).includes(setting.key);
  if (setting.key === "token" || isBooleanFlag) return nameOf(setting);
  return `${nameOf(setting)}${setting.origin.kind === "file" ? ":" : ""} ${setting.shown}`;
}

/** Paths written in the --config file are relative to that file, as in tsconfig.json. */
function resolveFromFile(setting: Setting, configDir: string | undefined): string {
  return setting.origin.kind === "file" && configDir !== undefined ? resolve(configDir, setting.text) : setting.text;
}

function fileOf(setting: Setting): { file?: string; line?: number } {
  return setting.origin.kind === "file" ? { file: setting.origin.file, line: setting.origin.line } : {};
}

function describeError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
}

interface ConfigFile {
  dir: string;
  settings: Map<Key, Setting>;
  lists: Map<Key, Setting[]>;
}

function loadConfigFile(path: string, readFile: (path: string) => string): ConfigFile {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError(`--config "${path}": the file cannot be read (${describeError(error)}).`, { field: "config", file: path });
  }
  const entries = parseJsonObject(text, path);
  const settings = new Map<Key, Setting>();
  const lists = new Map<Key, Setting[]>();
  for (const [key, { value, line }] of entries) {
    const origin: Origin = { kind: "file", file: path, line };
    const shown = key === "token" ? "" : `, not ${JSON.stringify(value)}`;
    let rule: string | undefined;
    if (LIST_KEYS.includes(key)) {
      const values = Array.isArray(value) ? value : [value];
      if (!values.every((v) => typeof v === "string")) {
        throw new ConfigError(`${path} line ${line}: "${key}" must be a string or an array of strings${shown}.`, { field: key, file: path, line });
      }
      lists.set(key as Key, (values as string[]).map((v) => ({ key: key as Key, text: v, shown: JSON.stringify(v), origin })));
      continue;
    }
    if (!FILE_KEYS.includes(key as Key)) {
      rule = `is not a setting; the keys are the long flag names: ${FILE_KEYS.join(", ")}`;
    } else if ((BOOLEAN_KEYS as readonly string[]).includes(key)) {
      if (typeof value !== "boolean") rule = `must be true or false${shown}`;
    } else if (typeof value !== "string" && !(typeof value === "number" && NUMERIC_KEYS.includes(key))) {
      rule = `must be a string${shown}`;
    }
    if (rule !== undefined) {
      throw new ConfigError(`${path} line ${line}: "${key}" ${rule}.`, { field: key, file: path, line });
    }
    settings.set(key as Key, { key: key as Key, text: String(value), shown: JSON.stringify(value), origin });
  }
  return { dir: dirname(path), settings, lists };
}

/**
 * Parses JSON text whose top level must be an object, returning each top-level key with its
 * value and line. Hand-rolled so syntax errors carry a line on every Node version and never
 * quote the surrounding text (which may hold a token).
 */
export function parseJsonObject(text: string, file: string): Map<string, { value: unknown; line: number }> {
  const source = text.replace(/^\uFEFF/, "");
  const entries = new Map<string, { value: unknown; line: number }>();
  let pos = 0;

  function lineAt(at: number): number {
    let line = 1;
    for (let i = 0; i < at && i < source.length; i++) if (source.charCodeAt(i) === 10) line++;
    return line;
  }
  function fail(what: string): never {
    const line = lineAt(pos);
    throw new ConfigError(`${file} line ${line}: the file is not valid JSON: ${what}.`, { field: "config", file, line });
  }
  function found(): string {
    return pos >= source.length ? "the end of the file" : JSON.stringify(source[pos]);
  }
  function skipSpace(): void {
    while (pos < source.length && " \t\r\n".includes(source[pos])) pos++;
  }
  function take(char: string): boolean {
    skipSpace();
    if (source[pos] !== char) return false;
    pos++;
    return true;
  }
  function readString(): string {
    JSON_STRING.lastIndex = pos;
    const match = JSON_STRING.exec(source);
    if (!match) fail("a string is not closed, or holds a raw control character or a bad escape");
    pos = JSON_STRING.lastIndex;
    return JSON.parse(match[0]) as string;
  }
  function readValue(depth: number): unknown {
    skipSpace();
    if (depth > MAX_JSON_DEPTH) fail("values are nested too deeply");
    if (source[pos] === '"') return readString();
    if (source[pos] === "{") return readObject(depth + 1);
    if (source[pos] === "[") return readArray(depth + 1);
    JSON_NUMBER.lastIndex = pos;
    const number = JSON_NUMBER.exec(source);
    if (number) {
      pos = JSON_NUMBER.lastIndex;
      return Number(number[0]);
    }
    for (const [word, value] of JSON_WORDS) {
      if (source.startsWith(word, pos)) {
        pos += word.length;
        return value;
      }
    }
    return fail(`expected a value but found ${found()}`);
  }
  function readArray(depth: number): unknown[] {
    pos++;
    const items: unknown[] = [];
    if (take("]")) return items;
    do items.push(readValue(depth));
    while (take(","));
    if (!take("]")) fail(`expected "," or "]" in an array but found ${found()}`);
    return items;
  }
  function readObject(depth: number): Record<string, unknown> {
    pos++;
    const object: Record<string, unknown> = Object.create(null);
    if (take("}")) return object;
    do {
      skipSpace();
      if (source[pos] === "}") fail("a comma before } is not allowed in JSON");
      if (source[pos] !== '"') fail(`expected a quoted key but found ${found()}`);
      const line = lineAt(pos);
      const key = readString();
      if (!take(":")) fail(`expected ":" after the key "${key}" but found ${found()}`);
      const value = readValue(depth);
      if (depth === 1) {
        if (entries.has(key)) {
          throw new ConfigError(`${file} line ${line}: "${key}" appears twice; keep one.`, { field: key, file, line });
        }
        entries.set(key, { value, line });
      }
      object[key] = value;
    } while (take(","));
    if (!take("}")) fail(`expected "," or "}" after a value but found ${found()}`);
    return object;
  }

  skipSpace();
  if (source[pos] !== "{") {
    const line = lineAt(pos);
    throw new ConfigError(
      `${file} line ${line}: the file must hold a JSON object whose keys are long flag names, like {"backend": "demo"}.`,
      { field: "config", file, line },
    );
  }
  readObject(1);
  skipSpace();
  if (pos < source.length) fail(`unexpected ${found()} after the closing }`);
  return entries;
}
