// The agent's settings: flags, an optional YAML (or JSON) --config file with ingress rules, and
// env fallbacks, validated into one typed AgentConfig; every error is one sentence naming the
// flag, or the file, line, column and key path. The options themselves are declared in options.ts.
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import type { Ajv, ErrorObject } from "ajv";
import type { Document, Pair, Scalar, YAMLMap, YAMLSeq } from "yaml";
import { ajv as ajvPackage, yaml } from "./config-parsers.ts";
import { PolicyError, validatePolicies, type Policy } from "../src/access/policy.ts";
import { isValidBackendName, parseDuration, readTokenClaims, tokenBackends } from "../src/auth.ts";
import type { PluginRef } from "./bridge/load.ts";
import type { HboneSettings } from "./hbone/pool.ts";
import {
  describeRule,
  describeTarget,
  headerNameProblem,
  headerValueProblem,
  normalizePathPrefix,
  ruleConflicts,
  type HeaderEdit,
  type HeaderRewrite,
  type IngressRule,
  type OriginProtocol,
} from "./ingress.ts";
import {
  BUILT_IN_BRIDGE_PLUGINS,
  configSchema,
  DEFAULT_BRIDGE_IDLE_MS,
  DEFAULT_BRIDGE_PLUGIN,
  DEFAULT_CONNECTIONS,
  DEFAULT_GRACE_PERIOD_MS,
  DEFAULT_HEARTBEAT_MS,
  FLAG_OPTIONS,
  MAX_CONNECTIONS,
  OPTIONS,
  LOG_FORMATS,
  LOG_LEVELS,
  ORIGIN_PROTOCOLS,
  RELAY_URL_ENV,
  TOKEN_ENV,
  type OptionSpec,
} from "./options.ts";

export {
  BUILT_IN_BRIDGE_PLUGINS,
  DEFAULT_BRIDGE_IDLE_MS,
  DEFAULT_BRIDGE_PLUGIN,
  DEFAULT_CONNECTIONS,
  DEFAULT_GRACE_PERIOD_MS,
  DEFAULT_HEARTBEAT_MS,
  MAX_CONNECTIONS,
  RELAY_URL_ENV,
  TOKEN_ENV,
} from "./options.ts";

export type TargetSpec =
  | { kind: "http"; url: URL /** Given as h2c://. */; h2c?: boolean }
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
  /** Secret: print `redactedConfig(config)` instead; `JSON.stringify` and `util.inspect` already redact it. */
  token: string;
  /** Every rule, in order; the first matching rule of a backend takes a request. */
  rules: IngressRule[];
  /** The backends the rules name, in order of first mention: each gets its own tunnels. */
  backends: string[];
  /** The first rule's backend, target and its options (all there is with `--backend --to`). */
  backend: string;
  target: TargetSpec;
  /** Send the public Host header to the target instead of the target's own host. */
  preserveHost: boolean;
  /** --origin-protocol: auto (ALPN for https), http1, h2, or h2c (cleartext, prior knowledge). */
  originProtocol: OriginProtocol;
  /** Public requests must carry an access token (`edge-relay token <name> --access`). */
  requireAccess: boolean;
  /** Tunnels to keep open per backend, 1 to 16. */
  connections: number;
  /** How long in-flight requests may finish after SIGINT/SIGTERM, or when a reload removes their backend. */
  gracePeriodMs: number;
  /** How often the agent pings each tunnel; a tunnel with no pong for 3 of these is dropped. */
  heartbeatMs: number;
  /** The --config file, read again on SIGHUP (and on change with --watch). */
  configFile?: string;
  /** --watch: reload the config file when it changes. */
  watch: boolean;
  /** --log-format and --log-level. */
  logFormat: LogFormat;
  logLevel: LogLevel;
  /** --metrics: where the Prometheus endpoint listens; absent when off. */
  metrics?: ListenAddress;
  /** --inspect: where the request inspector listens; absent when off. */
  inspect?: ListenAddress;
  /** --inspect-unmask: the inspector shows secret header values. */
  inspectUnmask: boolean;
}

export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A local address to listen on. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Flag values as `node:util` parseArgs returns them, keyed by long flag name. */
export interface RawAgentOptions {
  relay?: string;
  backend?: string;
  token?: string;
  "token-file"?: string;
  to?: string;
  "preserve-host"?: boolean;
  "require-access-token"?: boolean;
  "origin-ca"?: string;
  "origin-insecure"?: boolean;
  "connect-timeout"?: string;
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
  policy?: string;
  config?: string;
  watch?: boolean;
  "log-format"?: string;
  "log-level"?: string;
  metrics?: string;
  inspect?: string;
  "inspect-unmask"?: boolean;
}

/** A setting that cannot be used; `field` is the long flag name without dashes (or the file's key). */
export class ConfigError extends Error {
  readonly field: string;
  readonly file?: string;
  readonly line?: number;
  readonly column?: number;

  constructor(message: string, where: { field: string; file?: string; line?: number; column?: number }) {
    super(message);
    this.name = "ConfigError";
    this.field = where.field;
    if (where.file !== undefined) this.file = where.file;
    if (where.line !== undefined) this.line = where.line;
    if (where.column !== undefined) this.column = where.column;
  }
}

export const CONNECT_PATH = "/_relay/connect";
export const MAX_GRACE_PERIOD_MS = 24 * 3600 * 1000;
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

