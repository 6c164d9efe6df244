// The relay's Prometheus rendering read back by the test parser: every family typed before its
// samples, label values escaped, and the parser refusing malformed text.
import { describe, expect, it } from "vitest";
import type { HubView } from "../../src/observe/hub-view.ts";
import { renderMetrics } from "../../src/observe/prometheus.ts";
import { parsePrometheus } from "../helpers/prometheus.ts";

function view(backend: string, tunnels: number): HubView {
  return {
    backend,
    streams: 3,
    websockets: 2,
    tunnels: Array.from({ length: tunnels }, (_, i) => ({
      tunnelId: `t${i}`,
      agentId: "a",
      agentVersion: "0.1.0",
      software: "edge-relay-agent/0.1.0",
      targets: ["http/1.1"],
      caps: ["http"],
      streams: 0,
      draining: false,
      connectedAt: "",
      lastHeartbeat: "",
    })),
    counters: { requests: { "2xx": 7, "5xx": 1 }, errors: { 'odd"code\\\n': 1 }, bytes: { toAgent: 100, fromAgent: 50 } },
  };
}

describe("renderMetrics", () => {
  it("renders what the parser reads back, escapes included", () => {
    const m = parsePrometheus(renderMetrics([view("a", 2), view("b", 0)]));
    expect(m.value("edge_relay_requests_total", { backend: "a", class: "2xx" })).toBe(7);
    expect(m.value("edge_relay_errors_total", { backend: "b", code: 'odd"code\\\n' })).toBe(1);
    expect(m.value("edge_relay_tunnel_bytes_total", { backend: "a", direction: "from_agent" })).toBe(50);
    expect(m.value("edge_relay_tunnels", { backend: "a" })).toBe(2);
    expect(m.value("edge_relay_tunnels", { backend: "b" })).toBe(0);
    expect(m.value("edge_relay_backends")).toBe(1);
    expect([...m.types.values()].filter((t) => t === "counter")).toHaveLength(3);
  });

  it("declares every family even with no backend", () => {
    const m = parsePrometheus(renderMetrics([]));
    expect([...m.types.keys()]).toHaveLength(7);
    expect(m.value("edge_relay_backends")).toBe(0);
  });
});

describe("parsePrometheus", () => {
  it("refuses malformed text", () => {
    for (const bad of [
      'x{a="1} 1\n',
      "x 1",
      'x{a="\\q"} 1\n',
      "x one\n",
      "# TYPE x counter\n# TYPE x gauge\n",
      "x 1\n# TYPE x counter\n",
    ]) {
      expect(() => parsePrometheus(bad), bad).toThrow();
    }
  });
});
