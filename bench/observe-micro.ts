// Micro-benchmark of the agent's observers alone: small requests through an in-process pair of
// protocol sessions to a target that answers at once, with no observer, the metrics, the inspector.
// Run: npx tsx bench/observe-micro.ts [requests]
import { DEFAULT_MAX_FRAME, DEFAULT_WINDOW, PROTOCOL_VERSION, type Hello } from "../src/protocol/frame.ts";
import { decodeRequestHead, encodeRequestHead, encodeResponseHead } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";
import { Inspector } from "../agent/observe/inspector.ts";
import { AgentMetrics } from "../agent/observe/metrics.ts";
import { Observer, type ObserverSink } from "../agent/observe/observer.ts";
import { localPair } from "../agent/observe/replay.ts";
import type { Target } from "../agent/target.ts";

const BODY = new TextEncoder().encode(JSON.stringify({ ok: true, text: "x".repeat(200) }));
const target: Target = {
  caps: ["http"],
  serve(stream: Stream) {
    stream.onData = (chunk) => stream.consumed(chunk.byteLength);
    stream.sendHeaders(encodeResponseHead({ status: 200, headers: [["content-type", "application/json"]] }));
    stream.end(BODY).catch(() => {});
  },
  close() {},
};

async function run(label: string, sinks: ObserverSink[] | undefined, requests: number): Promise<void> {
  const observer = sinks ? new Observer(sinks) : undefined;
  const hello: Hello = {
    v: PROTOCOL_VERSION,
    software: "bench",
    id: "b",
    caps: ["http"],
    window: DEFAULT_WINDOW,
    maxFrame: DEFAULT_MAX_FRAME,
  };
  const { client } = localPair(hello, (stream, list, fin) => {
    const head = decodeRequestHead(list);
    const s = observer ? observer.watch(stream, head, "b", "t", target) : stream;
    target.serve(s, head, !fin);
  });
  const head = encodeRequestHead({
    method: "GET",
    path: "/small",
    scheme: "https",
    authority: "x",
    headers: [
      ["accept", "*/*"],
      ["user-agent", "bench"],
    ],
  });
  const one = () =>
    new Promise<void>((resolve) => {
      const s = client.open(head, true);
      s.onData = (c) => s.consumed(c.byteLength);
      s.onEnd = () => resolve();
      s.onReset = () => resolve();
    });
  const concurrency = 32;
  const go = async (n: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next++ < n) await one();
      }),
    );
  };
  await go(5000);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await go(requests);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  console.log(
    `${label.padEnd(10)} ${Math.round(requests / (ms / 1000))} req/s, ${((cpu.user + cpu.system) / requests).toFixed(1)} µs CPU/request`,
  );
}

const n = Number(process.argv[2] ?? 40_000);
const mode = process.argv[3] ?? "all";
if (mode === "none" || mode === "all") await run("none", undefined, n);
if (mode === "metrics" || mode === "all") await run("metrics", [new AgentMetrics(["b"])], n);
if (mode === "inspect" || mode === "all") await run("inspect", [new Inspector(Number(process.env.RING ?? 500), false)], n);
