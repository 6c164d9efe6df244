// HBONE targets end to end: public client -> relay (workerd) -> agent -> HTTP/2 CONNECT over
// mTLS -> a mesh proxy -> the workload. The proxy is the in-repo node:http2 server (which
// records what it received) and Debian's nghttpx handing CONNECTs to tinyproxy.
import { createHash } from "node:crypto";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternSha256, startBackend, writePattern, type Backend } from "../helpers/backend.ts";
import { CLIENT_ID, SERVER_ID, makePki, type Pki } from "../helpers/certs.ts";
import { countingProxy, startHboneServer, type HboneServer } from "../helpers/hbone-server.ts";
import { freePort, startNghttpx, startTinyproxy, type Peer } from "../helpers/mesh-peers.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { tool } from "../helpers/tools.ts";
import { startWsBackend, type WsBackend } from "../helpers/ws-backend.ts";
import { until, within } from "../helpers/wait.ts";

const MiB = 1024 * 1024;
let pki: Pki;
let relay: RelayHandle;
let backend: Backend;
let wsBackend: WsBackend;
const agents: AgentProcess[] = [];

beforeAll(async () => {
  pki = makePki();
  [relay, backend, wsBackend] = await Promise.all([startRelay(), startBackend(), startWsBackend()]);
});

afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await Promise.all([relay?.stop(), backend?.stop(), wsBackend?.stop()]);
});

/** Starts an agent for `name` with an hbone:// target through the proxy on `proxyPort`. */
async function meshAgent(name: string, targetPort: number, proxyPort: number, extra: string[] = [], client: "client" | "rogue" = "client") {
  const args = agentArgs(relay.url, name, await relay.token(name), `hbone://127.0.0.1:${targetPort}`, [
    "--hbone-proxy",
    `127.0.0.1:${proxyPort}`,
    "--hbone-cert",
    client === "client" ? pki.files.clientCert : pki.files.rogueCert,
    "--hbone-key",
    client === "client" ? pki.files.clientKey : pki.files.rogueKey,
    "--hbone-ca",
    pki.files.ca,
    ...extra,
  ]);
  const agent = await startAgent(args, { waitUp: 1 });
  agents.push(agent);
  return agent;
}

/**
 * GET through the relay; resolves with status and JSON body. An error answer must come without
 * waiting on any deadline (the relay's is 100 s): 15 s is generous on a loaded machine.
 */
async function askJson(path: string, init?: RequestInit): Promise<{ status: number; body: Record<string, unknown> }> {
  const ask = async () => {
    const res = await fetch(`${relay.url}${path}`, init);
    return { status: res.status, text: await res.text() };
  };
  const { status, text } = await within(ask(), `the answer to ${path}`, 15_000);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status, body };
}

