// The `oidc` access policy with a real OpenID provider (oidc-provider on loopback, its own login
// and consent pages) and headless Chromium: redirect, provider login form, callback on the
// backend's own host, session cookie, backend reached, a WebSocket opened from the page,
// logout and back to the login form; claims rules; non-browser clients get 401.

import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startConfigAgent, type AgentProcess } from "../helpers/agent.ts";
import { chromiumTool, launchChromium, screenshotPath, type Chromium } from "../helpers/browser.ts";
import { rawRequest } from "../helpers/client.ts";
import { quietConsole } from "../helpers/console.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";

const chromium = chromiumTool();
const FIXTURE_WARNING = /^oidc-provider WARNING: (Unsupported runtime\.|a quick start development-only|quick start development-only)/;

let relay: RelayHandle;
let op: http.Server;
let issuer = "";
let pages: http.Server;
let wsBackend: WsBackend;
let agent: AgentProcess;
let browser: Chromium;
const host = (backend: string) => `http://${backend}.localhost:${relay.port}`;
/** A request from Node (which does not resolve *.localhost) to a backend's own host. */
const nodeGet = (backend: string, path: string, headers: Array<[string, string]> = []) =>
  rawRequest(relay.url, { path, headers: [["host", `${backend}.localhost:${relay.port}`], ...headers] });

/** The backend's page: who the relay says came, and a WebSocket echo opened from the page. */
const PAGE = (user: string) => `<!doctype html><title>dashboard</title>
<h1 id="who">Hello ${user}</h1><p id="ws">connecting</p>
<script>
  const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws/echo");
  ws.onopen = () => ws.send("ping from the page");
  ws.onmessage = (e) => { document.getElementById("ws").textContent = "echo: " + e.data; };
  ws.onerror = () => { document.getElementById("ws").textContent = "websocket failed"; };
</script>`;

beforeAll(async () => {
  if (!chromium.path) return;
  relay = await startRelay({ snapshot: true });
  op = http.createServer();
  await new Promise<void>((resolve) => op.listen(0, "127.0.0.1", resolve));
  issuer = `http://127.0.0.1:${(op.address() as AddressInfo).port}`;
  // The provider is a test fixture: it warns, by design, about its development-only defaults
  // (memory adapter, signing keys, login pages) and about Node 20, which it does not list but
  // serves these tests on. Only those lines are dropped; anything else it says still prints.
  quietConsole("warn", FIXTURE_WARNING);
  const { default: Provider } = await import("oidc-provider");
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: "edge",
        client_secret: "edge-client-secret",
        redirect_uris: ["acc-oidc", "acc-oidc-admins", "acc-oidc-part"].map((b) => `${host(b)}/_relay/oidc/callback`),
        response_types: ["code"],
        grant_types: ["authorization_code"],
      },
    ],
    async findAccount(_ctx: unknown, id: string) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.com`, email_verified: true, groups: id === "boss" ? ["admins"] : ["staff"] };
        },
      };
    },
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"] },
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ["test-cookie-key"] },
    // Lifetimes of its own (seconds), so the provider uses no defaults it would warn about.
    ttl: { AccessToken: 600, AuthorizationCode: 60, Grant: 3600, IdToken: 600, Interaction: 600, Session: 3600 },
  });
  op.on("request", provider.callback());
  pages = http.createServer((req, res) => {
    res.setHeader("content-type", "text/html; charset=utf-8");
    res.end(PAGE(String(req.headers["x-relay-user"] ?? "nobody")));
  });
  await new Promise<void>((resolve) => pages.listen(0, "127.0.0.1", resolve));
  const pagesUrl = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  wsBackend = await startWsBackend();
  const oidc = `{ issuer: "${issuer}", clientId: edge, clientSecret: edge-client-secret }`;
  agent = await startConfigAgent(
    relay.secret,
    `relay: ${relay.url}
ingress:
  - backend: acc-oidc
    path: /ws
    stripPrefix: true
    service: ${wsBackend.url}
    access: [ { oidc: ${oidc} } ]
  - backend: acc-oidc
    service: ${pagesUrl}
    access: [ { oidc: ${oidc} } ]
  - backend: acc-oidc-admins
    service: ${pagesUrl}
    access:
      - oidc: { issuer: "${issuer}", clientId: edge, clientSecret: edge-client-secret, scopes: [email, groups], allowedGroups: [admins] }
  - backend: acc-oidc-part
    path: /admin
    service: ${pagesUrl}
    access: [ { oidc: ${oidc} } ]
  - backend: acc-oidc-part
    service: ${pagesUrl}
