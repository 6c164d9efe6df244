// `npm start`: the relay locally (wrangler dev, workerd), a demo backend and an agent for it,
// then the URLs that reach the backend. Ctrl-C stops everything.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { mintToken } from "../src/auth.ts";
import { buildAgent } from "./build-agent.ts";
import { localSecret } from "./dev-vars.ts";
import { OFFLINE_ENV } from "./offline-env.ts";
import { portTaken } from "./port.ts";
import { startDemoBackend } from "./demo-backend.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PORT = Number(process.env.PORT ?? 8787);
const NAME = "demo";
const DEV_VARS = `${ROOT}.dev.vars`;

async function waitForHealth(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/_relay/health`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`the relay did not answer ${url}/_relay/health within ${ms / 1000} s (is port ${PORT} free? set PORT=...)`);
}

const busy = await portTaken(PORT);
if (busy) {
  console.error(`npm start: port ${PORT} on 127.0.0.1 is taken: ${busy}; stop it, or run PORT=${PORT + 1} npm start.`);
  process.exit(1);
}

const children: ChildProcess[] = [];
const env = { ...process.env, ...OFFLINE_ENV };

const secret = localSecret(DEV_VARS);
const relayUrl = `http://127.0.0.1:${PORT}`;
const wrangler = spawn(
  process.execPath,
  [`${ROOT}node_modules/wrangler/bin/wrangler.js`, "dev", "--ip", "127.0.0.1", "--port", String(PORT)],
  {
    cwd: ROOT,
    env,
    stdio: ["ignore", "inherit", "inherit"],
  },
);
children.push(wrangler);
const backend = await startDemoBackend();
await waitForHealth(relayUrl, 60_000);

const token = await mintToken(secret, NAME);
// The agent as the package ships it, bundled from the sources now (a second), so edits to agent/
// show at the next start, and the demo runs the program users install.
const agent = spawn(process.execPath, [await buildAgent(ROOT), "agent", "--relay", relayUrl, "--backend", NAME, "--to", backend.url], {
  env: { ...env, EDGE_RELAY_TOKEN: token },
  stdio: ["ignore", "pipe", "inherit"],
});
children.push(agent);
agent.stdout!.setEncoding("utf8");
let announced = false;
agent.stdout!.on("data", (text: string) => {
  process.stdout.write(text);
  if (!announced && /tunnel \d+ up/.test(text)) {
    announced = true;
    console.log(`
  edge-relay is running locally.
    relay              ${relayUrl}   (health: ${relayUrl}/_relay/health)
    demo backend       ${backend.url}
    reach it at        ${relayUrl}/r/${NAME}/
                  or   http://${NAME}.localhost:${PORT}/
                  or   curl -H 'X-Relay-Backend: ${NAME}' ${relayUrl}/
  Ctrl-C stops the relay, the agent and the backend.
`);
  }
});

const stop = () => {
  for (const c of children) c.kill("SIGTERM");
  backend.close();
  setTimeout(() => process.exit(0), 1500).unref();
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
wrangler.on("exit", (code) => {
  if (code) console.error(`wrangler dev exited with code ${code}`);
  stop();
});