describe("HBONE through the in-repo node:http2 server", () => {
  let hbone: HboneServer;
  const ask200 = async (client: string) => {
    const res = await fetch(`${relay.url}/r/mesh/echo`, { headers: { "cf-connecting-ip": client } });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  };

  beforeAll(async () => {
    hbone = await startHboneServer(pki, (authority) => {
      const port = Number(authority.split(":").pop());
      return port === 1 ? 401 : port === 2 ? 418 : port === 3 ? 503 : undefined;
    });
    await meshAgent("mesh", backend.port, hbone.port, ["--hbone-identity", SERVER_ID, "--hbone-header", "x-mesh-test=yes"]);
  });
  afterAll(() => hbone?.stop());

  it("carries a request and sends the CONNECT the way Istio's HBONE clients do", async () => {
    const res = await fetch(`${relay.url}/r/mesh/echo?x=1`, {
      headers: { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", baggage: "k=v" },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { url: string }).url).toBe("/echo?x=1");
    const connect = hbone.connects.at(-1)!;
    expect(connect.authority).toBe(`127.0.0.1:${backend.port}`);
    expect(connect.headers[":method"]).toBe("CONNECT");
    expect(connect.headers[":path"]).toBeUndefined();
    expect(connect.headers["x-mesh-test"]).toBe("yes");
    expect(connect.headers.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(connect.headers.baggage).toBe("k=v");
    expect(connect.headers.forwarded).toBe('for="127.0.0.1"');
    expect(connect.sni).toBe(false);
    expect(connect.tls).toBe("TLSv1.3");
    expect(connect.clientIds).toEqual([CLIENT_ID]);
  });

  it("reuses a CONNECT stream for one client's requests, one stream per client address", async () => {
    const before = hbone.connects.length;
    const ask = async (client: string, i: number) => {
      const traceparent = `00-${"a".repeat(31)}${i}-${"b".repeat(16)}-01`;
      const res = await fetch(`${relay.url}/r/mesh/echo?i=${i}`, { headers: { traceparent, "cf-connecting-ip": client } });
      const body = (await res.json()) as { url: string; rawHeaders: string[] };
      expect(body.url).toBe(`/echo?i=${i}`);
      // Each request carries its own trace context to the workload, whichever CONNECT it rode.
      expect(body.rawHeaders[body.rawHeaders.findIndex((h) => h.toLowerCase() === "traceparent") + 1]).toBe(traceparent);
      return traceparent;
    };
    const first = await ask("198.51.100.7", 0);
    for (let i = 1; i < 5; i++) await ask("198.51.100.7", i);
    await ask("198.51.100.8", 5);
    const opened = hbone.connects.slice(before);
    expect(opened.map((c) => c.headers.forwarded)).toEqual(['for="198.51.100.7"', 'for="198.51.100.8"']);
    // A kept-alive CONNECT carries the trace context of the request that opened it.
    expect(opened[0].headers.traceparent).toBe(first);
  });

  it("opens a new CONNECT, on a new connection, once the proxy sent GOAWAY", async () => {
    await ask200("198.51.100.9");
    const [connects, sessions] = [hbone.connects.length, hbone.sessions];
    await ask200("198.51.100.9");
    expect(hbone.connects.length).toBe(connects);
    hbone.goAway();
    // The GOAWAY reaches the agent on its own connection, as a request comes through the relay:
    // asked until a new CONNECT comes (a stream reused after GOAWAY would serve every one).
    await until(async () => {
      await ask200("198.51.100.9");
      return hbone.connects.length > connects;
    }, "a new CONNECT after GOAWAY");
    expect(hbone.connects.length).toBe(connects + 1);
    expect(hbone.sessions).toBe(sessions + 1);
  });

  it.each([
    [1, 403, "mesh_denied"],
    [2, 502, "origin_error"],
    [3, 502, "origin_unreachable"],
  ])("maps a CONNECT refusal for port %i to %i %s", async (port, status, error) => {
    const name = `mesh-refused-${port}`;
    await meshAgent(name, port, hbone.port);
    const res = await askJson(`/r/${name}/`);
    expect(res.status).toBe(status);
    expect(res.body.error).toBe(error);
    if (port === 2) expect(String(res.body.message)).toContain("418");
  });

  it("refuses a proxy whose certificate lacks the expected identity", async () => {
    await meshAgent("mesh-wrong-id", backend.port, hbone.port, ["--hbone-identity", "spiffe://cluster.local/ns/default/sa/other"]);
    const res = await askJson("/r/mesh-wrong-id/");
    expect(res.status).toBe(502);
    expect(res.body.error).toBe("mesh_identity_mismatch");
    expect(String(res.body.message)).toContain(SERVER_ID);
  });
});

const nghttpx = tool("nghttpx", "nghttp2-proxy");
const tinyproxy = tool("tinyproxy", "tinyproxy");

describe.skipIf(!!nghttpx.skip || !!tinyproxy.skip)("HBONE through nghttpx and tinyproxy", () => {
  let proxy: Peer;
  let mesh: Peer;
  let counter: Awaited<ReturnType<typeof countingProxy>>;

  beforeAll(async () => {
    proxy = await startTinyproxy(tinyproxy.path!);
    mesh = await startNghttpx(nghttpx.path!, pki, proxy.port);
    counter = await countingProxy(mesh.port);
    await meshAgent("ng", backend.port, counter.port, ["--hbone-identity", SERVER_ID]);
    await meshAgent("ng-ws", wsBackend.port, counter.port, ["--hbone-identity", SERVER_ID]);
  });
  afterAll(async () => {
    counter?.stop();
    await mesh?.stop();
    await proxy?.stop();
  });

  it("answers a plain GET", async () => {
    const res = await fetch(`${relay.url}/r/ng/echo?via=nghttpx`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { url: string }).url).toBe("/echo?via=nghttpx");
  });

  it("downloads and uploads 50 MiB byte-exact", async () => {
    const down = await fetch(`${relay.url}/r/ng/bytes?n=${50 * MiB}`);
    const h = createHash("sha256");
    let n = 0;
    for await (const chunk of down.body as unknown as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      n += chunk.byteLength;
    }
    expect(n).toBe(50 * MiB);
    expect(h.digest("hex")).toBe(patternSha256(50 * MiB));

    const url = new URL(relay.url);
    const echo = await new Promise<{ sha256: string; length: number }>((resolve, reject) => {
      const req = http.request(
        { hostname: url.hostname, port: url.port, method: "POST", path: "/r/ng/echo", headers: { "content-length": 50 * MiB } },
        (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve(JSON.parse(body)));
        },
      );
      req.on("error", reject);
      void writePattern(req as unknown as http.ServerResponse, 50 * MiB).then(() => req.end());
    });
    expect(echo).toMatchObject({ length: 50 * MiB, sha256: patternSha256(50 * MiB) });
  });

  it("streams server-sent events as they are written", async () => {
    const gates: Array<() => void> = [];
    backend.route("/mesh-sse", async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (let i = 0; i < 3; i++) {
        res.write(`data: ${i}\n\n`);
        await new Promise<void>((r) => (gates[i] = r));
      }
      res.end();
    });
    const res = await fetch(`${relay.url}/r/ng/mesh-sse`);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    for (let i = 0; i < 3; i++) {
      while (!text.includes(`data: ${i}\n\n`)) {
        const { value, done } = await Promise.race([
          reader.read(),
          new Promise<never>((_, r) => setTimeout(() => r(new Error(`event ${i} not seen within 5 s`)), 5000)),
        ]);
        if (done) throw new Error("stream ended early");
        text += value;
      }
      gates[i]();
    }
    expect(text).toBe("data: 0\n\ndata: 1\n\ndata: 2\n\n");
  });

  it("carries a WebSocket echo", async () => {
    const ws = new WebSocket(`${relay.url.replace("http", "ws")}/r/ng-ws/echo?id=mesh`);
    await new Promise((resolve, reject) => (ws.once("open", resolve), ws.once("error", reject)));
    ws.send("through the mesh");
    const reply = await new Promise<string>((resolve) => ws.once("message", (d) => resolve(d.toString())));
    expect(reply).toBe("through the mesh");
    ws.close();
  });

  it("shares a handful of HTTP/2 connections among 200 concurrent requests", async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const res = await fetch(`${relay.url}/r/ng/echo?i=${i}`);
        return res.status === 200 && ((await res.json()) as { url: string }).url === `/echo?i=${i}`;
      }),
    );
    expect(results.filter(Boolean).length).toBe(200);
    expect(counter.accepted()).toBeLessThanOrEqual(6);
  });

  it("answers a closed target port with the documented error quickly (tinyproxy says 500)", async () => {
    const closed = await freePort();
    await meshAgent("ng-closed", closed, counter.port, ["--hbone-identity", SERVER_ID]);
    const res = await askJson("/r/ng-closed/");
    // tinyproxy answers a CONNECT it cannot complete with 500, which nghttpx passes on; a mesh
    // proxy that says 502-504 (ztunnel: 503) gives origin_unreachable (tested above).
    expect(res.status).toBe(502);
    expect(res.body.error).toBe("origin_error");
    expect(String(res.body.message)).toContain("with 500");
  });

  it("answers a client certificate from an untrusted CA with mesh_denied quickly", async () => {
    await meshAgent("ng-rogue", backend.port, counter.port, ["--hbone-identity", SERVER_ID], "rogue");
    const res = await askJson("/r/ng-rogue/");
    expect(res.status).toBe(403);
    expect(res.body.error).toBe("mesh_denied");
  });

  it("refuses nghttpx when it is not the expected identity", async () => {
    await meshAgent("ng-wrong-id", backend.port, counter.port, ["--hbone-identity", "spiffe://cluster.local/ns/default/sa/other"]);
    const res = await askJson("/r/ng-wrong-id/");
    expect(res.status).toBe(502);
    expect(res.body.error).toBe("mesh_identity_mismatch");
  });
});