`,
    ["acc-oidc", "acc-oidc-admins", "acc-oidc-part"],
  );
  browser = await launchChromium(chromium.path!);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  await wsBackend?.stop();
  await new Promise((resolve) => pages?.close(resolve));
  op?.closeAllConnections();
  await new Promise((resolve) => op?.close(resolve));
  await relay?.stop();
});

describe.skipIf(!chromium.path)(`oidc login${chromium.skip ? ` (${chromium.skip})` : ""}`, () => {
  it("logs a browser in through the provider, reaches the backend and its WebSocket, logs out and is asked again", async () => {
    const { context, page } = await browser.page();
    await page.goto(`${host("acc-oidc")}/reports?month=5`);
    expect(page.url()).toContain(`${issuer}/interaction/`);
    await page.fill('input[name="login"]', "ann");
    await page.fill('input[name="password"]', "anything");
    await page.click("button[type=submit]");
    await page.waitForURL((u) => u.href.startsWith(host("acc-oidc")) || u.href.includes("/interaction/"), { timeout: 20_000 });
    if (page.url().includes("/interaction/")) await page.click("button[type=submit]");
    await page.waitForURL(`${host("acc-oidc")}/reports?month=5`, { timeout: 20_000 });
    expect(await page.textContent("#who")).toBe("Hello ann");
    await page.waitForFunction(() => document.getElementById("ws")?.textContent?.startsWith("echo:"), undefined, { timeout: 20_000 });
    expect(await page.textContent("#ws")).toBe("echo: ping from the page");
    await page.screenshot({ path: await screenshotPath("oidc-logged-in") });

    const cookies = await context.cookies(host("acc-oidc"));
    const session = cookies.find((c) => c.name === "__edge_relay_session");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Lax", secure: false, path: "/" });

    // The session is the browser's: the same cookie works for a script, a tampered one does not.
    const withCookie = await nodeGet("acc-oidc", "/", [["cookie", `__edge_relay_session=${session!.value}`]]);
    expect(withCookie.status).toBe(200);
    expect(withCookie.body.toString()).toContain("Hello ann");
    const tampered = `${session!.value.slice(0, 10)}${session!.value[10] === "A" ? "B" : "A"}${session!.value.slice(11)}`;
    expect((await nodeGet("acc-oidc", "/", [["cookie", `__edge_relay_session=${tampered}`]])).status).toBe(401);

    await page.goto(`${host("acc-oidc")}/_relay/oidc/logout`);
    expect(await page.textContent("body")).toContain("You are signed out");
    expect((await context.cookies(host("acc-oidc"))).some((c) => c.name === "__edge_relay_session")).toBe(false);
    await page.goto(`${host("acc-oidc")}/`);
    expect(page.url()).toContain(`${issuer}/interaction/`);
    expect(await page.locator('input[name="login"]').count()).toBe(1);
    await context.close();
  });

  it("answers a non-browser client 401 auth_required instead of a redirect", async () => {
    const res = await nodeGet("acc-oidc", "/reports", [["accept", "application/json"]]);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body.toString()).error).toBe("auth_required");
    const browser = await nodeGet("acc-oidc", "/reports", [["accept", "text/html"]]);
    expect(browser.status).toBe(302);
  });

  it("refuses a callback it did not start", async () => {
    const res = await nodeGet("acc-oidc", "/_relay/oidc/callback?code=x&state=y");
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body.toString()).error).toBe("auth_invalid");
  });

  /** Logs `user` in at `backend` from a fresh browser context, starting at `path`; the page's text at the end. */
  const login = async (backend: string, user: string, path = "/") => {
    const { context, page } = await browser.page();
    await page.goto(`${host(backend)}${path}`);
    await page.fill('input[name="login"]', user);
    await page.fill('input[name="password"]', "anything");
    await page.click("button[type=submit]");
    await page.waitForURL((u) => u.href.startsWith(host(backend)) || u.href.includes("/interaction/"), { timeout: 20_000 });
    if (page.url().includes("/interaction/")) await page.click("button[type=submit]");
    await page.waitForURL((u) => u.href.startsWith(host(backend)), { timeout: 20_000 });
    const text = `${new URL(page.url()).pathname} ${(await page.textContent("body")) ?? ""}`;
    await context.close();
    return text;
  };

  it("admits only accounts its claims rules allow", async () => {
    expect(await login("acc-oidc-admins", "ann")).toContain('"error":"auth_invalid"');
    expect(await login("acc-oidc-admins", "boss")).toContain("Hello boss");
  });

  it("handles the callback of a login on one rule whatever rule the callback path falls under", async () => {
    expect(await login("acc-oidc-part", "ann", "/admin/users")).toMatch(/^\/admin\/users Hello ann/);
    expect((await nodeGet("acc-oidc-part", "/public", [["accept", "text/html"]])).status).toBe(200);
    const stray = await nodeGet("acc-oidc-part", "/_relay/oidc/callback?code=x&state=y");
    expect(stray.status).toBe(401);
    expect(JSON.parse(stray.body.toString()).error).toBe("auth_invalid");
  });
});
