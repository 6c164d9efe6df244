// The agent's kept-alive connections to its target, end to end: a request that reuses one
// survives the target closing idle connections (a slow upload, a close racing the next
// request), and a request whose body already went out on a broken connection is never repeated.
import http from "node:http";
import http2 from "node:http2";
import net, { type AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { agentArgs, startAgent, type AgentProcess } from "../helpers/agent.ts";
import { patternBlock, startBackend, type Backend } from "../helpers/backend.ts";
import { makePki } from "../helpers/certs.ts";
import { openRequest, rawRequest } from "../helpers/client.ts";
import { startHboneServer } from "../helpers/hbone-server.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";
import { within } from "../helpers/wait.ts";

let relay: RelayHandle;
const cleanups: Array<() => Promise<unknown> | void> = [];

beforeAll(async () => {
  relay = await startRelay();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

afterAll(async () => {
  await relay?.stop();
});

async function agentFor(name: string, target: string, extra: string[] = []): Promise<AgentProcess> {
  const agent = await startAgent(agentArgs(relay.url, name, await relay.token(name), target, extra), { waitUp: 1 });
  cleanups.push(() => agent.stop());
  return agent;
}

describe("a slow upload on a kept-alive connection", () => {
  let backend: Backend;

  beforeAll(async () => {
    backend = await startBackend();
    // Short, so the test waits little. The backend announces it (Keep-Alive: timeout=3), and
    // Node's agent keeps the connection a second less: 2 s to reuse it.
    backend.server.keepAliveTimeout = 3000;
  });

  afterAll(() => backend?.stop());

  it("reaches the backend byte-exact when its body comes after the backend's keep-alive timeout", async () => {
    const name = "slow-upload";
    await agentFor(name, backend.url);
    // Warm the agent's connection to the backend.
    let warmed: net.Socket | undefined;
    backend.route("/warm", (req, res) => {
      warmed = req.socket;
      res.end("warm");
    });
    const warm = await rawRequest(relay.url, { path: `/r/${name}/warm` });
    expect(warm.status).toBe(200);

    let reused = false;
    const size = 300 * 1024;
    const block = patternBlock(size);
    const headArrived = new Promise<void>((resolve) =>
      backend.route("/upload-slow", async (req, res) => {
        resolve();
        reused = req.socket === warmed;
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const body = Buffer.concat(chunks);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ length: body.length, same: body.equals(block) }));
      }),
    );
    const { req, response } = openRequest(relay.url, {
      method: "POST",
      path: `/r/${name}/upload-slow`,
      headers: { "transfer-encoding": "chunked", "content-type": "application/octet-stream" },
    });
    // The head reaches the backend while no body byte was sent.
    await within(
      Promise.race([headArrived, response.then((r) => Promise.reject(new Error(`answered before the body: ${r.status} ${r.body}`)))]),
      "the upload's head at the backend",
      15_000,
    );
    expect(reused).toBe(true);

    // A clock made of events: an idle connection opened now, which the backend closes once its
    // keep-alive timeout passed. By then the upload has waited longer than that timeout.
    const probeClosed = new Promise<void>((resolve) => {
      backend.server.once("connection", (socket: net.Socket) => socket.once("close", () => resolve()));
    });
    const probe = await rawRequestKeepAlive(backend.port);
    expect(probe).toBe(200);
    await within(probeClosed, "the backend to close an idle connection", 15_000);

    for (let at = 0; at < size; at += 50 * 1024) req.write(block.subarray(at, at + 50 * 1024));
    req.end();
    const res = await within(response, "the upload's response", 15_000);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ length: size, same: true });
  });
});

/** One GET straight to a backend on a connection left open (keep-alive); resolves with its status. */
function rawRequestKeepAlive(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: true });
    const req = http.get({ hostname: "127.0.0.1", port, path: "/echo", agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
  });
}

/**
 * A raw HTTP/1.1 target that answers the first request on each connection (keeping it open)
 * and destroys the connection when the first byte of a next request arrives on it: a target
 * closing an idle connection just as the agent reuses it; with `reset`, with a TCP RST.
 */