const WS_PROTOCOLS: Record<string, string> = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" };
const RULE_FLAGS = OPTIONS.filter((o) => o.scope === "rule" && o.flag).map((o) => o.flag!);
const BOOLEAN_KEYS = OPTIONS.filter((o) => o.type === "boolean").map((o) => o.flag ?? o.key!);
const HBONE_KEYS = RULE_FLAGS.filter((f) => f.startsWith("hbone-"));
const BRIDGE_KEYS = RULE_FLAGS.filter((f) => f.startsWith("bridge-"));

/** Where a value in the config file sits. */
interface FilePlace {
  file: string;
  line: number;
  column: number;
  /** The key path as the user wrote it: `connections`, `ingress[2].service`, `hbone.identity[1]`. */
  path: string;
}

type SettingSource = { kind: "flag" } | { kind: "env"; name: string } | ({ kind: "file" } & FilePlace);

/** One setting's value as text, how to quote it in errors, and where it came from. */
interface Setting {
  /** The long flag name, or the file key of a setting without a flag (`path`). */
  key: string;
  text: string;
  shown: string;
  source: SettingSource;
  /** The value as parsed from the file (for `headers`). */
  value?: unknown;
  /** Never quoted (the token, and a token file's content). */
  secret?: boolean;
}

/** The settings one rule (or the whole agent) is built from, by flag name. */
interface Source {
  one(key: string): Setting | undefined;
  all(key: string): Setting[];
  /** Throws for a required setting that is not there. */
  missing(key: string, predicate: string): never;
}

/**
 * Validates the agent's options into an AgentConfig. Precedence: command-line flags, then the
 * `--config` file, then the env fallbacks. A file with `ingress` rules takes no --backend, --to
 * or other rule flags: those are the one-rule form. Throws ConfigError.
 */
export function buildAgentConfig(
  raw: RawAgentOptions,
  env: Record<string, string | undefined>,
  readFile: (path: string) => string = (path) => readFileSync(path, "utf8"),
): AgentConfig {
  for (const key of Object.keys(raw)) {
    if (!FLAG_OPTIONS.has(key)) {
      throw new ConfigError(`--${key} is not an agent flag; run \`edge-relay agent --help\` to see them.`, { field: key });
    }
  }
  const file = raw.config === undefined ? undefined : loadConfigFile(raw.config, readFile, env);
  const flags = (key: string): Setting[] => {
    const value = (raw as Record<string, string | boolean | string[] | undefined>)[key];
    if (value === undefined) return [];
    return (Array.isArray(value) ? value : [value]).map((v) => ({
      key,
      text: String(v),
      shown: JSON.stringify(String(v)),
      source: { kind: "flag" } as const,
      secret: FLAG_OPTIONS.get(key)?.secret,
    }));
  };
  const agent = (key: string): Setting | undefined => {
    const found = flags(key)[0] ?? file?.top.get(key)?.[0];
    if (found) return found;
    const name = FLAG_OPTIONS.get(key)?.env;
    const value = name === undefined ? undefined : env[name];
    if (name !== undefined && value !== undefined && value !== "") {
      return { key, text: value, shown: JSON.stringify(value), source: { kind: "env", name }, secret: FLAG_OPTIONS.get(key)?.secret };
    }
    return undefined;
  };

  const relayUrl = parseRelayUrl(agent("relay"));
  // Which backends the rules serve, first: the token is checked against them before the targets.
  let build: () => IngressRule[];
  let named: Array<{ backend: string; name: string }>;
  let shorthandBackend: Setting | undefined;
  if (file?.rules) {
    const given = RULE_FLAGS.find((key) => flags(key).length > 0);
    if (given) {
      throw new ConfigError(
        `--${given} cannot be combined with the ingress rules of ${file.path}: --backend and --to are the one-rule form; drop the flag, or put the setting into a rule.`,
        { field: given },
      );
    }
    const fileRules = file.rules;
    named = fileRules.map((rule) => ({ backend: parseBackend(rule.settings.get("backend")?.[0]), name: `ingress[${rule.index}]` }));
    build = () => fileRules.map((rule) => buildRule(ruleSource(rule), file.dir, readFile, rule));
  } else {
    const all = (key: string) => {
      const fromFlags = flags(key);
      return fromFlags.length ? fromFlags : (file?.top.get(key) ?? []);
    };
    shorthandBackend = all("backend")[0];
    const missing = (key: string, predicate: string): never => {
      throw new ConfigError(`--${key} ${predicate}.`, { field: key });
    };
    named = [{ backend: parseBackend(shorthandBackend), name: "--to" }];
    build = () => [buildRule({ one: (key) => all(key)[0], all, missing }, file?.dir, readFile)];
  }
  const token = parseToken(
    agent("token"),
    agent("token-file"),
    named,
    file?.rules ? file : undefined,
    shorthandBackend,
    file?.dir,
    readFile,
  );
  const rules = build();
  for (const conflict of ruleConflicts(rules)) {
    const at = file?.rules?.[conflict.index].at;
    throw new ConfigError(`${at ? `${placeText(at)}: ` : ""}${rules[conflict.index].name} ${conflict.message}.`, {
      field: "ingress",
      ...(at ? whereOf(at) : {}),
    });
  }
  const backends = [...new Set(rules.map((r) => r.backend))];
  const first = rules[0];
  const config: AgentConfig = {
    relayUrl,
    token,
    rules,
    backends,
    backend: first.backend,
    target: first.target,
    preserveHost: first.preserveHost,
    originProtocol: first.originProtocol,
    requireAccess: parseBoolean(agent("require-access-token")),
    connections: parseConnections(agent("connections")),
    gracePeriodMs: parseGracePeriod(agent("grace-period")),
    heartbeatMs: parseHeartbeat(agent("heartbeat")),
    watch: raw.watch === true,
    logFormat: parseChoice(agent("log-format"), LOG_FORMATS, "the log format", "text"),
    logLevel: parseChoice(agent("log-level"), LOG_LEVELS, "the log level", "info"),
    inspectUnmask: parseBoolean(agent("inspect-unmask")),
  };
  const metrics = parseListen(agent("metrics"));
  if (metrics) config.metrics = metrics;
  const inspectAt = parseListen(agent("inspect"));
  if (inspectAt) config.inspect = inspectAt;
  if (raw.config !== undefined) config.configFile = raw.config;
  if (config.watch && !config.configFile) {
    throw new ConfigError("--watch needs --config <file>: it reloads that file when it changes.", { field: "watch" });
  }
  return withRedaction(config);
}

