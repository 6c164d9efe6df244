// The relay dashboard in headless Chromium: sign in through the form, two backends listed with a
// tunnel's agent version, drain moves an agent to new tunnels; no secret in the page's HTML or
// script; a forged, foreign or expired cookie is refused. Real relay, agents and backend.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signSession } from "../../src/admin/session.ts";
import { type Chromium, chromiumTool, launchChromium, screenshotPath } from "../helpers/browser.ts";
import { type DashboardScene, SCENE_BACKENDS, signIn, startDashboardScene, waitForRates } from "../helpers/dashboard.ts";
import { until } from "../helpers/wait.ts";

const chromium = chromiumTool();
let scene: DashboardScene;
let browser: Chromium;

beforeAll(async () => {
  if (!chromium.path) return;
  [scene, browser] = await Promise.all([startDashboardScene(), launchChromium(chromium.path)]);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await scene?.stop();
});

/** The tunnel ids the page shows for `backend`. */
function shownTunnels(page: import("playwright-core").Page, backend: string): Promise<string[]> {
  return page.$$eval(`section[data-backend="${backend}"] tr[data-tunnel-id]`, (rows) => rows.map((r) => r.getAttribute("data-tunnel-id")!));
}

describe.skipIf(!chromium.path)("relay dashboard", () => {
  it("signs in, lists both backends with a tunnel's agent version, and drain moves the agent to new tunnels", async () => {
    const { page, context } = await browser.page();
    await signIn(page, scene);
    await scene.traffic(20);
    await page.waitForSelector(`section[data-backend="${SCENE_BACKENDS.web}"]`);
    const listed = await page.$$eval("section[data-backend]", (s) => s.map((e) => e.getAttribute("data-backend")));
    expect(listed).toEqual([SCENE_BACKENDS.api, SCENE_BACKENDS.web]);
    const versions = await page.$$eval(`section[data-backend="${SCENE_BACKENDS.api}"] td.agent-version`, (c) =>
      c.map((e) => e.textContent),
    );
    expect(versions).toHaveLength(2);
    for (const v of versions) expect(v).toMatch(/^\d+\.\d+\.\d+/);
    // The session cookie is HttpOnly: the page's script cannot read it.
    expect(await page.evaluate(() => document.cookie)).toBe("");
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "relay_dashboard", httpOnly: true, sameSite: "Strict", path: "/_relay/dashboard" });
    expect(cookie.value).not.toContain(scene.admin);

    // Rates show once two polls have counted the traffic in between.
    await waitForRates(page, scene);
    await page.screenshot({ path: await screenshotPath("relay-dashboard"), fullPage: true });

    const before = await shownTunnels(page, SCENE_BACKENDS.api);
    expect(before).toHaveLength(2);
    const webBefore = await shownTunnels(page, SCENE_BACKENDS.web);
    const from = scene.agents.api.lines.length;
    await page.click(`button[data-drain="${SCENE_BACKENDS.api}"]`);
    await page.waitForFunction(
      (name) => document.getElementById("notice")?.textContent?.startsWith(`Draining 2 tunnels of ${name}`),
      SCENE_BACKENDS.api,
    );
    // The agent replaces both tunnels; the page shows the two new ones.
    await scene.agents.api.waitForLine(/tunnels=2\/2/, 20_000, from);
    await until(
      async () => {
        const now = await shownTunnels(page, SCENE_BACKENDS.api);
        return now.length === 2 && now.every((id) => !before.includes(id));
      },
      "two new tunnels on the page",
      20_000,
      250,
    );
    expect(await shownTunnels(page, SCENE_BACKENDS.web)).toEqual(webBefore);
    await context.close();
  }, 120_000);

  it("never sends the admin token or RELAY_SECRET in the page's HTML or script", async () => {
    const { page, context } = await browser.page();
    const bodies: string[] = [];
    page.on("response", async (r) => {
      if (/\/_relay\/dashboard(\/app\.js)?$/.test(new URL(r.url()).pathname)) bodies.push(await r.text().catch(() => ""));
    });
    await signIn(page, scene);
    bodies.push(await page.content());
    const script = await (await fetch(`${scene.dashboardUrl}/app.js`)).text();
    bodies.push(script);
    expect(script).toContain("/_relay/dashboard/api/backends");
    expect(bodies.length).toBeGreaterThanOrEqual(3);
    for (const body of bodies) {
      expect(body).not.toContain(scene.admin);
      expect(body).not.toContain(scene.relay.secret);
    }
    await context.close();
  }, 60_000);

  it("refuses a forged, foreign or expired cookie and a wrong token", async () => {
    const api = `${scene.dashboardUrl}/api/backends`;
    const withCookie = (value: string) => fetch(api, { headers: { cookie: `relay_dashboard=${value}` } });
    const good = await signSession(scene.relay.secret, scene.admin);
    // The test signs cookies as the relay does: a good one passes, so each refusal below is the cookie's fault.
    expect((await withCookie(good)).status).toBe(200);
    const forged = [
      "",
      "admin",
      scene.admin,
      good.replace(/.$/, (c) => (c === "0" ? "1" : "0")),
      good.replace(/^v1\.\d+/, `v1.${Math.floor(Date.now() / 1000) + 999_999}`),
      await signSession("another-relay-secret", scene.admin),
      await signSession(scene.relay.secret, `${scene.admin}x`),
      await signSession(scene.relay.secret, scene.admin, Math.floor(Date.now() / 1000) - 13 * 3600),
    ];
    for (const value of forged) {
      const res = await withCookie(value);
      expect(res.status, value).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe("admin_unauthorized");
    }
    const page = await fetch(scene.dashboardUrl, { headers: { cookie: `relay_dashboard=${forged[3]}` } });
    expect(await page.text()).toContain('name="token"');
    // The drain needs the session and the page's header.
    const drain = `${api}/${SCENE_BACKENDS.web}/drain`;
    expect(
      (await fetch(drain, { method: "POST", headers: { cookie: `relay_dashboard=${forged[3]}`, "x-relay-dashboard": "1" } })).status,
    ).toBe(401);
    expect((await fetch(drain, { method: "POST", headers: { cookie: `relay_dashboard=${good}` } })).status).toBe(401);
    const wrong = await fetch(`${scene.dashboardUrl}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: "nope" }),
      redirect: "manual",
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("set-cookie")).toBeNull();
    const right = await fetch(`${scene.dashboardUrl}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: scene.admin }),
      redirect: "manual",
    });
    expect(right.status).toBe(303);
    expect(right.headers.get("set-cookie")).toMatch(
      /^relay_dashboard=v1\.[^;]+; Path=\/_relay\/dashboard; Max-Age=43200; HttpOnly; SameSite=Strict$/,
    );
  }, 60_000);
});
