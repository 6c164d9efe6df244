// The agent's options, declared once: the flag parser, `edge-relay agent --help`, the config
// file's JSON Schema and the option table in docs/configuration.md are all derived from OPTIONS.
export const RELAY_URL_ENV = "EDGE_RELAY_URL";
export const TOKEN_ENV = "EDGE_RELAY_TOKEN";
export const DEFAULT_CONNECTIONS = 2;
export const MAX_CONNECTIONS = 16;
export const DEFAULT_HEARTBEAT_MS = 15_000;
export const DEFAULT_GRACE_PERIOD_MS = 30_000;
/** The plugins that ship with the agent (agent/bridge/load.ts maps each to its module). */
export const BUILT_IN_BRIDGE_PLUGINS = ["raw", "resp"] as const;
export const DEFAULT_BRIDGE_PLUGIN = "raw";
export const DEFAULT_BRIDGE_IDLE_MS = 1000;
export const ORIGIN_PROTOCOLS = ["auto", "http1", "h2", "h2c"] as const;
export const LOG_FORMATS = ["text", "json"] as const;
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export const DEFAULT_INSPECT_CAPACITY = 500;

/**
 * string, boolean; `count` a whole number (or its text); `duration` 30s, 15m, 2h or a number of
 * seconds; `list` a string or a list of strings (a flag given several times); `headers` the
 * rule's header rewrite.
 */
export type OptionType = "string" | "boolean" | "count" | "duration" | "list" | "headers";

export interface OptionSpec {
  /** The long flag name (`--grace-period`); absent for settings only the config file has. */
  flag?: string;
  /** Where it sits in the config file: a top-level key, or a dotted path inside an ingress rule. */
  key?: string;
  /** `agent`: one value for the whole process; `rule`: one value per ingress rule. */
  scope: "agent" | "rule";
  type: OptionType;
  /** The placeholder in `--help` (`<duration>`). */
  valueName?: string;
  /** The default, as the user would write it. */
  default?: string;
  /** The environment variable used when neither a flag nor the file sets it. */
  env?: string;
  /** Allowed values. */
  choices?: readonly string[];
  /** Never printed, quoted or logged. */
  secret?: boolean;
  /** One or two sentences; wrapped by `--help`. */
  help: string;
}