/** Makes `JSON.stringify` and `util.inspect` print the config without its token (redactedConfig). */
export function withRedaction(config: AgentConfig): AgentConfig {
  Object.defineProperty(config, "toJSON", { value: () => redactedConfig(config) });
  Object.defineProperty(config, inspect.custom, { value: () => redactedConfig(config) });
  return config;
}

/** The settings of one rule in the file; a missing one is named by its key path in the rule. */
function ruleSource(rule: FileRule): Source {
  return {
    one: (key) => rule.settings.get(key)?.[0],
    all: (key) => rule.settings.get(key) ?? [],
    missing: (key, predicate) => {
      const path = `ingress[${rule.index}].${FLAG_OPTIONS.get(key)?.key ?? key}`;
      throw new ConfigError(`${placeText(rule.at)}: ${path} ${predicate}.`, { field: key, ...whereOf(rule.at) });
    },
  };
}

/** Builds one rule: from the rule's settings in the file, or from the flags (and a one-rule file). */
function buildRule(src: Source, configDir: string | undefined, readFile: (path: string) => string, fileRule?: FileRule): IngressRule {
  const backend = parseBackend(src.one("backend"));
  const to = src.one("to");
  const parsed = parseTarget(to, src.one("origin-ca"), src.one("origin-insecure"), configDir, readFile);
  const target: TargetSpec =
    parsed.kind === "hbone"
      ? { ...parsed, hbone: parseHbone(parsed, src, configDir, readFile) }
      : parsed.kind === "bridge"
        ? { ...parsed, plugin: parsePluginRef(src.one("bridge-plugin"), configDir), idleMs: parseBridgeIdle(src.one("bridge-idle")) }
        : parsed;
  if (target.kind !== "bridge") {
    for (const key of BRIDGE_KEYS) {
      const setting = src.one(key);
      if (setting) problem(setting, "applies only to bridge+tcp:// targets");
    }
  }
  if (target.kind !== "hbone") {
    for (const key of HBONE_KEYS) {
      const setting = src.all(key)[0];
      if (setting && !(setting.key === "hbone-tls12" && setting.text === "false")) problem(setting, "applies only to hbone:// targets");
    }
  }
  const connectTimeout = src.one("connect-timeout");
  if (connectTimeout && !["http", "https", "unix"].includes(target.kind))
    problem(connectTimeout, "applies only to http, https, h2c and unix targets");
  const rule: IngressRule = {
    name: fileRule ? `ingress[${fileRule.index}]` : "--to",
    backend,
    stripPrefix: false,
    service: to!.text,
    target,
    preserveHost: parseBoolean(src.one("preserve-host")),
    originProtocol: parseOriginProtocol(src.one("origin-protocol"), target, to),
    headers: parseHeaders(src.one("headers")),
  };
  if (connectTimeout) rule.connectTimeoutMs = parseConnectTimeout(connectTimeout);
  const access = parseAccess(src.one("access"), src.one("policy"), configDir, readFile);
  if (access?.length) rule.access = access;
  const pathSetting = src.one("path");
  if (pathSetting) {
    const normal = normalizePathPrefix(pathSetting.text);
    if ("problem" in normal) invalid(pathSetting, "the path prefix", normal.problem);
    if (normal.prefix !== undefined) rule.path = normal.prefix;
  }
  const strip = src.one("stripPrefix");
  if (strip && parseBoolean(strip)) {
    if (rule.path === undefined) problem(strip, "needs a path other than / to strip");
    rule.stripPrefix = true;
  }
  return rule;
}

/** A printable copy of the config with the token replaced by `[redacted]`. */
export function redactedConfig(config: AgentConfig): Record<string, unknown> {
  const { target } = config;
  return {
    relayUrl: config.relayUrl.href,
    backend: config.backend,
    token: "[redacted]",
    target: describeTarget(target),
    ...(target.kind === "bridge" ? { bridgePlugin: target.plugin.text, bridgeIdleMs: target.idleMs } : {}),
    ...(target.kind === "https" ? { originCa: target.ca !== undefined, originInsecure: target.insecure } : {}),
    preserveHost: config.preserveHost,
    requireAccess: config.requireAccess,
    connections: config.connections,
    gracePeriodMs: config.gracePeriodMs,
    heartbeatMs: config.heartbeatMs,
    originProtocol: config.originProtocol,
    backends: config.backends,
    rules: config.rules.map(describeRule),
  };
}

