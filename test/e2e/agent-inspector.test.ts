// The request inspector (--inspect) in headless Chromium: live rows without a reload, headers
// (secrets masked) and pretty JSON bodies, replay, the filter; its JSON API; memory under load.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rawRequest } from "../helpers/client.ts";
import { chromiumTool, launchChromium, screenshotPath, type Chromium } from "../helpers/browser.ts";
import { startInspectedAgent, type InspectedAgent } from "../helpers/inspected-agent.ts";
import { until } from "../helpers/wait.ts";

const chromium = chromiumTool();
const BEARER = "inspector-bearer-secret-9a7c";
let setup: InspectedAgent;
let browser: Chromium;

beforeAll(async () => {
  setup = await startInspectedAgent();
  if (!chromium.skip) browser = await launchChromium(chromium.path!);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await setup?.stop();
});

interface Summary {
  id: string;
  method: string;
  path: string;
  status: number | null;
  state: string;
  replayOf: string | null;
  tunnel: string;
  target: string | null;
}

async function list(): Promise<Summary[]> {
  return ((await (await fetch(`${setup.inspector}/api/requests`)).json()) as { requests: Summary[] }).requests;
}

describe.skipIf(!!chromium.skip)("the inspector page", () => {
  it("shows a request made after the page loaded, without a reload, with its headers and JSON bodies; replays it; filters", async () => {
    const { page } = await browser.page();
    await page.goto(`${setup.inspector}/`);
    await page.waitForSelector("body[data-live='1']", { timeout: 15_000 });
    const loads = [] as string[];
    page.on("load", () => loads.push("load"));

    const res = await setup.send("/api/orders", {
      method: "POST",
      headers: [
        ["content-type", "application/json"],
        ["authorization", `Bearer ${BEARER}`],
        ["x-request-note", "from the test"],
      ],
      body: JSON.stringify({ item: "widget", qty: 3 }),
    });
    expect(res.status).toBe(200);

    await page.locator("tr.req", { hasText: "/api/orders" }).waitFor({ timeout: 15_000 });
    const row = page.locator(`tr.req[data-id="${await page.locator("tr.req", { hasText: "/api/orders" }).getAttribute("data-id")}"]`);
    await row.locator("td", { hasText: "200" }).waitFor({ timeout: 15_000 });
    await row.click();
    const requestHeaders = page.locator("#request-headers");
    await requestHeaders.waitFor();
    const headersText = await requestHeaders.textContent();
    expect(headersText).toContain("x-request-note");
    expect(headersText).toContain("from the test");
    expect(headersText).toContain("Bearer ••••••");
    expect(headersText).not.toContain(BEARER);
    expect(await page.locator("#request-body").textContent()).toBe(JSON.stringify({ item: "widget", qty: 3 }, null, 2));
    expect(await page.locator("#response-body").textContent()).toBe(
      JSON.stringify({ received: { item: "widget", qty: 3 }, id: 1042, status: "accepted" }, null, 2),
    );
    expect(await page.locator("#response-headers").textContent()).toContain("session=••••••");
    expect(await page.content()).not.toContain(BEARER);

    // Replay: a second row marked as a replay, and a second hit at the backend.
    expect(setup.backend.hits.get("/api/orders")).toBe(1);
    await page.locator("#replay").click();
    await page.locator("tr.req .tag", { hasText: "replay of" }).waitFor({ timeout: 15_000 });
    await until(() => setup.backend.hits.get("/api/orders") === 2, "the replay at the backend");
    const entries = (await list()).filter((r) => r.path === "/api/orders");
    expect(entries).toHaveLength(2);
    const [replayed, original] = entries;
    expect(replayed.replayOf).toBe(original.id);
    expect(replayed.tunnel).toBe("replay");
    await until(async () => (await list()).find((r) => r.id === replayed.id)?.status === 200, "the replay answered");

    // The filter hides rows that do not match.
    expect((await setup.send("/status?code=404")).status).toBe(404);
    const other = page.locator("tr.req", { hasText: "/status?code=404" });
    await other.waitFor({ timeout: 15_000 });
    await page.fill("#filter", "orders");
    await other.waitFor({ state: "hidden" });
    expect(await page.locator("tr.req", { hasText: "/api/orders" }).first().isVisible()).toBe(true);
    expect(await page.locator("tr.req:visible").count()).toBe(2);
    await page.fill("#filter", "404");
    await other.waitFor({ state: "visible" });
    expect(await page.locator("tr.req:visible").count()).toBe(1);
    await page.fill("#filter", "");
    await row.click();
    await page.locator("#request-headers").waitFor();
    await page.screenshot({ path: await screenshotPath("agent-inspector"), fullPage: true });
    expect(loads).toEqual([]);

    // Clear empties the list on the page and in the API.
    await page.locator("#clear").click();
    await page.locator("tr.req").first().waitFor({ state: "detached", timeout: 15_000 });
    expect(await list()).toEqual([]);
  });
});

describe("the inspector API", () => {
  it("lists, details and replays requests; refuses calls that change things without its header, and other hosts", async () => {
    const res = await setup.send("/echo?via=api", { method: "PUT", body: "plain text body", headers: [["cookie", "a=1; b=2"]] });
    expect(res.status).toBe(200);
    await until(async () => (await list()).some((r) => r.path === "/echo?via=api" && r.state === "done"), "the request listed");
    const entry = (await list()).find((r) => r.path === "/echo?via=api")!;
    expect(entry).toMatchObject({ method: "PUT", status: 200, target: setup.backend.url });
    const detail = await (await fetch(`${setup.inspector}/api/requests/${entry.id}`)).json();
    expect(detail.request.body).toEqual({ kind: "text", size: 15, truncated: false, text: "plain text body" });
    expect(detail.request.headers).toContainEqual(["cookie", "a=••••••; b=••••••"]);
    expect(detail.response.body.kind).toBe("json");

    expect((await fetch(`${setup.inspector}/api/requests/${entry.id}/replay`, { method: "POST" })).status).toBe(403);
    expect((await fetch(`${setup.inspector}/api/requests`, { method: "DELETE" })).status).toBe(403);
    const rebound = await rawRequest(setup.inspector, { path: "/api/requests", headers: [["host", "evil.example:80"]] });
    expect(rebound.status).toBe(403);
    const replay = await fetch(`${setup.inspector}/api/requests/${entry.id}/replay`, {
      method: "POST",
      headers: { "x-edge-relay-inspector": "1" },
    });
    expect(replay.status).toBe(200);
    const result = (await replay.json()) as { id: string; status: number };
    expect(result.status).toBe(200);
    const again = await (await fetch(`${setup.inspector}/api/requests/${result.id}`)).json();
    expect(again).toMatchObject({ replayOf: entry.id, method: "PUT", path: "/echo?via=api" });
    expect(again.request.body.text).toBe("plain text body");
    expect((await fetch(`${setup.inspector}/api/requests/zzzz`)).status).toBe(404);
  });

  it("shows a binary body as its size, and keeps only the first 64 KiB of a large one", async () => {
    expect((await setup.send("/bytes?n=100000")).status).toBe(200);
    await until(async () => (await list()).some((r) => r.path === "/bytes?n=100000" && r.state === "done"), "listed");
    const entry = (await list()).find((r) => r.path === "/bytes?n=100000")!;
    const detail = await (await fetch(`${setup.inspector}/api/requests/${entry.id}`)).json();
    expect(detail.response.body).toEqual({ kind: "binary", size: 100000, truncated: true, contentType: "application/octet-stream" });
  });
});
