// `npm run serve`: the relay on bare `workerd serve` (no wrangler dev proxy), Durable Object
// storage on disk, optional TLS; the way to run edge-relay on a server of your own (docs/self-hosting.md).
import { existsSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { localSecret, readDevVars } from "./dev-vars.ts";
import { portTaken } from "./port.ts";
import { startWorkerd, type Workerd } from "./workerd.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const DEFAULT_ENV_FILE = resolve(ROOT, ".dev.vars");

const HELP = `npm run serve -- [options]

Runs the relay Worker on bare workerd, built from wrangler.toml as \`wrangler deploy\` builds it.

  --ip <address>      address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every interface)
  --port <n>          port (default $PORT or 8787; 0 picks a free one)
  --tls-cert <file>   serve HTTPS with this PEM certificate chain (needs --tls-key)
  --tls-key <file>    the certificate's PEM private key
  --state <dir>       Durable Object storage, kept across restarts (default .wrangler/serve-state)
  --env-file <file>   KEY=VALUE secrets and vars (default .dev.vars; created with a random
                      RELAY_SECRET when neither it nor the environment has one)
  --var <NAME=VALUE>  a var for this run (repeatable); wins over the environment and the file

Vars and secrets (RELAY_SECRET, RELAY_DOMAIN, RELAY_ADMIN_TOKEN, ...): wrangler.toml [vars], then
the env file, then environment variables named RELAY_*, then --var; the later wins.
`;

export interface ServeOptions {
  ip: string;
  port: number;
  tls?: { certFile: string; keyFile: string };
  state: string;
  envFile: string;
  vars: Record<string, string>;
}

/** Parses the command line; throws an Error whose message names the flag. */
export function parseServeOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions | "help" {
  const o: ServeOptions = {
    ip: "127.0.0.1",
    port: Number(env.PORT ?? 8787),
    state: resolve(ROOT, ".wrangler/serve-state"),
    envFile: DEFAULT_ENV_FILE,
    vars: {},
  };
  let cert: string | undefined;
  let key: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value.`);
      return v;
    };
    switch (flag) {
      case "--help":
      case "-h":
        return "help";
      case "--ip": {
        const ip = value().replace(/^\[(.*)\]$/, "$1");
        if (!isIP(ip) && ip !== "*") throw new Error(`--ip ${ip}: not an IP address.`);
        o.ip = ip;
        break;
      }
      case "--port": {
        const v = value();
        const port = Number(v);
        if (!/^\d+$/.test(v) || port > 65535) throw new Error(`--port ${v}: not a port number (0-65535).`);
        o.port = port;
        break;
      }
      case "--tls-cert":
        cert = value();
        break;
      case "--tls-key":
        key = value();
        break;
      case "--state":
        o.state = resolve(value());
        break;
      case "--env-file":
        o.envFile = resolve(value());
        if (!existsSync(o.envFile)) throw new Error(`--env-file ${o.envFile}: no such file.`);
        break;
      case "--var": {
        const v = value();
        const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(v);
        if (!m) throw new Error(`--var ${v}: expected NAME=VALUE.`);
        o.vars[m[1]] = m[2];
        break;
      }
      default:
        throw new Error(`unknown option ${flag}; see npm run serve -- --help.`);
    }
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) throw new Error(`PORT=${env.PORT}: not a port number (0-65535).`);
  if ((cert === undefined) !== (key === undefined)) throw new Error("--tls-cert and --tls-key go together: give both, or neither.");
  if (cert && key) {
    for (const [flag, file] of [
      ["--tls-cert", cert],
      ["--tls-key", key],
    ])
      if (!existsSync(file)) throw new Error(`${flag} ${resolve(file)}: no such file.`);
    o.tls = { certFile: cert, keyFile: key };
  }
  return o;
}

/** The bindings for a run: [vars], env file, RELAY_* environment variables, --var, later winning. */
export function serveBindings(fileVars: Record<string, string>, o: ServeOptions, env: NodeJS.ProcessEnv): Record<string, string> {
  const fromEnv = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[0].startsWith("RELAY_") && e[1] !== undefined),
  );
  return { ...fileVars, ...readDevVars(o.envFile), ...fromEnv, ...o.vars };
}

/** The banner printed once the relay listens, with the URLs that reach a backend (as npm start prints them). */
function banner(o: ServeOptions, port: number, version: string, domain: string | undefined): string {
  const scheme = o.tls ? "https" : "http";
  const wildcard = o.ip === "*" || o.ip === "0.0.0.0" || o.ip === "::";
  const shown = wildcard ? "127.0.0.1" : o.ip.includes(":") ? `[${o.ip}]` : o.ip;
  const defaultPort = port === (o.tls ? 443 : 80);
  const relay = `${scheme}://${shown}${defaultPort ? "" : `:${port}`}`;
  const hostForm = domain ? `${scheme}://<name>.${domain}${defaultPort ? "" : `:${port}`}/` : undefined;
  return `
  edge-relay is serving on bare workerd (${version}).
    relay              ${relay}   (health: ${relay}/_relay/health)${wildcard ? "   listening on every interface" : ""}
    state              ${o.state}   (Durable Object storage, kept across restarts)
    reach backend <name> at
                       ${relay}/r/<name>/${hostForm ? `\n                  or   ${hostForm}` : ""}
                  or   curl -H 'X-Relay-Backend: <name>' ${relay}/
    agent              RELAY_SECRET=... npx edge-relay token <name>, then
                       npx edge-relay agent --relay ${relay} --backend <name> --to http://127.0.0.1:3000
  Ctrl-C stops the relay.
`;
}

async function main(): Promise<void> {
  let o: ServeOptions | "help";
  try {
    o = parseServeOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`npm run serve: ${(err as Error).message}`);
    process.exit(2);
  }
  if (o === "help") {
    process.stdout.write(HELP);
    return;
  }
  const host = o.ip === "*" ? "0.0.0.0" : o.ip;
  const busy = o.port === 0 ? undefined : await portTaken(o.port, host, "npm run serve");
  if (busy) {
    console.error(`npm run serve: port ${o.port} on ${host} is taken: ${busy}; stop it, or pass --port ${o.port + 1}.`);
    process.exit(1);
  }
  const config = resolve(ROOT, "wrangler.toml");
  if (!process.env.RELAY_SECRET && !o.vars.RELAY_SECRET && !readDevVars(o.envFile).RELAY_SECRET) {
    if (o.envFile !== DEFAULT_ENV_FILE) {
      console.error(`npm run serve: RELAY_SECRET is not set: put it in ${o.envFile} or in the environment.`);
      process.exit(2);
    }
    localSecret(o.envFile);
  }
  const address = `${o.ip.includes(":") ? `[${o.ip}]` : o.ip}:${o.port}`;
  let workerd: Workerd;
  try {
    workerd = await startWorkerd({
      config,
      address,
      tls: o.tls,
      storage: { dir: o.state },
      bindings: (vars) => serveBindings(vars, o, process.env),
    });
  } catch (err) {
    console.error(
      `npm run serve: the relay did not start on ${address}: ${(err as Error).message} (is the port taken? --port or PORT=... picks another)`,
    );
    process.exit(1);
  }
  console.log(banner(o, workerd.port, workerd.version, workerd.bindings.RELAY_DOMAIN));
  let stopping = false;
  const stop = () => {
    stopping = true;
    void workerd.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const code = await workerd.exited;
  if (stopping) return;
  console.error(`npm run serve: workerd exited with code ${code}`);
  process.exit(code || 1);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
