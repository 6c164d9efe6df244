// The `edge-relay` command line: parses argv with node:util parseArgs and runs a subcommand.
// Usage and config errors print `edge-relay: <sentence>` and exit 2; tokens and secrets are never printed.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  isValidBackendName,
  MAX_TOKEN_BACKENDS,
  mintToken,
  parseDuration,
  readTokenClaims,
  tokenBackends,
  type TokenClaims,
} from "../src/auth.ts";
import { buildAgentConfig, ConfigError, TOKEN_ENV, type RawAgentOptions } from "./config.ts";
import { loadAgentConfig } from "./config-worker.ts";
import { envHelp, flagHelp, OPTIONS, parseArgsOptions } from "./options.ts";

export const SECRET_ENV = "RELAY_SECRET";
export const ACCESS_TOKEN_ENV = "EDGE_RELAY_ACCESS_TOKEN";
/** The file `npm start` (and wrangler dev) keeps the local relay's secret in, in the project folder. */
export const DEV_VARS = ".dev.vars";
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the command was invoked (exit 2). */
class UsageError extends Error {}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];
type Values = Record<string, string | boolean | undefined>;

interface Command {
  usage: string;
  options: Options;
  allowPositionals: boolean;
  run(values: Values, positionals: string[], secrets: string[]): Promise<number>;
}

const HELP_OPTION = { help: { type: "boolean", short: "h" } } as const;

const MAIN_USAGE = `edge-relay: reach an HTTP service behind NAT through an edge-relay Worker.

Usage:
  edge-relay agent --relay <url> --backend <name> --token <token> --to <target> [flags]
  edge-relay token <name>... [--ttl <duration>] [--access] [--secret <secret>]
  edge-relay token --inspect <token>
  edge-relay connect <relay-url> --backend <name> --listen <host:port> [--token <token>]
  edge-relay validate --config <file>
  edge-relay hash-password < password-file
  edge-relay ingress match --config <file> <backend> <path>
  edge-relay help [<command>]

Commands:
  agent     Keep tunnels open to the relay and serve public requests from local targets: one
            backend (--backend, --to) or many, from the ingress rules of a --config file.
  token     Mint an agent token (or, with --access, an access token) for one or more backends.
  connect   Open a local TCP port whose connections reach a backend's tcp:// target.
  validate  Check an agent config file and print its rules.
  hash-password
            Read a password from standard input and print its hash for a basicAuth policy.
  ingress   \`ingress match\`: which rule of a config file a request would take.
  help      Show this text, or a command's flags.

Run \`edge-relay <command> --help\` for a command's flags.

Example (\`edge-relay token\` signs with ${SECRET_ENV} from the environment):
  npx edge-relay agent --relay http://127.0.0.1:8787 --backend demo --token $(npx edge-relay token demo) --to http://127.0.0.1:3000
`;

const AGENT_USAGE = `Usage: edge-relay agent --relay <url> --backend <name> --token <token> --to <target> [flags]
       edge-relay agent --config edge-relay.yaml [--watch]

Keep tunnels open to the relay and serve public requests from local targets: one backend with
--backend and --to, or many backends, each with its own rules, from a --config file (see
docs/configuration.md). Stops on SIGINT or SIGTERM, letting in-flight requests finish within the
grace period; SIGHUP reloads the --config file.

Flags:
${flagHelp()}

Targets:
  http://host:port        Plain HTTP.
  https://host:port       HTTPS; see --origin-ca and --origin-insecure.
  unix:/path/to.sock      HTTP over a Unix domain socket.
  h2c://host:port         Cleartext HTTP/2 with prior knowledge (same as --origin-protocol h2c).
  hbone://ip:port         A service-mesh workload, reached by HTTP/2 CONNECT over mutual TLS through
                          its mesh proxy (Istio HBONE); see the --hbone-* flags.
  tcp://host:port         Raw TCP: each public WebSocket stream is one TCP connection
                          (reach it with \`edge-relay connect\`).
  bridge+tcp://host:port  HTTP to a TCP protocol: each HTTP request gets its own TCP connection
                          and --bridge-plugin converts between them (raw: body in, bytes out;
                          resp: Redis commands as JSON, like POST ["GET","key"]).

Durations: a whole number with an optional unit s, m, h or d (45s, 15m, 12h, 30d); a bare number is seconds.

Environment:
${envHelp()}

Config file (YAML or JSON; relative paths in it are relative to the file; \${NAME} is replaced
from the environment):
  relay: https://relay.example.com
  tokenFile: /etc/edge-relay/token
  ingress:
    - backend: shop
      path: /api/
      stripPrefix: true
      service: http://127.0.0.1:8080
    - backend: shop
      service: http://127.0.0.1:3000
    - backend: cache
      service: tcp://127.0.0.1:6379

Examples:
  npx edge-relay agent --relay http://127.0.0.1:8787 --backend demo --token $(npx edge-relay token demo) --to http://127.0.0.1:3000
  edge-relay agent --config edge-relay.yaml --watch
`;

