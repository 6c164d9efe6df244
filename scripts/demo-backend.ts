// The demo backend `npm start` exposes: a page that shows what the relay forwarded, a clock
// over Server-Sent Events, an echo endpoint and a download.
import http from "node:http";
import type { AddressInfo } from "node:net";

const page = (req: http.IncomingMessage) => `<!doctype html>
<meta charset="utf-8"><title>edge-relay demo</title>
<style>body{font:15px system-ui;margin:2em;max-width:50em}code,pre{background:#f3f3f3;padding:2px 4px}</style>
<h1>Hello through edge-relay</h1>
<p>This page is served by a backend on loopback, reached through the relay and the agent's tunnel.</p>
<p>Server time, streamed over Server-Sent Events: <b id="clock">…</b></p>
<h2>What the backend received</h2>
<pre>${escapeHtml(
  `${req.method} ${req.url}\n` +
    Object.entries(req.headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
)}</pre>
<p>Try <a href="echo?x=1">echo</a> (JSON of the request) or <a href="download?mib=10">a 10 MiB download</a>.</p>
<script>new EventSource("events").onmessage = (e) => (document.getElementById("clock").textContent = e.data);</script>`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
}

/** Starts the demo backend on 127.0.0.1:`port` (0 = any free port). */
export async function startDemoBackend(port = 0): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://demo");
    if (url.pathname === "/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      const tick = () => res.write(`data: ${new Date().toISOString()}\n\n`);
      tick();
      const timer = setInterval(tick, 1000);
      req.on("close", () => clearInterval(timer));
      return;
    }
    if (url.pathname === "/echo") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() }, null, 2),
        );
      });
      return;
    }
    if (url.pathname === "/download") {
      const mib = Math.min(1024, Number(url.searchParams.get("mib")) || 1);
      res.writeHead(200, {
        "content-type": "application/octet-stream",
        "content-length": mib * 1048576,
        "content-disposition": "attachment; filename=demo.bin",
      });
      const block = Buffer.alloc(1048576, 0x61);
      let left = mib;
      const write = () => {
        while (left > 0) {
          left--;
          if (!res.write(block)) return void res.once("drain", write);
        }
        res.end();
      };
      return write();
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page(req));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}