function parseBackend(setting: Setting | undefined): string {
  if (!setting) {
    throw new ConfigError("--backend is required: pass --backend <name> and --to <target>, or give a --config file with ingress rules.", {
      field: "backend",
    });
  }
  if (!isValidBackendName(setting.text)) {
    invalid(
      setting,
      "the backend name",
      "must be 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit",
    );
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

/**
 * The agent token (from token, or read from tokenFile): it must be an agent token whose backends
 * cover every backend the rules name. Its value is never quoted.
 */
function parseToken(
  tokenSetting: Setting | undefined,
  fileSetting: Setting | undefined,
  rules: Array<{ backend: string; name: string }>,
  ingressFile: ConfigFile | undefined,
  backendSetting: Setting | undefined,
  configDir: string | undefined,
  readFile: (path: string) => string,
): string {
  const backends = [...new Set(rules.map((r) => r.backend))];
  const mint = `mint one with \`edge-relay token ${backends.join(" ")}\``;
  let setting = tokenSetting;
  if (fileSetting && (!tokenSetting || tokenSetting.source.kind === "env")) {
    const path = resolveFromFile(fileSetting, configDir);
    let text: string;
    try {
      text = readFile(path);
    } catch (error) {
      problem(
        fileSetting,
        `names a file that cannot be read (${describeError(error)}${path === fileSetting.text ? "" : ` at ${path}`})`,
        path,
      );
    }
    setting = { ...fileSetting, text: text.trim(), secret: true };
  } else if (fileSetting && tokenSetting) {
    problem(fileSetting, `cannot be combined with ${nameOf(tokenSetting)}: give the token one way`);
  }
  if (!setting) {
    if (ingressFile) {
      throw new ConfigError(
        `--token is required: put token or tokenFile in ${ingressFile.path}, pass --token or set ${TOKEN_ENV}; ${mint}.`,
        { field: "token" },
      );
    }
    throw new ConfigError(`--token is required: pass --token or set ${TOKEN_ENV}; ${mint}.`, { field: "token" });
  }
  const claims = readTokenClaims(setting.text);
  if (!claims) {
    problem(setting, `is not an agent token; tokens look like er1.<payload>.<signature>, ${mint}`);
  }
  const covered = tokenBackends(claims);
  const missing = rules.find((rule) => !covered.includes(rule.backend));
  if (missing) {
    const minted = `was minted for backend${covered.length > 1 ? "s" : ""} ${covered.map((b) => `"${b}"`).join(", ")}`;
    if (!ingressFile) {
      const backendName = backendSetting ? nameOf(backendSetting) : "--backend";
      problem(setting, `${minted}, but ${backendName} is "${missing.backend}"; ${mint}`);
    }
    problem(setting, `${minted}, not for "${missing.backend}" of ${missing.name}; ${mint}`);
  }
  return setting.text;
}

function parseTarget(
  to: Setting | undefined,
  caSetting: Setting | undefined,
  insecureSetting: Setting | undefined,
  configDir: string | undefined,
  readFile: (path: string) => string,
): TargetSpec {
  if (!to) {
    throw new ConfigError(`--to is required: pass --to with ${TARGET_LIST}, or put "to" in the --config file.`, { field: "to" });
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

function parseTargetText(setting: Setting, configDir: string | undefined): TargetSpec {
  const rule = `must be ${TARGET_LIST}`;
  const text = setting.text;
  if (text.startsWith("h2c://")) {
    // Cleartext HTTP/2 with prior knowledge: an http target spoken to in h2 (--origin-protocol h2c).
    const target = parseTargetText({ ...setting, text: text.replace(/^h2c:/, "http:") }, configDir);
    return { ...target, h2c: true } as TargetSpec;
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
    const url =
      text.startsWith("bridge+tcp://") && URL.canParse(text.slice("bridge+".length)) ? new URL(text.slice("bridge+".length)) : undefined;
    if (!url || !url.hostname || !url.port) invalid(setting, "the target", "must be bridge+tcp://host:port, with the port");
    if (url.username || url.password || (url.pathname !== "" && url.pathname !== "/") || url.search || url.hash) {
      invalid(setting, "the target", "must be only bridge+tcp://host:port, with no user, path, query or fragment");
    }
    // The plugin and idle time are filled in by buildAgentConfig.
    return {
      kind: "bridge",
      host: url.hostname.replace(/^\[|\]$/g, ""),
      port: Number(url.port),
      plugin: undefined as unknown as PluginRef,
      idleMs: 0,
    };
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
  target: Extract<TargetSpec, { kind: "hbone" }>,
  src: Source,
  configDir: string | undefined,
  readFile: (path: string) => string,
): HboneSettings {
  const pem = (key: "hbone-cert" | "hbone-key" | "hbone-ca", what: string, marker: RegExp, block: string): string => {
    const setting = src.one(key);
    if (!setting) src.missing(key, `is required for an hbone:// target: ${what} (PEM file)`);
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
  const identities = src.all("hbone-identity").map((s) => {
    if (!/^spiffe:\/\/[^/\s]+\/\S*$/.test(s.text))
      invalid(s, "the identity", "must be a SPIFFE ID like spiffe://cluster.local/ns/default/sa/reviews");
    return s.text;
  });
  const headers = src.all("hbone-header").map((s): [string, string] => {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)$/.exec(s.text);
    if (!m || m[1].startsWith(":")) invalid(s, "the header", "must be name=value with a valid header name");
    return [m[1].toLowerCase(), m[2]];
  });
  const proxySetting = src.one("hbone-proxy");
  const targetHost = target.authority.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  let proxy = { host: targetHost, port: 15008 };
  if (proxySetting) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(proxySetting.text);
    if (!m || Number(m[3]) > 65535) invalid(proxySetting, "the proxy", "must be host:port (IPv6 in brackets), like 10.0.0.5:15008");
    proxy = { host: m[1] ?? m[2], port: Number(m[3]) };
  }
  return { proxy, cert, key, ca, identities, headers, tls12: parseBoolean(src.one("hbone-tls12")) };
}

/**
 * Where --bridge-plugin points: a built-in name, a path (./x, ../x, /x or file:, relative to the
 * working directory or the --config file's folder), or else a package name.
 */
function parsePluginRef(setting: Setting | undefined, configDir: string | undefined): PluginRef {
  const text = setting?.text ?? DEFAULT_BRIDGE_PLUGIN;
  const from = setting?.source.kind === "file" && configDir !== undefined ? resolve(configDir) : process.cwd();
  const where = { field: "bridge-plugin", ...(setting ? fileOf(setting) : {}) };
  const subject = setting
    ? `${setting.source.kind === "file" ? `${placeText(setting.source)}: ` : ""}${subjectOf(setting)}`
    : `--bridge-plugin "${text}"`;
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
    invalid(
      setting!,
      "the bridge plugin",
      `must be a built-in plugin (${BUILT_IN_BRIDGE_PLUGINS.join(", ")}), a path like ./codec.ts, or a package name`,
    );
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
function parseOriginProtocol(setting: Setting | undefined, target: TargetSpec, to: Setting | undefined): OriginProtocol {
  const implied = target.kind === "http" && target.h2c ? "h2c" : "auto";
  if (!setting) return implied;
  const value = setting.text;
  if (!(ORIGIN_PROTOCOLS as readonly string[]).includes(value)) invalid(setting, "the protocol", "must be auto, http1, h2 or h2c");
  const fits: Record<string, string[]> = {
    http: ["auto", "http1", "h2c"],
    https: ["auto", "http1", "h2"],
    hbone: ["auto", "http1", "h2", "h2c"],
    unix: ["auto", "http1"],
  };
  const allowed = fits[target.kind];
  if (!allowed || !allowed.includes(value) || (implied === "h2c" && value !== "h2c" && value !== "auto")) {
    problem(
      setting,
      `does not fit ${to ? `${nameOf(to)} ${to.shown}` : "the target"}: ${allowed ? `use ${allowed.join(", ")}` : "it applies to http, https, unix and hbone targets"}`,
    );
  }
  return value === "auto" ? implied : (value as OriginProtocol);
}

/** One of `choices`, or `fallback` when not set. */
function parseChoice<T extends string>(setting: Setting | undefined, choices: readonly T[], noun: string, fallback: T): T {
  if (!setting) return fallback;
  if (!(choices as readonly string[]).includes(setting.text)) invalid(setting, noun, `must be one of ${choices.join(", ")}`);
  return setting.text as T;
}

/** `host:port`, `[v6]:port`, `:port` or a bare port (then on 127.0.0.1); port 0 picks a free one. */
function parseListen(setting: Setting | undefined): ListenAddress | undefined {
  if (!setting) return undefined;
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)?:)?(\d{1,5})$/.exec(setting.text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) invalid(setting, "the listen address", "must be host:port, like 127.0.0.1:9464, or a port");
  const host = m[1] ? m[1].replace(/^\[|\]$/g, "") : "127.0.0.1";
  return { host, port };
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
 * file entries read `agent.yaml:4:5: ingress[0].service must be …, not "ftp://x".` Secrets are never quoted.
 */
function invalid(setting: Setting, noun: string, rule: string): never {
  const where = { field: setting.key, ...fileOf(setting) };
  const { source } = setting;
  if (source.kind === "file") {
    const shown = setting.secret ? "" : `, not ${setting.shown}`;
    throw new ConfigError(`${placeText(source)}: ${source.path} ${rule}${shown}.`, where);
  }
  const name = source.kind === "flag" ? `--${setting.key}` : source.name;
  throw new ConfigError(`${name}${setting.secret ? "" : ` ${setting.shown}`}: ${noun} ${rule}.`, where);
}

/** Throws `<subject> <predicate>.`, prefixed by the file, line and column when the setting came from the file. */
function problem(setting: Setting, predicate: string, file?: string): never {
  const prefix = setting.source.kind === "file" ? `${placeText(setting.source)}: ` : "";
  const where = { field: setting.key, ...fileOf(setting), ...(file !== undefined && setting.source.kind !== "file" ? { file } : {}) };
  throw new ConfigError(`${prefix}${subjectOf(setting)} ${predicate}.`, where);
}

/** `--to`, `EDGE_RELAY_URL` or the key path in the file (`ingress[0].service`). */
function nameOf(setting: Setting): string {
  const { source } = setting;
  return source.kind === "flag" ? `--${setting.key}` : source.kind === "env" ? source.name : source.path;
}

/** The name with the value (left out for secrets and boolean flags): `--to "x"` or `ingress[0].service "x"`. */
function subjectOf(setting: Setting): string {
  const isBooleanFlag = setting.source.kind === "flag" && BOOLEAN_KEYS.includes(setting.key);
  if (setting.secret || isBooleanFlag) return nameOf(setting);
  return `${nameOf(setting)} ${setting.shown}`;
}

/** Paths written in the --config file are relative to that file, as in tsconfig.json. */
function resolveFromFile(setting: Setting, configDir: string | undefined): string {
  return setting.source.kind === "file" && configDir !== undefined ? resolve(configDir, setting.text) : setting.text;
}

function fileOf(setting: Setting): { file?: string; line?: number; column?: number } {
  return setting.source.kind === "file" ? whereOf(setting.source) : {};
}

function whereOf(place: Omit<FilePlace, "path">): { file: string; line: number; column: number } {
  return { file: place.file, line: place.line, column: place.column };
}

/** `agent.yaml:4:5`. */
function placeText(place: Omit<FilePlace, "path">): string {
  return `${place.file}:${place.line}:${place.column}`;
}

function describeError(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  if (code === "EISDIR") return "it is a directory";
  return typeof code === "string" ? code : error instanceof Error ? error.message : String(error);
}

function parseConnectTimeout(setting: Setting): number {
  let ms = NaN;
  const millis = /^(\d{1,9})ms$/.exec(setting.text);
  try {
    ms = millis ? Number(millis[1]) : parseDuration(setting.text) * 1000;
  } catch {}
  if (!(ms >= 10 && ms <= 600_000)) invalid(setting, "the connect timeout", "must be a duration from 10ms to 10m, like 500ms, 5s or 1m");
  return ms;
}

/** A rule's `headers` mapping (already shaped by the schema) into lowercase names checked for HTTP. */
function parseHeaders(setting: Setting | undefined): HeaderRewrite {
  const rewrite: HeaderRewrite = { request: { set: [], remove: [] }, response: { set: [], remove: [] } };
  if (!setting) return rewrite;
  const value = (setting.value ?? {}) as Record<
    "request" | "response",
    { set?: Record<string, string | string[]>; remove?: string[] } | undefined
  >;
  const fail = (path: string, predicate: string): never => {
    const at = setting.source.kind === "file" ? setting.source : undefined;
    throw new ConfigError(`${at ? `${placeText(at)}: ` : ""}${nameOf(setting)}.${path} ${predicate}.`, {
      field: "headers",
      ...fileOf(setting),
    });
  };
  for (const side of ["request", "response"] as const) {
    const edit: HeaderEdit = rewrite[side];
    for (const [written, values] of Object.entries(value[side]?.set ?? {})) {
      const name = written.toLowerCase();
      const bad = headerNameProblem(name);
      if (bad) fail(`${side}.set`, `names "${written}", which ${bad}`);
      const list = Array.isArray(values) ? values : [values];
      for (const v of list) {
        const badValue = headerValueProblem(v);
        if (badValue) fail(`${side}.set.${written}`, badValue);
      }
      edit.set.push([name, list]);
    }
    for (const written of value[side]?.remove ?? []) {
      const name = written.toLowerCase();
      const bad = headerNameProblem(name);
      if (bad) fail(`${side}.remove`, `names "${written}", which ${bad}`);
      if (edit.set.some(([n]) => n === name)) fail(`${side}.remove`, `names "${written}", which ${side}.set sets too; keep one`);
      edit.remove.push(name);
    }
  }
  return rewrite;
}

/**
 * A rule's visitor access policies: the `access` list in the file, or the list in a --policy
 * file (a bare list, or a mapping with `access`). Errors name the key path inside the list.
 */
function parseAccess(
  inline: Setting | undefined,
  file: Setting | undefined,
  configDir: string | undefined,
  readFile: (path: string) => string,
): Policy[] | undefined {
  if (inline && file) problem(file, `cannot be combined with ${nameOf(inline)}: give the policies one way`);
  if (inline) {
    try {
      return validatePolicies(inline.value);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      const at = inline.source.kind === "file" ? `${placeText(inline.source)}: ` : "";
      throw new ConfigError(`${at}${nameOf(inline)}${err.path} ${err.problem}.`, { field: "access", ...fileOf(inline) });
    }
  }
  if (!file) return undefined;
  const path = resolveFromFile(file, configDir);
  let value: unknown;
  try {
    value = yaml().parse(readFile(path));
  } catch (error) {
    const why =
      error instanceof yaml().YAMLParseError
        ? `is not YAML: ${error.message.split("\n")[0]}`
        : `names a file that cannot be read (${describeError(error)})`;
    problem(file, path === file.text ? why : `${why} at ${path}`, path);
  }
  const list =
    value && typeof value === "object" && !Array.isArray(value) && "access" in value ? (value as { access: unknown }).access : value;
  try {
    return validatePolicies(list);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    throw new ConfigError(`${path}: access${err.path} ${err.problem}.`, { field: "policy", file: path });
  }
}

/** One rule of the file: its position and its settings by flag name (or file key). */
interface FileRule {
  index: number;
  at: FilePlace;
  settings: Map<string, Setting[]>;
}

interface ConfigFile {
  path: string;
  dir: string;
  /** Top-level settings by flag name: the agent's, and the one rule's of a file without ingress. */
  top: Map<string, Setting[]>;
  /** The ingress rules, when the file has them. */
  rules?: FileRule[];
}

const AGENT_KEYS = new Map(OPTIONS.filter((o) => o.scope === "agent" && o.key).map((o) => [o.key!, o]));
const RULE_KEYS = new Map(OPTIONS.filter((o) => o.scope === "rule" && o.key).map((o) => [o.key!, o]));
const TOP_KEY_LIST = [...AGENT_KEYS.keys(), "ingress"];
// The yaml package's functions this file uses, loaded with the first --config file.
const isMap = (node: unknown): node is YAMLMap => yaml().isMap(node);
const isSeq = (node: unknown): node is YAMLSeq => yaml().isSeq(node);
const isPair = (node: unknown): node is Pair => yaml().isPair(node);
const isScalar = (node: unknown): node is Scalar => yaml().isScalar(node);

const ENV_REFERENCE = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

let validator: ReturnType<Ajv["compile"]> | undefined;

/** The schema's most telling complaint about the file's shape (options.ts), or undefined. */
function validateShape(value: unknown): ErrorObject | undefined {
  if (!validator) {
    const ajv = new (ajvPackage().Ajv)({ verbose: true, allowUnionTypes: true, strict: true, allErrors: true });
    ajv.addKeyword({ keyword: "expected", schemaType: "string" });
    validator = ajv.compile(configSchema());
  }
  if (validator(value)) return undefined;
  // A misspelt key also leaves a required key missing: name the misspelling, it is the cause.
  const errors = validator.errors ?? [];
  return errors.find((e) => e.keyword === "additionalProperties") ?? errors[0];
}

/**
 * Reads the --config file: YAML (so JSON too), `${NAME}` replaced from the environment in every
 * value (`$${NAME}` keeps the text), checked against the schema, then turned into settings that
 * remember their line, column and key path.
 */
function loadConfigFile(path: string, readFile: (path: string) => string, env: Record<string, string | undefined>): ConfigFile {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    throw new ConfigError(`--config "${path}": the file cannot be read (${describeError(error)}).`, { field: "config", file: path });
  }
  const lines = new (yaml().LineCounter)();
  const doc = yaml().parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return { file: path, line, column: col };
  };
  const fail = (offset: number, field: string, sentence: string): never => {
    const where = at(offset);
    throw new ConfigError(`${placeText(where)}: ${sentence}.`, { field, ...where });
  };
  const syntax = doc.errors[0];
  if (syntax) {
    if (syntax.code === "DUPLICATE_KEY") {
      const written = /^(?:"(?:[^"\\]|\\.)*"|'[^']*'|[^:\s,{}[\]]+)/.exec(text.slice(syntax.pos[0]))?.[0] ?? "";
      const key = written.replace(/^(["'])(.*)\1$/, "$2");
      fail(syntax.pos[0], key, `"${key}" appears twice in one mapping; keep one`);
    }
    fail(
      syntax.pos[0],
      "config",
      `the file is not valid YAML: ${syntax.message.charAt(0).toLowerCase()}${syntax.message.slice(1).replace(/\.$/, "")}`,
    );
  }
  const root = doc.contents;
  if (!isMap(root)) {
    const what =
      root === null || (isScalar(root) && root.value === null) ? "is empty" : `holds ${isSeq(root) ? "a list" : "a single value"}`;
    fail(
      root?.range?.[0] ?? 0,
      "config",
      `the file ${what}; it must hold a mapping of settings, like relay: https://relay.example.com and ingress: a list of rules`,
    );
  }
  expandEnv(doc, env, fail);

  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const shapeError = validateShape(value);
  if (shapeError) describeShapeError(shapeError, doc, value, fail);

  const top = new Map<string, Setting[]>();
  let rules: FileRule[] | undefined;
  for (const pair of (root as YAMLMap).items) {
    const key = String((pair.key as { value?: unknown }).value);
    if (key === "ingress") {
      rules = (pair.value as { items: unknown[] }).items.map((item, index) => {
        const settings = new Map<string, Setting[]>();
        collectRule(item as YAMLMap, `ingress[${index}]`, "", settings);
        return { index, at: { ...at((item as YAMLMap).range![0]), path: `ingress[${index}]` }, settings };
      });
      continue;
    }
    const option = AGENT_KEYS.get(key) ?? FLAG_OPTIONS.get(key)!;
    const name = option.flag ?? option.key!;
    const earlier = top.get(name)?.[0];
    if (earlier?.source.kind === "file")
      fail(keyOffset(pair), name, `${key} repeats ${earlier.source.path} (line ${earlier.source.line}); keep one`);
    top.set(name, settingsOf(pair, option, key));
  }
  if (rules) {
    const ruleKey = [...top.keys()].find((name) => FLAG_OPTIONS.get(name)?.scope === "rule");
    if (ruleKey) {
      const setting = top.get(ruleKey)![0];
      const place = setting.source as FilePlace;
      fail(
        lines.lineStarts[place.line - 1] + place.column - 1,
        ruleKey,
        `${place.path} belongs in an ingress rule (as ${FLAG_OPTIONS.get(ruleKey)!.key}) once the file has ingress`,
      );
    }
  }
  return { path, dir: dirname(path), top, ...(rules ? { rules } : {}) };

  function keyOffset(pair: Pair): number {
    return (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
  }

  /** One key's settings: one, or one per item of a list. Positions are the key's. */
  function settingsOf(pair: Pair, option: OptionSpec, path: string): Setting[] {
    const name = option.flag ?? option.key!;
    const place = { kind: "file" as const, ...at(keyOffset(pair)), path };
    const node = pair.value;
    const secret = option.secret;
    if (option.type === "list" && isSeq(node)) {
      return node.items.map((item, i) => {
        const v = (item as { value?: unknown }).value;
        return { key: name, text: String(v), shown: JSON.stringify(v), source: { ...place, path: `${path}[${i}]` }, secret };
      });
    }
    const v = isScalar(node) ? node.value : (node as { toJSON?: () => unknown } | null)?.toJSON?.();
    return [{ key: name, text: v === null || v === undefined ? "" : String(v), shown: JSON.stringify(v), source: place, value: v, secret }];
  }

  /** A rule's settings, nested mappings (originRequest, hbone, bridge) by their dotted key. */
  function collectRule(map: YAMLMap, rulePath: string, prefix: string, into: Map<string, Setting[]>): void {
    for (const pair of map.items) {
      const key = `${prefix}${String((pair.key as { value?: unknown }).value)}`;
      const option = RULE_KEYS.get(key);
      if (!option && isMap(pair.value)) collectRule(pair.value, rulePath, `${key}.`, into);
      else if (option) into.set(option.flag ?? option.key!, settingsOf(pair, option, `${rulePath}.${key}`));
    }
  }
}

/** Replaces `${NAME}` in every string value from `env`; a name that is not set is an error naming it. */
function expandEnv(
  doc: Document,
  env: Record<string, string | undefined>,
  fail: (offset: number, field: string, sentence: string) => never,
): void {
  yaml().visit(doc, {
    Scalar(key, node, ancestors) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("${")) return;
      node.value = node.value.replace(ENV_REFERENCE, (_all, escaped: string, name: string) => {
        if (escaped) return `\${${name}}`;
        const found = env[name];
        if (found === undefined)
          fail(node.range?.[0] ?? 0, name, `${pathOfNode(ancestors, node)} uses \${${name}}, but ${name} is not set in the environment`);
        return found;
      });
    },
  });
}

/** The key path of a node from its ancestors: `ingress[1].hbone.cert`. */
function pathOfNode(ancestors: readonly unknown[], node: unknown): string {
  const chain = [...ancestors, node];
  let path = "";
  for (let i = 0; i < chain.length - 1; i++) {
    const here = chain[i];
    const next = chain[i + 1];
    if (isSeq(here)) path += `[${here.items.indexOf(next as never)}]`;
    else if (isPair(here) && next === here.value) path += `${path ? "." : ""}${String((here.key as { value?: unknown }).value)}`;
  }
  return path;
}

/** Turns the schema's first complaint into one sentence at the key (or list item) it is about. */
function describeShapeError(
  error: ErrorObject,
  doc: Document,
  value: unknown,
  fail: (offset: number, field: string, sentence: string) => never,
): never {
  const segments = error.instancePath
    .split("/")
    .slice(1)
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
  const located = locate(doc, segments);
  const path = pathText(segments);
  const field = fieldOf(segments);
  const expected = (error.parentSchema as { expected?: string } | undefined)?.expected;
  if (error.keyword === "additionalProperties") {
    const extra = String((error.params as { additionalProperty: string }).additionalProperty);
    const at = locate(doc, [...segments, extra]);
    if (segments.length === 0) {
      fail(
        at.offset,
        extra,
        `"${extra}" is not a setting; the keys are ${TOP_KEY_LIST.join(", ")} (and, for a single rule, the long flag names)`,
      );
    }
    const keys = Object.keys((error.parentSchema as { properties?: object }).properties ?? {});
    fail(at.offset, extra, `${path} has no key "${extra}"; its keys are ${keys.join(", ")}`);
  }
  if (error.keyword === "required") {
    const missing = (error.params as { missingProperty: string }).missingProperty;
    fail(located.offset, missing, `${path} has no ${missing}; a rule needs backend and service`);
  }
  if (error.keyword === "minItems") fail(located.offset, field, `${path} must list at least one rule`);
  const data = segments.reduce<unknown>((v, s) => (v as Record<string, unknown> | undefined)?.[s], value);
  const secret = segments[0] === "token";
  const shown = secret
    ? ""
    : `, not ${data === null ? "empty" : Array.isArray(data) ? "a list" : typeof data === "object" ? "a mapping" : JSON.stringify(data)}`;
  fail(located.offset, field, `${path} must be ${expected ?? error.message ?? "something else"}${shown}`);
}

/** `ingress[2].originRequest.ca`, or `the file` for the top. */
function pathText(segments: string[]): string {
  if (segments.length === 0) return "the file";
  return segments.map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : `${i ? "." : ""}${s}`)).join("");
}

/** The flag name of the option a key path names (`ingress[0].hbone.ca` -> hbone-ca), else its last key. */
function fieldOf(segments: string[]): string {
  const keys = segments.filter((s) => !/^\d+$/.test(s));
  if (keys[0] === "ingress" && keys.length > 1) {
    for (let n = keys.length; n > 1; n--) {
      const option = RULE_KEYS.get(keys.slice(1, n).join("."));
      if (option) return option.flag ?? option.key!;
    }
  } else if (keys.length) {
    const option = AGENT_KEYS.get(keys[0]) ?? FLAG_OPTIONS.get(keys[0]);
    if (option) return option.flag ?? option.key!;
  }
  return keys[keys.length - 1] ?? "config";
}

/**
 * Where a key path points in the document: the key of the last mapping entry on the path, or a
 * list item that is itself a mapping (a rule); a scalar list item points at its list's key.
 */
function locate(doc: Document, segments: string[]): { offset: number } {
  let node: unknown = doc.contents;
  let offset = (node as { range?: number[] } | null)?.range?.[0] ?? 0;
  for (const segment of segments) {
    if (isMap(node)) {
      const pair = node.items.find((p) => String((p.key as { value?: unknown }).value) === segment);
      if (!pair) break;
      offset = (pair.key as { range?: number[] }).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node)) {
      node = node.items[Number(segment)];
      if (isMap(node) || isSeq(node)) offset = node.range?.[0] ?? offset;
    } else break;
  }
  return { offset };
}