const TOKEN_USAGE = `Usage: edge-relay token <name>... [--ttl <duration>] [--access] [--secret <secret>]
       edge-relay token --inspect <token>

Mint an agent token for backend <name> and print only the token on stdout; its id goes to
stderr, to note for revoking it later (POST /_relay/tokens/revoke, docs/tokens.md). Several
names make one token valid for exactly those backends (an agent serving them all from one
--config file).

Flags:
  --ttl <duration>        How long the token is valid, like 30d, 12h, 15m or 45s (default: it never expires).
  --access                Mint an access token, for clients of a backend whose agent runs with
                          --require-access-token (e.g. \`edge-relay connect --token\`), not an agent token.
  --secret <secret>       The relay's signing secret; prefer ${SECRET_ENV}, since flags show up in \`ps\` and shell history.
  --inspect <token>       Print a token's claims (backend, id, scope, issue and expiry times) as JSON,
                          without a secret: the signature is not checked.
  -h, --help              Show this text.

Environment:
  ${SECRET_ENV}            The relay's signing secret (the Worker's ${SECRET_ENV}), used unless --secret is given.
                          When neither is set, ${SECRET_ENV} from ./${DEV_VARS} (where \`npm start\` keeps the
                          local relay's secret) is used.

Examples:
  ${SECRET_ENV}=... npx edge-relay token demo
  ${SECRET_ENV}=... npx edge-relay token demo --ttl 30d
  ${SECRET_ENV}=... npx edge-relay token shop cache mesh --ttl 30d
`;

const VALIDATE_USAGE = `Usage: edge-relay validate --config <file>

Check an agent config file (YAML or JSON) as \`edge-relay agent --config\` would, without
connecting, and print the rules it resolves to, one per line. Exits 2 with the file, line, column
and key path of the first problem.

Example:
  EDGE_RELAY_TOKEN=... edge-relay validate --config edge-relay.yaml
`;

const INGRESS_USAGE = `Usage: edge-relay ingress match --config <file> <backend> <path>

Print the rule of the config file a request for <backend> and <path> would take, and the path
its target would see; exits 1 when no rule takes it (the agent answers 404 no_ingress_rule).

Example:
  edge-relay ingress match --config edge-relay.yaml shop /api/v1/orders
`;

const CONNECT_USAGE = `Usage: edge-relay connect <relay-url> --backend <name> (--listen <host:port> | --stdio) [--token <token>]

Listen on a local TCP port and carry every connection accepted there over its own WebSocket to
the backend, whose agent runs with a tcp:// target (like \`cloudflared access tcp\`). Half-closes
pass each way; a reset on either end resets the other. Stops on SIGINT or SIGTERM.

Flags:
  --backend <name>        The backend to reach.
  --listen <host:port>    Local address to listen on, like 127.0.0.1:6380 (port 0 picks one).
  --stdio                 Carry standard input and output as one connection instead (for ssh's
                          ProxyCommand).
  --token <token>         Access token, when the backend's agent requires one
                          (\`edge-relay token <name> --access\`).
  -h, --help              Show this text.

Environment:
  ${ACCESS_TOKEN_ENV}  Used for --token when it is not given.

Examples:
  edge-relay connect https://relay.example.com --backend redis --listen 127.0.0.1:6380
  redis-cli -p 6380 PING
  ssh -o ProxyCommand='npx edge-relay connect https://relay.example.com --backend ssh --stdio' me@ssh
`;