/** Every option of `edge-relay agent`, in the order `--help` lists them. */
export const OPTIONS: readonly OptionSpec[] = [
  {
    flag: "config",
    scope: "agent",
    type: "string",
    valueName: "<file>",
    help: "A YAML (or JSON) file of these settings and the ingress rules; flags win over it.",
  },
  {
    flag: "relay",
    key: "relay",
    scope: "agent",
    type: "string",
    valueName: "<url>",
    env: RELAY_URL_ENV,
    help: "The relay's base URL (http, https, ws or wss); /_relay/connect is appended.",
  },
  {
    flag: "token",
    key: "token",
    scope: "agent",
    type: "string",
    valueName: "<token>",
    env: TOKEN_ENV,
    secret: true,
    help: "The agent token, from `edge-relay token <name>...`; it must cover every backend served.",
  },
  {
    flag: "token-file",
    key: "tokenFile",
    scope: "agent",
    type: "string",
    valueName: "<file>",
    help: "Read the agent token from this file instead (relative to the config file).",
  },
  {
    flag: "connections",
    key: "connections",
    scope: "agent",
    type: "count",
    valueName: "<n>",
    default: String(DEFAULT_CONNECTIONS),
    help: `Tunnels to keep open per backend, 1 to ${MAX_CONNECTIONS}; the relay sends each request to the least-loaded tunnel.`,
  },
  {
    flag: "grace-period",
    key: "gracePeriod",
    scope: "agent",
    type: "duration",
    valueName: "<duration>",
    default: "30s",
    help: "How long in-flight requests may finish on shutdown, or when a reload removes their backend.",
  },
  {
    flag: "heartbeat",
    key: "heartbeat",
    scope: "agent",
    type: "duration",
    valueName: "<duration>",
    default: "15s",
    help: "How often to ping each tunnel; a tunnel silent for three intervals is reconnected.",
  },
  {
    flag: "require-access-token",
    key: "requireAccessToken",
    scope: "agent",
    type: "boolean",
    help: "Public requests must carry an access token (X-Relay-Access-Token); mint one with `edge-relay token <name> --access`.",
  },
  { flag: "watch", scope: "agent", type: "boolean", help: "Reload the --config file when it changes (SIGHUP always reloads it)." },
  {
    flag: "log-format",
    key: "logFormat",
    scope: "agent",
    type: "string",
    valueName: "<format>",
    default: "text",
    choices: LOG_FORMATS,
    help: "text: one sentence a line; json: one JSON object a line with time, level, backend, tunnel and request ids (docs/observability.md).",
  },
  {
    flag: "log-level",
    key: "logLevel",
    scope: "agent",
    type: "string",
    valueName: "<level>",
    default: "info",
    choices: LOG_LEVELS,
    help: "The least severe lines printed: debug adds a line per request; silent prints nothing.",
  },
  {
    flag: "metrics",
    key: "metrics",
    scope: "agent",
    type: "string",
    valueName: "<host:port>",
    help: "Serve Prometheus metrics at /metrics, and /healthz and /ready, on this address (a bare port means 127.0.0.1). Off by default.",
  },
  {
    flag: "inspect",
    key: "inspect",
    scope: "agent",
    type: "string",
    valueName: "<host:port>",
    help: "Serve the request inspector (a web page and /api/requests) on this address (a bare port means 127.0.0.1). Off by default.",
  },
  {
    flag: "inspect-unmask",
    key: "inspectUnmask",
    scope: "agent",
    type: "boolean",
    help: "Show Authorization, Cookie and other secret header values in the inspector instead of masking them.",
  },
  {
    flag: "backend",
    key: "backend",
    scope: "rule",
    type: "string",
    valueName: "<name>",
    help: "The backend a rule serves: 1 to 63 lowercase letters, digits or hyphens.",
  },
  {
    flag: "to",
    key: "service",
    scope: "rule",
    type: "string",
    valueName: "<target>",
    help: "Where the rule's requests go: http://, https://, h2c://, unix:, tcp://, bridge+tcp:// or hbone:// (see Targets).",
  },
  {
    key: "path",
    scope: "rule",
    type: "string",
    help: "Only requests under this path prefix (/api matches /api and /api/...); the first matching rule of a backend wins.",
  },
  {
    key: "stripPrefix",
    scope: "rule",
    type: "boolean",
    help: "Remove the path prefix before the request goes on (/api/v1/x reaches the target as /v1/x).",
  },
  {
    key: "headers",
    scope: "rule",
    type: "headers",
    help: "Header rewrite: request and response, each with set (name: value or a list of values) and remove (names).",
  },
  {
    flag: "preserve-host",
    key: "originRequest.preserveHost",
    scope: "rule",
    type: "boolean",
    help: "Send the public Host header to the target instead of the target's own host.",
  },
  {
    flag: "connect-timeout",
    key: "originRequest.connectTimeout",
    scope: "rule",
    type: "duration",
    valueName: "<duration>",
    help: "How long connecting to an http, https or unix target may take before the request fails (default: the system's).",
  },
  {
    flag: "origin-ca",
    key: "originRequest.ca",
    scope: "rule",
    type: "string",
    valueName: "<file>",
    help: "Trust the CA certificates in this PEM file for an https target.",
  },
  {
    flag: "origin-insecure",
    key: "originRequest.insecure",
    scope: "rule",
    type: "boolean",
    help: "Skip certificate verification for an https target.",
  },
  {
    flag: "origin-protocol",
    key: "originRequest.protocol",
    scope: "rule",
    type: "string",
    valueName: "<protocol>",
    default: "auto",
    choices: ORIGIN_PROTOCOLS,
    help: "How to speak HTTP to the target: auto (https offers ALPN h2 and http/1.1), http1, h2, or h2c (cleartext HTTP/2). WebSocket upgrades always use HTTP/1.1.",
  },
  {
    flag: "hbone-proxy",
    key: "hbone.proxy",
    scope: "rule",
    type: "string",
    valueName: "<host:port>",
    help: "HBONE proxy (default: the target's ip on port 15008, as in Istio ambient).",
  },
  {
    flag: "hbone-cert",
    key: "hbone.cert",
    scope: "rule",
    type: "string",
    valueName: "<file>",
    help: "The agent's client certificate (PEM); required for hbone:// targets.",
  },
  { flag: "hbone-key", key: "hbone.key", scope: "rule", type: "string", valueName: "<file>", help: "Its private key (PEM)." },
  {
    flag: "hbone-ca",
    key: "hbone.ca",
    scope: "rule",
    type: "string",
    valueName: "<file>",
    help: "The mesh CA (PEM) the proxy's certificate must chain to.",
  },
  {
    flag: "hbone-identity",
    key: "hbone.identity",
    scope: "rule",
    type: "list",
    valueName: "<spiffe-id>",
    help: "A SPIFFE ID the proxy's certificate must carry as a URI SAN (repeatable; any one matches).",
  },
  {
    flag: "hbone-header",
    key: "hbone.header",
    scope: "rule",
    type: "list",
    valueName: "<name=value>",
    help: "An extra header on every CONNECT (repeatable).",
  },
  {
    flag: "hbone-tls12",
    key: "hbone.tls12",
    scope: "rule",
    type: "boolean",
    help: "Also allow TLS 1.2 to the proxy (default: TLS 1.3 only).",
  },
  {
    flag: "bridge-plugin",
    key: "bridge.plugin",
    scope: "rule",
    type: "string",
    valueName: "<module>",
    default: DEFAULT_BRIDGE_PLUGIN,
    help: "For a bridge+tcp target: the plugin converting HTTP to the TCP protocol: raw, resp, a file (./codec.ts) or an installed package.",
  },
  {
    flag: "bridge-idle",
    key: "bridge.idle",
    scope: "rule",
    type: "duration",
    valueName: "<duration>",
    default: "1s",
    help: "For a bridge+tcp target: how long a reply may pause before plugins that ask for it (raw) end it; 250ms works too.",
  },
];

