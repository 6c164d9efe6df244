// The relay's metrics in the Prometheus text exposition format (version 0.0.4), from the views
// of the backends' Durable Objects.
import type { HubView } from "./hub-view.ts";

/** The Content-Type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  samples: Array<[labels: Record<string, string>, value: number]>;
}

/** Renders every backend's counters and gauges; a family with no sample is still declared. */
export function renderMetrics(views: HubView[]): string {
  const family = (name: string, type: Family["type"], help: string): Family => ({ name, type, help, samples: [] });
  const requests = family("edge_relay_requests_total", "counter", "Public requests answered, by backend and status class.");
  const errors = family("edge_relay_errors_total", "counter", "Relay error responses, by backend and error code.");
  const bytes = family("edge_relay_tunnel_bytes_total", "counter", "Bytes on the agent tunnels, by backend and direction.");
  const tunnels = family("edge_relay_tunnels", "gauge", "Open agent tunnels, by backend.");
  const streams = family("edge_relay_streams", "gauge", "Streams in flight over the tunnels, by backend.");
  const websockets = family("edge_relay_public_websockets", "gauge", "Public WebSockets open, by backend.");
  for (const view of views) {
    const { backend, counters } = view;
    for (const [statusClass, n] of Object.entries(counters.requests)) requests.samples.push([{ backend, class: statusClass }, n]);
    for (const [code, n] of Object.entries(counters.errors)) errors.samples.push([{ backend, code }, n]);
    bytes.samples.push([{ backend, direction: "to_agent" }, counters.bytes.toAgent]);
    bytes.samples.push([{ backend, direction: "from_agent" }, counters.bytes.fromAgent]);
    tunnels.samples.push([{ backend }, view.tunnels.length]);
    streams.samples.push([{ backend }, view.streams]);
    websockets.samples.push([{ backend }, view.websockets]);
  }
  const backends = family("edge_relay_backends", "gauge", "Backends with an open tunnel.");
  backends.samples.push([{}, views.filter((v) => v.tunnels.length > 0).length]);
  const lines: string[] = [];
  for (const f of [requests, errors, bytes, tunnels, streams, websockets, backends]) {
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`);
    for (const [labels, value] of f.samples) lines.push(`${f.name}${labelText(labels)} ${value}`);
  }
  return `${lines.join("\n")}\n`;
}

function labelText(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}