const HASH_PASSWORD_USAGE = `Usage: edge-relay hash-password < password-file

Reads one password from standard input (up to the first line break; type it and press Enter,
then Ctrl-D) and prints pbkdf2-sha256$<iterations>$<salt>$<hash>, the passwordHash of a user in
a basicAuth access policy (docs/access.md). The password is never printed.`;

const COMMANDS: Record<string, Command> = {
  "hash-password": {
    usage: HASH_PASSWORD_USAGE,
    allowPositionals: false,
    options: { ...HELP_OPTION },
    run: runHashPasswordCommand,
  },
  agent: {
    usage: AGENT_USAGE,
    allowPositionals: false,
    options: parseArgsOptions(),
    run: runAgentCommand,
  },
  token: {
    usage: TOKEN_USAGE,
    allowPositionals: true,
    options: {
      ttl: { type: "string" },
      access: { type: "boolean" },
      secret: { type: "string" },
      inspect: { type: "string" },
      ...HELP_OPTION,
    },
    run: runTokenCommand,
  },
  validate: {
    usage: VALIDATE_USAGE,
    allowPositionals: false,
    options: { config: { type: "string" }, ...HELP_OPTION },
    run: runValidateCommand,
  },
  ingress: {
    usage: INGRESS_USAGE,
    allowPositionals: true,
    options: { config: { type: "string" }, ...HELP_OPTION },
    run: runIngressCommand,
  },
  connect: {
    usage: CONNECT_USAGE,
    allowPositionals: true,
    options: {
      backend: { type: "string" },
      listen: { type: "string" },
      stdio: { type: "boolean" },
      token: { type: "string" },
      ...HELP_OPTION,
    },
    run: runConnectCommand,
  },
};

/** Placeholders for flags' values in "needs a value" errors. */
const VALUE_NAMES: Record<string, string> = {
  ...Object.fromEntries(OPTIONS.filter((o) => o.flag && o.valueName).map((o) => [o.flag!, o.valueName!])),
  ttl: "<duration>",
  secret: "<secret>",
  inspect: "<token>",
  listen: "<host:port>",
};

/** Runs the `edge-relay` command line and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const secrets = collectSecrets(argv, process.env);
  try {
    return await dispatch(argv, secrets);
  } catch (error) {
    const usage = error instanceof UsageError || error instanceof ConfigError;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`edge-relay: ${redact(message, secrets)}\n`);
    return usage ? EXIT_USAGE : EXIT_FAILURE;
  }
}

async function dispatch(argv: string[], secrets: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    process.stderr.write(MAIN_USAGE);
    return EXIT_USAGE;
  }
  if (name === "--help" || name === "-h" || name === "help") {
    const topic = name === "help" ? args[0] : undefined;
    if (topic !== undefined && !Object.hasOwn(COMMANDS, topic)) throw unknownCommand(topic);
    process.stdout.write(topic === undefined ? MAIN_USAGE : COMMANDS[topic].usage);
    return EXIT_OK;
  }
  if (!Object.hasOwn(COMMANDS, name)) throw unknownCommand(name);
  const command = COMMANDS[name];
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(command.usage);
    return EXIT_OK;
  }
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: command.options, allowPositionals: command.allowPositionals, strict: true }) as typeof parsed;
  } catch (error) {
    throw new UsageError(describeParseError(error, name));
  }
  return command.run(parsed.values, parsed.positionals, secrets);
}

async function runAgentCommand(values: Values, _positionals: string[], secrets: string[]): Promise<number> {
  const { help: _help, ...raw } = values;
  const load = async () => {
    const config = await loadAgentConfig(raw as RawAgentOptions, process.env);
    secrets.push(config.token);
    await loadPlugins(config);
    return config;
  };
  const config = await load();
  const { runAgent } = await import("./supervisor.ts");
  // Reload errors are logged, never thrown: scrub any token they might hold like main() does.
  const reload = () =>
    load().catch((error: unknown) => Promise.reject(new Error(redact(error instanceof Error ? error.message : String(error), secrets))));
  return await runAgent(config, raw.config === undefined ? undefined : reload);
}

/** `edge-relay validate --config FILE`: checks the file and prints the rules it resolves to. */
async function runValidateCommand(values: Values, _positionals: string[], secrets: string[]): Promise<number> {
  const config = loadForInspection(values, "validate", secrets);
  const { describeRule } = await import("./ingress.ts");
  await loadPlugins(config);
  process.stdout.write(
    `${values.config}: ok, ${config.rules.length} rule${config.rules.length === 1 ? "" : "s"} for ${config.backends.length} backend${config.backends.length === 1 ? "" : "s"} (${config.backends.join(", ")}), relay ${config.relayUrl.href}, ${config.connections} tunnel${config.connections === 1 ? "" : "s"} each\n`,
  );
  for (const rule of config.rules) process.stdout.write(`  ${describeRule(rule)}\n`);
  return EXIT_OK;
}