async function startClosingTarget(reset = false): Promise<{
  url: string;
  connections: () => number;
  /** Resolves once the target has had `n` connections. */
  connected(n: number): Promise<void>;
  requests: string[];
  stop(): Promise<void>;
}> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const waiting: Array<[number, () => void]> = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    for (const [n, resolve] of waiting) if (connections >= n) resolve();
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let served = false;
    let buffered = "";
    socket.on("data", (data) => {
      if (served) return void (reset ? socket.resetAndDestroy() : socket.destroy());
      buffered += data.toString("latin1");
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffered.slice(0, end);
      const [line] = head.split("\r\n");
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      const chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
      const rest = buffered.slice(end + 4);
      // The first request's body is small and comes whole: wait for it, then answer.
      if (chunked ? !rest.endsWith("0\r\n\r\n") : rest.length < length) return;
      served = true;
      requests.push(`${line.split(" ").slice(0, 2).join(" ")} #${connections}`);
      const body = `served ${line.split(" ")[0]} ${line.split(" ")[1]}`;
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    connections: () => connections,
    connected: (n) => new Promise<void>((resolve) => (connections >= n ? resolve() : waiting.push([n, resolve]))),
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("a target that closes a kept-alive connection as the next request arrives", () => {
  it("the next request is sent again on a fresh connection and answered", async () => {
    const target = await startClosingTarget();
    cleanups.push(() => target.stop());
    const name = "closing-get";
    await agentFor(name, target.url);
    const first = await rawRequest(relay.url, { path: `/r/${name}/one` });
    expect(first.status).toBe(200);
    expect(first.body.toString()).toBe("served GET /one");
    const second = await rawRequest(relay.url, { path: `/r/${name}/two` });
    expect(second.status).toBe(200);
    expect(second.body.toString()).toBe("served GET /two");
    // The second request broke one reused connection and was answered on a new one.
    expect(target.connections()).toBe(2);
    expect(target.requests).toEqual(["GET /one #1", "GET /two #2"]);
  });

  it("a POST that broke a reused connection before any of its body went out is sent again", async () => {
    const target = await startClosingTarget();
    cleanups.push(() => target.stop());
    const name = "closing-late-post";
    await agentFor(name, target.url);
    expect((await rawRequest(relay.url, { path: `/r/${name}/warm` })).status).toBe(200);
    const { req, response } = openRequest(relay.url, {
      method: "POST",
      path: `/r/${name}/late`,
      headers: { "transfer-encoding": "chunked" },
    });
    // The head broke the reused connection and went again on a second one; the body follows.
    await within(target.connected(2), "the POST's head on a second connection", 15_000);
    req.end("a late body");
    const res = await within(response, "the POST's response", 15_000);
    expect(res).toEqual({ status: 200, body: "served POST /late" });
    expect(target.requests).toEqual(["GET /warm #1", "POST /late #2"]);
  });

  it("a POST whose body went out before the connection broke is 502, not sent twice", async () => {
    const target = await startClosingTarget();
    cleanups.push(() => target.stop());
    const name = "closing-post";
    await agentFor(name, target.url);
    expect((await rawRequest(relay.url, { path: `/r/${name}/warm` })).status).toBe(200);
    const res = await rawRequest(relay.url, { method: "POST", path: `/r/${name}/order`, body: "one order, please" });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: "origin_unreachable", backend: name });
    // No connection after the broken one carried the POST.
    expect(target.requests).toEqual(["GET /warm #1"]);
  });
});

describe("an hbone target whose workload closes a kept-alive CONNECT's connection", () => {
  // Either way the proxy ends the CONNECT stream, and the agent sees the connection hang up.
  it.each([
    ["closes", false],
    ["resets", true],
  ])("the next request is sent again on a fresh CONNECT and answered (the workload %s)", async (_how, reset) => {
    const pki = makePki();
    const hbone = await startHboneServer(pki);
    cleanups.push(() => hbone.stop());
    const target = await startClosingTarget(reset);
    cleanups.push(() => target.stop());
    const name = `closing-hbone-${reset ? "reset" : "close"}`;
    const { files } = pki;
    const flags = [
      "--hbone-proxy",
      `127.0.0.1:${hbone.port}`,
      "--hbone-cert",
      files.clientCert,
      "--hbone-key",
      files.clientKey,
      "--hbone-ca",
      files.ca,
    ];
    await agentFor(name, target.url.replace(/^http:/, "hbone:"), flags);
    expect((await rawRequest(relay.url, { path: `/r/${name}/one` })).body.toString()).toBe("served GET /one");
    // The workload drops the kept-alive connection as /two arrives on it, and the agent sends
    // /two again on a new CONNECT.
    const second = await rawRequest(relay.url, { path: `/r/${name}/two` });
    expect(second.status).toBe(200);
    expect(second.body.toString()).toBe("served GET /two");
    expect(target.requests).toEqual(["GET /one #1", "GET /two #2"]);
    // One CONNECT carried /one and then /two, which went again on a second.
    expect(hbone.connects).toHaveLength(2);
  });
});

describe("an h2c target that refuses a stream it did not process", () => {
  it("the request goes again on a stream of its session and is answered", async () => {
    const streams: string[] = [];
    let refused = 0;
    const server = http2.createServer();
    server.on("stream", (h2stream, headers) => {
      const path = String(headers[":path"]);
      streams.push(path);
      h2stream.on("error", () => {});
      if (path === "/refuse-once" && refused++ === 0) return void h2stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      h2stream.respond({ ":status": 200, "content-type": "text/plain" });
      h2stream.end(`served ${path}`);
    });
    server.on("sessionError", () => {});
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const name = "h2c-refusing";
    await agentFor(name, `h2c://127.0.0.1:${(server.address() as AddressInfo).port}`);
    expect((await rawRequest(relay.url, { path: `/r/${name}/warm` })).status).toBe(200);
    const res = await rawRequest(relay.url, { path: `/r/${name}/refuse-once` });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("served /refuse-once");
    expect(streams).toEqual(["/warm", "/refuse-once", "/refuse-once"]);
  });
});