/** The options with a flag, keyed by flag name. */
export const FLAG_OPTIONS: ReadonlyMap<string, OptionSpec> = new Map(OPTIONS.filter((o) => o.flag).map((o) => [o.flag!, o]));

/** The `options` argument of node:util parseArgs for these flags (plus -h/--help). */
export function parseArgsOptions(): Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> {
  const out: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const o of OPTIONS) {
    if (!o.flag) continue;
    out[o.flag] = o.type === "boolean" ? { type: "boolean" } : o.type === "list" ? { type: "string", multiple: true } : { type: "string" };
  }
  out.help = { type: "boolean", short: "h" };
  return out;
}

/** The flags section of `--help`: one entry per flag, help wrapped at 100 columns. */
export function flagHelp(): string {
  const lines: string[] = [];
  for (const o of OPTIONS) {
    if (!o.flag) continue;
    const head = `  --${o.flag}${o.valueName ? ` ${o.valueName}` : ""}`;
    const text = o.default !== undefined ? `${o.help} Default: ${o.default}.` : o.help;
    const words = text.split(" ");
    let line = head.length >= 28 ? head + "\n" + " ".repeat(28) : head.padEnd(28);
    let width = line.length - line.lastIndexOf("\n") - 1;
    for (const word of words) {
      if (width + word.length + 1 > 100 && width > 28) {
        lines.push(line.trimEnd());
        line = " ".repeat(28);
        width = 28;
      }
      line += (width > 28 ? " " : "") + word;
      width += word.length + (width > 28 ? 1 : 0);
    }
    lines.push(line.trimEnd());
  }
  lines.push("  -h, --help".padEnd(28) + "Show this text.");
  return lines.join("\n");
}

/** The environment section of `--help`. */
export function envHelp(): string {
  return OPTIONS.filter((o) => o.env)
    .map((o) => `  ${o.env!.padEnd(22)}Used for --${o.flag} when neither the command line nor --config sets it.`)
    .join("\n");
}