/** `edge-relay ingress match --config FILE <backend> <path>`: which rule a request would take. */
async function runIngressCommand(values: Values, positionals: string[], secrets: string[]): Promise<number> {
  const [sub, backend, path, ...rest] = positionals;
  if (sub !== "match" || backend === undefined || path === undefined || rest.length) {
    throw new UsageError(
      "`edge-relay ingress` takes `match <backend> <path>`, like `edge-relay ingress match --config edge-relay.yaml shop /api/v1/x`.",
    );
  }
  if (!path.startsWith("/")) throw new UsageError(`the path "${path}" must start with "/", like /api/v1/x.`);
  const config = loadForInspection(values, "ingress match", secrets);
  const { describeRule, matchRule, noRuleResponse } = await import("./ingress.ts");
  const match = matchRule(config.rules, backend, path);
  if (!match) {
    const known = config.backends.includes(backend) ? "" : ` (the file serves ${config.backends.join(", ")})`;
    process.stdout.write(
      `no rule: the agent answers 404 no_ingress_rule${known}: ${JSON.parse(new TextDecoder().decode(noRuleResponse(backend, path).body)).message}\n`,
    );
    return EXIT_FAILURE;
  }
  process.stdout.write(`${describeRule(match.rule)}\n  the target sees ${match.path}\n`);
  return EXIT_OK;
}

/** `edge-relay hash-password`: the password from stdin, its PBKDF2 hash on stdout. */
async function runHashPasswordCommand(_values: Values, _positionals: string[], secrets: string[]): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const password = Buffer.concat(chunks).toString("utf8").split(/\r?\n/)[0];
  if (!password)
    throw new UsageError("hash-password read no password from standard input; pipe one in, like `edge-relay hash-password < pw.txt`.");
  secrets.push(password);
  const { hashPassword } = await import("../src/access/basic-auth.ts");
  process.stdout.write(`${await hashPassword(password)}\n`);
  return EXIT_OK;
}

/** Loads every rule's bridge plugin: a bad one is a config error before any tunnel opens (or a reload applies). */
async function loadPlugins(config: ReturnType<typeof buildAgentConfig>): Promise<void> {
  const { loadBridgePlugin } = await import("./bridge/load.ts");
  for (const rule of config.rules) if (rule.target.kind === "bridge") await loadBridgePlugin(rule.target.plugin);
}

/** The config of --config for a command that only reads it; it ends soon after, so it parses in place. */
function loadForInspection(values: Values, command: string, secrets: string[]): ReturnType<typeof buildAgentConfig> {
  if (typeof values.config !== "string") throw new UsageError(`\`edge-relay ${command}\` needs --config <file>.`);
  const config = buildAgentConfig({ config: values.config }, process.env);
  secrets.push(config.token);
  return config;
}

