// The relay dashboard's scene, shared by its browser test and scripts/screenshot-dashboard.ts:
// a real relay with the admin API on, a real backend and two backends' agents, and Chromium
// signed in through the page's own form.
import { randomBytes } from "node:crypto";
import type { Page } from "playwright-core";
import { agentArgs, startAgent, type AgentProcess } from "./agent.ts";
import { startBackend, type Backend } from "./backend.ts";
import { startRelay, type RelayHandle } from "./relay.ts";
import { until } from "./wait.ts";

/** The two backends the scene serves: one over two tunnels, one over one. */
export const SCENE_BACKENDS = { api: "shop-api", web: "shop-web" } as const;

export interface DashboardScene {
  relay: RelayHandle;
  backend: Backend;
  admin: string;
  agents: Record<keyof typeof SCENE_BACKENDS, AgentProcess>;
  /** http://127.0.0.1:<port>/_relay/dashboard */
  dashboardUrl: string;
  /** Sends `n` requests to each backend, so the page has rates to show. */
  traffic(n: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the relay, the backend and both agents, with tunnels up. */
export async function startDashboardScene(): Promise<DashboardScene> {
  const admin = `admin-${randomBytes(16).toString("hex")}`;
  const [relay, backend] = await Promise.all([startRelay({ vars: { RELAY_ADMIN_TOKEN: admin }, snapshot: true }), startBackend()]);
  backend.route("/item", (_req, res) => void res.end("item"));
  const started: AgentProcess[] = [];
  const agent = async (name: string, connections: number) => {
    const a = await startAgent(agentArgs(relay.url, name, await relay.token(name), backend.url, ["--connections", String(connections)]), {
      waitUp: connections,
    });
    started.push(a);
    return a;
  };
  try {
    const [api, web] = await Promise.all([agent(SCENE_BACKENDS.api, 2), agent(SCENE_BACKENDS.web, 1)]);
    return {
      relay,
      backend,
      admin,
      agents: { api, web },
      dashboardUrl: `${relay.url}/_relay/dashboard`,
      async traffic(n) {
        for (const name of Object.values(SCENE_BACKENDS)) {
          await Promise.all(Array.from({ length: n }, () => fetch(`${relay.url}/r/${name}/item`).then((r) => r.arrayBuffer())));
        }
      },
      async stop() {
        await Promise.all(started.map((a) => a.stop()));
        await Promise.all([relay.stop(), backend.stop()]);
      },
    };
  } catch (error) {
    await Promise.all(started.map((a) => a.stop()));
    await Promise.all([relay.stop(), backend.stop()]);
    throw error;
  }
}

/** Signs `page` in through the dashboard's form and waits for the backends to show. */
export async function signIn(page: Page, scene: DashboardScene): Promise<void> {
  await page.goto(scene.dashboardUrl);
  await page.fill("#token", scene.admin);
  await Promise.all([page.waitForURL(scene.dashboardUrl), page.click("#sign-in")]);
  await page.waitForSelector(`section[data-backend="${SCENE_BACKENDS.api}"]`, { timeout: 15_000 });
}

/** Sends traffic until the page shows a request rate above zero for the first backend. */
export async function waitForRates(page: Page, scene: DashboardScene): Promise<void> {
  await until(
    async () => {
      await scene.traffic(5);
      const text = await page.textContent(`section[data-backend="${SCENE_BACKENDS.api}"] [data-rate="requests"]`);
      return Number.parseFloat(text ?? "") > 0;
    },
    "a request rate above zero",
    20_000,
    500,
  );
}
