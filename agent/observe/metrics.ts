// The agent's Prometheus metrics (prom-client, a registry of its own): requests, timings, bytes,
// streams and tunnels per backend, and the /metrics, /healthz and /ready endpoints that serve them.
import type http from "node:http";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Exchange, ObserverSink } from "./observer.ts";

const PREFIX = "edge_relay_agent_";
/** Methods counted by name; clients choose the method, so any other is counted as "other" (bounded series). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"]);

/** "2xx" ... "5xx" for a status, "error" for a request reset before its response head. */
function statusClass(x: Exchange): string {
  return x.status === undefined ? "error" : `${Math.floor(x.status / 100)}xx`;
}

interface BackendSeries {
  inFlight: ReturnType<Gauge["labels"]>;
  headSeconds: ReturnType<Histogram["labels"]>;
  durationSeconds: ReturnType<Histogram["labels"]>;
  bytesIn: ReturnType<Counter["labels"]>;
  bytesOut: ReturnType<Counter["labels"]>;
  /** requests_total by "method status_class". */
  requests: Map<string, ReturnType<Counter["labels"]>>;
}

/** The metrics, fed as an observer sink; `ready` says whether every backend has a tunnel up. */
export class AgentMetrics implements ObserverSink {
  readonly registry = new Registry();
  private backends: string[] = [];
  private readonly up = new Map<string, number>();
  private readonly requests = new Counter(
    this.spec(
      "requests_total",
      "Requests answered, by backend, method (other for a non-standard one) and status class (error: reset before a response head).",
      ["backend", "method", "status_class"],
    ),
  );
  private readonly headSeconds = new Histogram(
    this.spec("response_head_seconds", "Time from a request's arrival at the agent to its response head, by backend."),
  );
  private readonly durationSeconds = new Histogram(
    this.spec("request_duration_seconds", "Time from a request's arrival at the agent to the end of its response, by backend."),
  );
  private readonly bytesIn = new Counter(
    this.spec("request_bytes_total", "Request body bytes from public clients to targets, by backend."),
  );
  private readonly bytesOut = new Counter(
    this.spec("response_bytes_total", "Response body bytes from targets to public clients, by backend."),
  );
  private readonly inFlight = new Gauge(this.spec("streams_in_flight", "Requests (streams) being answered now, by backend."));
  private readonly tunnels = new Gauge(this.spec("tunnels_up", "Tunnels open to the relay, by backend."));
  private readonly reconnects = new Counter(
    this.spec("reconnects_total", "Times a tunnel was opened again after one was lost or replaced, by backend."),
  );
  private readonly refusedStreams = new Counter(
    this.spec("refused_streams_total", "Streams refused because their tunnel was draining (the relay retries them), by backend."),
  );
  private readonly retriedRequests = new Counter(
    this.spec("retried_requests_total", "Requests sent to the target again after a pooled connection broke under them, by backend."),
  );
  private readonly targetErrors = new Counter(
    this.spec(
      "target_errors_total",
      "Requests the target could not take or broke off, by backend and kind (an errno like ECONNREFUSED, or origin_reset).",
      ["backend", "kind"],
    ),
  );

  /** A metric's options: prefixed name, help, labels (by backend unless given), this registry. */
  private spec(name: string, help: string, labelNames = ["backend"]) {
    return { name: `${PREFIX}${name}`, help, labelNames, registers: [this.registry] };
  }

  constructor(backends: string[]) {
    collectDefaultMetrics({ register: this.registry, prefix: PREFIX });
    this.setBackends(backends);
  }

  /** The backends /ready waits for; each gets its series at 0 so a scrape lists it. */
  setBackends(backends: string[]): void {
    this.backends = [...backends];
    for (const b of backends) {
      this.tunnels.set({ backend: b }, this.up.get(b) ?? 0);
      this.inFlight.inc({ backend: b }, 0);
    }
  }

  /** Whether every configured backend has a tunnel up; the others when not. */
  readiness(): { ready: boolean; waiting: string[] } {
    const waiting = this.backends.filter((b) => !this.up.get(b));
    return { ready: waiting.length === 0, waiting };
  }

  /** Each backend's per-request series, looked up once: a label lookup hashes its labels every time. */
  private readonly perBackend = new Map<string, BackendSeries>();

  private series(backend: string): BackendSeries {
    let s = this.perBackend.get(backend);
    if (!s) {
      const labels = { backend };
      s = {
        inFlight: this.inFlight.labels(labels),
        headSeconds: this.headSeconds.labels(labels),
        durationSeconds: this.durationSeconds.labels(labels),
        bytesIn: this.bytesIn.labels(labels),
        bytesOut: this.bytesOut.labels(labels),
        requests: new Map(),
      };
      this.perBackend.set(backend, s);
    }
    return s;
  }

  start(x: Exchange): void {
    this.series(x.backend).inFlight.inc();
  }

  head(x: Exchange): void {
    this.series(x.backend).headSeconds.observe(x.headMs! / 1000);
  }

  end(x: Exchange): void {
    const s = this.series(x.backend);
    s.inFlight.dec();
    const method = METHODS.has(x.method) ? x.method : "other";
    const key = `${method} ${statusClass(x)}`;
    let requests = s.requests.get(key);
    if (!requests) {
      requests = this.requests.labels({ backend: x.backend, method, status_class: statusClass(x) });
      s.requests.set(key, requests);
    }
    requests.inc();
    s.durationSeconds.observe(x.durationMs! / 1000);
    if (x.bytesIn) s.bytesIn.inc(x.bytesIn);
    if (x.bytesOut) s.bytesOut.inc(x.bytesOut);
  }

  tunnelUp(backend: string): void {
    this.up.set(backend, (this.up.get(backend) ?? 0) + 1);
    this.tunnels.set({ backend }, this.up.get(backend)!);
  }

  tunnelDown(backend: string): void {
    this.up.set(backend, Math.max(0, (this.up.get(backend) ?? 0) - 1));
    this.tunnels.set({ backend }, this.up.get(backend)!);
  }

  reconnect(backend: string): void {
    this.reconnects.inc({ backend });
  }

  refused(backend: string): void {
    this.refusedStreams.inc({ backend });
  }

  retried(backend: string): void {
    this.retriedRequests.inc({ backend });
  }

  targetError(backend: string, kind: string): void {
    this.targetErrors.inc({ backend, kind });
  }

  /** Answers /metrics, /healthz and /ready; anything else is a JSON 404. */
  handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "GET" && req.method !== "HEAD") return json(405, { error: "method_not_allowed", message: "only GET and HEAD" });
    if (path === "/metrics") {
      void this.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": this.registry.contentType, "cache-control": "no-store" });
          res.end(text);
        },
        (err: Error) => json(500, { error: "metrics_failed", message: err.message }),
      );
      return;
    }
    if (path === "/healthz") return json(200, { status: "alive" });
    if (path === "/ready") {
      const { ready, waiting } = this.readiness();
      return json(ready ? 200 : 503, ready ? { status: "ready" } : { status: "not_ready", waiting });
    }
    json(404, { error: "not_found", message: "this port serves /metrics, /healthz and /ready" });
  }
}