async function runTokenCommand(values: Values, positionals: string[], secrets: string[]): Promise<number> {
  if (typeof values.inspect === "string") return inspectToken(values.inspect, positionals.length > 0 || Object.keys(values).length > 1);
  if (positionals.length === 0)
    throw new UsageError(
      "`edge-relay token` needs the backend name, like `edge-relay token demo` (or several: `edge-relay token shop cache`).",
    );
  if (positionals.length > MAX_TOKEN_BACKENDS)
    throw new UsageError(`one token names at most ${MAX_TOKEN_BACKENDS} backends, but was given ${positionals.length}.`);
  const name = positionals.length === 1 ? positionals[0] : positionals;
  for (const one of positionals) {
    if (!isValidBackendName(one)) {
      throw new UsageError(
        `"${one}" is not a valid backend name; use 1 to 63 lowercase letters, digits or hyphens, starting and ending with a letter or digit.`,
      );
    }
  }
  let ttlSeconds: number | undefined;
  if (typeof values.ttl === "string") {
    try {
      ttlSeconds = parseDuration(values.ttl);
    } catch {}
    if (!ttlSeconds) {
      throw new UsageError(
        `--ttl "${values.ttl}": the lifetime must be a duration of at least 1s, like 30d, 12h, 15m, 45s or 90 (seconds).`,
      );
    }
  }
  let secret = typeof values.secret === "string" ? values.secret : process.env[SECRET_ENV];
  if (!secret && values.secret === undefined) {
    secret = secretFromDevVars();
    if (secret) {
      secrets.push(secret);
      process.stderr.write(`edge-relay: signing with ${SECRET_ENV} from ./${DEV_VARS} (the local relay's secret).\n`);
    }
  }
  if (!secret) {
    throw new UsageError(
      values.secret === undefined
        ? `there is no secret to sign with; set ${SECRET_ENV} to the relay's secret, or pass --secret (for the relay \`npm start\` runs, run this in the project folder, whose ./${DEV_VARS} holds it).`
        : "--secret is empty; pass the relay's secret, or set " + SECRET_ENV + " and leave out --secret.",
    );
  }
  const token = await mintToken(secret, name, { ttlSeconds, scope: values.access ? "access" : "agent" });
  process.stdout.write(`${token}\n`);
  process.stderr.write(`edge-relay: token id ${readTokenClaims(token)!.id} (note it to revoke this token alone; docs/tokens.md)\n`);
  return EXIT_OK;
}

/** `edge-relay token --inspect <token>`: the claims as JSON; the token itself is never echoed. */
function inspectToken(token: string, more: boolean): number {
  if (more) throw new UsageError("--inspect takes only the token: `edge-relay token --inspect <token>`.");
  const claims = readTokenClaims(token);
  if (!claims) throw new UsageError("--inspect: that is not a token in the er1.<payload>.<signature> form with valid claims.");
  process.stdout.write(`${JSON.stringify(describeClaims(claims))}\n`);
  return EXIT_OK;
}

/** Claims as an operator reads them: times in ISO 8601, a token without id shown as null. */
function describeClaims(claims: TokenClaims) {
  const iso = (seconds: number | undefined) => (seconds === undefined ? null : new Date(seconds * 1000).toISOString());
  const several = claims.backends ? { backends: tokenBackends(claims) } : {};
  return {
    backend: claims.backend,
    ...several,
    id: claims.id ?? null,
    scope: claims.scope,
    issuedAt: iso(claims.iat),
    expiresAt: iso(claims.exp),
  };
}