/** The option table of docs/configuration.md, as Markdown. */
export function optionsMarkdown(): string {
  const rows = OPTIONS.map((o) => {
    const cell = (text: string | undefined) => (text ? text.replace(/\|/g, "\\|") : "");
    const key = o.key ? (o.scope === "rule" ? `ingress[].${o.key}` : o.key) : "";
    return `| ${o.flag ? `\`--${o.flag}\`` : ""} | ${key ? `\`${key}\`` : ""} | ${TYPE_WORDS[o.type]} | ${cell(o.default)} | ${o.env ? `\`${o.env}\`` : ""} | ${cell(o.help)} |`;
  });
  return ["| Flag | Config file key | Type | Default | Env | What it does |", "| --- | --- | --- | --- | --- | --- |", ...rows].join("\n");
}

const TYPE_WORDS: Record<OptionType, string> = {
  string: "string",
  boolean: "true/false",
  count: "whole number",
  duration: "duration",
  list: "list of strings",
  headers: "mapping",
};

type Schema = Record<string, unknown>;

/** The JSON Schema of one option's value; `expected` words the type for error messages. */
function valueSchema(o: OptionSpec): Schema {
  switch (o.type) {
    case "string":
      return o.choices
        ? { type: "string", enum: [...o.choices], expected: `one of ${o.choices.join(", ")}` }
        : { type: "string", expected: "a string" };
    case "boolean":
      return { type: "boolean", expected: "true or false" };
    case "count":
      return { type: ["integer", "string"], expected: "a whole number" };
    case "duration":
      return { type: ["string", "integer"], expected: "a duration like 30s, 15m or 2h (or a number of seconds)" };
    case "list":
      return { type: ["string", "array"], items: { type: "string", expected: "a string" }, expected: "a string or a list of strings" };
    case "headers": {
      const side = {
        type: "object",
        additionalProperties: false,
        expected: "a mapping with set and remove",
        properties: {
          set: {
            type: "object",
            expected: "a mapping of header names to values",
            additionalProperties: {
              type: ["string", "array"],
              items: { type: "string", expected: "a string" },
              expected: "a string or a list of strings",
            },
          },
          remove: { type: "array", items: { type: "string", expected: "a header name" }, expected: "a list of header names" },
        },
      };
      return {
        type: "object",
        additionalProperties: false,
        expected: "a mapping with request and response",
        properties: { request: side, response: side },
      };
    }
  }
}

/** Puts `schema` at a dotted `key` path inside an object schema, creating the mappings between. */
function place(root: Schema, key: string, schema: Schema): void {
  const parts = key.split(".");
  let at = root;
  for (const part of parts.slice(0, -1)) {
    const props = at.properties as Record<string, Schema>;
    props[part] ??= { type: "object", additionalProperties: false, expected: "a mapping", properties: {} };
    at = props[part];
  }
  (at.properties as Record<string, Schema>)[parts[parts.length - 1]] = schema;
}

/**
 * The config file's JSON Schema: the agent options by key (and by long flag name, as earlier
 * versions wrote them), `ingress` as a list of rules, and the rule options by flag name at the
 * top for the one-rule form of earlier versions.
 */
export function configSchema(): Schema {
  const rule: Schema = {
    type: "object",
    additionalProperties: false,
    required: ["backend", "service"],
    expected: "a mapping with backend and service",
    properties: {},
  };
  const root: Schema = {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "edge-relay agent config",
    type: "object",
    additionalProperties: false,
    expected: "a mapping of settings",
    properties: {},
  };
  for (const o of OPTIONS) {
    if (o.scope === "rule" && o.key) place(rule, o.key, valueSchema(o));
    if (o.scope === "agent" && o.key) place(root, o.key, valueSchema(o));
    if (o.flag && o.flag !== "config" && o.flag !== "watch") place(root, o.flag, valueSchema(o));
  }
  (root.properties as Record<string, Schema>).ingress = { type: "array", minItems: 1, items: rule, expected: "a list of rules" };
  return root;
}