async function runConnectCommand(values: Values, positionals: string[], secrets: string[]): Promise<number> {
  if (positionals.length !== 1) {
    throw new UsageError(
      "`edge-relay connect` takes the relay's URL, like `edge-relay connect https://relay.example.com --backend db --listen 127.0.0.1:5432`.",
    );
  }
  const [relayText] = positionals;
  const relay = URL.canParse(relayText) ? new URL(relayText) : undefined;
  if (!relay || !["http:", "https:", "ws:", "wss:"].includes(relay.protocol)) {
    throw new UsageError(`the relay URL "${relayText}" must start with http://, https://, ws:// or wss://.`);
  }
  const backend = typeof values.backend === "string" ? values.backend : "";
  if (!isValidBackendName(backend)) {
    throw new UsageError(
      backend
        ? `--backend "${backend}" is not a valid backend name; use 1 to 63 lowercase letters, digits or hyphens.`
        : "--backend is required: name the backend to reach.",
    );
  }
  const token = typeof values.token === "string" ? values.token : process.env[ACCESS_TOKEN_ENV] || undefined;
  if (token) secrets.push(token);
  const { runConnect, connectStdio } = await import("./connect.ts");
  if (values.stdio) {
    if (values.listen !== undefined)
      throw new UsageError("--stdio and --listen cannot be combined: carry standard input and output, or listen on a port.");
    return connectStdio({ relay, backend, token });
  }
  const listen = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(typeof values.listen === "string" ? values.listen : "");
  const port = listen ? Number(listen[3]) : NaN;
  if (!listen || port > 65535) {
    throw new UsageError(
      `--listen ${values.listen === undefined ? "is required" : `"${values.listen}" is not host:port`}: pass the local address to listen on, like --listen 127.0.0.1:6380 (or use --stdio).`,
    );
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  return runConnect({ relay, backend, host: listen[1] ?? listen[2], port, token, signal: controller.signal });
}

/** RELAY_SECRET from ./.dev.vars in the working directory (dotenv lines), when the file has one. */
function secretFromDevVars(): string | undefined {
  let text: string;
  try {
    text = readFileSync(DEV_VARS, "utf8");
  } catch {
    return undefined;
  }
  const value = new RegExp(`^\\s*(?:export\\s+)?${SECRET_ENV}\\s*=\\s*(.*?)\\s*$`, "m").exec(text)?.[1];
  return value?.replace(/^(["'])(.*)\1$/, "$2") || undefined;
}

function unknownCommand(name: string): UsageError {
  if (name.startsWith("-")) {
    return new UsageError(
      `${name} is not a flag of edge-relay itself; put flags after a command, like \`edge-relay agent ${name} ...\`, or run \`edge-relay --help\`.`,
    );
  }
  return new UsageError(`"${name}" is not a command; run \`edge-relay --help\` to see the commands.`);
}

/** Turns a parseArgs error into a sentence of our own: Node's wording varies by version and may quote a value. */
function describeParseError(error: unknown, command: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : "";
  const flag = /'(-{1,2}[A-Za-z0-9][\w-]*)/.exec(message)?.[1];
  const help = `run \`edge-relay ${command} --help\` to see its flags`;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && flag) {
    return `${flag} is not a flag of \`edge-relay ${command}\`; ${help}.`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && flag) {
    if (/does not take an argument/.test(message)) return `${flag} is a switch and takes no value; write just ${flag}.`;
    const value = VALUE_NAMES[flag.replace(/^-+/, "")] ?? "<value>";
    return `${flag} needs a value, like ${flag} ${value} (to pass a value starting with "-", write ${flag}=-...).`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    return `\`edge-relay ${command}\` takes no positional arguments; pass every setting as a flag, like --to http://127.0.0.1:3000.`;
  }
  return `the arguments to \`edge-relay ${command}\` could not be parsed; ${help}.`;
}

/** The token and secret values this run may know, from flags and env, for scrubbing messages. */
function collectSecrets(argv: string[], env: Record<string, string | undefined>): string[] {
  const secrets = [env[TOKEN_ENV], env[SECRET_ENV]];
  argv.forEach((arg, i) => {
    for (const flag of ["--token", "--secret", "--inspect"]) {
      if (arg === flag) secrets.push(argv[i + 1]);
      else if (arg.startsWith(`${flag}=`)) secrets.push(arg.slice(flag.length + 1));
    }
  });
  return secrets.filter((value): value is string => typeof value === "string" && value.length > 0);
}

/**
 * Replaces known secrets in a message from code we do not control (the supervisor, Node).
 * Values shorter than 6 characters are left alone: scrubbing them would mangle ordinary words.
 */
function redact(message: string, secrets: string[]): string {
  return secrets.filter((secret) => secret.length >= 6).reduce((text, secret) => text.split(secret).join("[redacted]"), message);
}
