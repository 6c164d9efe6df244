// The one interface between tunnels and targets: every target kind (http, https, h2c, unix, tcp,
// bridge+tcp, hbone) answers tunnelled requests through it, and a backend's ingress rules pick
// which target answers each request.
import type { HeaderList } from "../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";
import { matchRule, noRuleResponse, rewriteHeaders, type IngressRule } from "./ingress.ts";
import { TargetFailureLog, targetText } from "./target-failures.ts";
import { HttpOrigin, directDialer } from "./targets/http.ts";
import { hboneOrigin } from "./targets/hbone.ts";
import { TcpOrigin } from "./targets/tcp.ts";
import { BridgeOrigin } from "./targets/bridge.ts";

/** Something that can answer tunnelled requests. */
export interface Origin {
  /** Capabilities announced in the agent's hello (e.g. "http"). */
  readonly caps: string[];
  /**
   * Answers one request: reads its body from `stream` (handlers must be set before returning),
   * then sends the response head and body on it, or resets it with an error code.
   * `hasBody` is false when the request's HEADERS carried FIN.
   */
  serve(stream: Stream, head: RequestHead, hasBody: boolean): void;
  /** Releases pooled connections. */
  close(): void;
  /** What the target speaks (e.g. ["h2"], ["hbone", "http/1.1"]), announced in the hello. */
  protocols?(): Promise<string[]>;
}

/** What choosing and reaching a rule's target needs. */
export type OriginSettings = Pick<IngressRule, "target" | "preserveHost" | "originProtocol" | "connectTimeoutMs">;

/** The origin for one rule's target. */
export function createOrigin(settings: OriginSettings): Origin {
  const { target } = settings;
  switch (target.kind) {
    case "tcp":
      return new TcpOrigin(target.host, target.port);
    case "bridge":
      return new BridgeOrigin(target);
    case "hbone":
      return hboneOrigin(target, settings.preserveHost, settings.originProtocol);
    default:
      return new HttpOrigin(directDialer(target, settings.originProtocol, settings.connectTimeoutMs), settings.preserveHost);
  }
}

/** Two rules with the same key share one origin (and its pooled connections) across reloads. */
function originKey(settings: OriginSettings): string {
  return JSON.stringify([settings.target, settings.preserveHost, settings.originProtocol, settings.connectTimeoutMs ?? null]);
}

interface Route {
  rule: IngressRule;
  origin: Origin;
  /** Logs, rate-limited, the requests this rule's target could not take. */
  failures: TargetFailureLog;
}

/**
 * Every rule with its origin. `update` swaps the rules for new requests (requests in flight keep
 * theirs); origins no rule uses any more close after `closeAfterMs`, once their requests are done.
 */
export class IngressTable {
  private routes: Route[] = [];
  private readonly origins = new Map<string, Origin>();
  private readonly failureLogs = new Map<string, TargetFailureLog>();

  constructor(
    rules: IngressRule[],
    private readonly log: (line: string) => void = (line) => console.log(line),
    private readonly make: (settings: OriginSettings) => Origin = createOrigin,
  ) {
    this.update(rules, 0);
  }

  /** Applies new rules to the requests that arrive from now on. */
  update(rules: IngressRule[], closeAfterMs: number): void {
    const used = new Map<string, Origin>();
    this.routes = rules.map((rule) => {
      const key = originKey(rule);
      let origin = used.get(key) ?? this.origins.get(key);
      if (!origin) origin = this.make(rule);
      used.set(key, origin);
      const text = targetText(rule.target);
      let failures = this.failureLogs.get(text);
      if (!failures) this.failureLogs.set(text, (failures = new TargetFailureLog(text, this.log)));
      return { rule, origin, failures };
    });
    for (const [key, origin] of this.origins) {
      if (used.has(key)) continue;
      // Requests in flight still use it; the grace period bounds how long they may take.
      if (closeAfterMs > 0) setTimeout(() => origin.close(), closeAfterMs).unref();
      else origin.close();
    }
    this.origins.clear();
    for (const [key, origin] of used) this.origins.set(key, origin);
  }

  /** The origin that routes one backend's requests through the rules current when each arrives. */
  forBackend(backend: string): Origin {
    const own = () => this.routes.filter((r) => r.rule.backend === backend);
    return {
      // A hello announces what the backend's rules can answer when its tunnel opens.
      caps: [...new Set(own().flatMap((r) => r.origin.caps))],
      serve: (stream, head, hasBody) => this.serve(backend, stream, head, hasBody),
      close: () => {},
      protocols: async () => {
        const lists = await Promise.all(own().map((r) => r.origin.protocols?.() ?? Promise.resolve([])));
        return [...new Set(lists.flat())];
      },
    };
  }

  /** The rules in force, in order. */
  get rules(): IngressRule[] {
    return this.routes.map((r) => r.rule);
  }

  private serve(backend: string, stream: Stream, head: RequestHead, hasBody: boolean): void {
    const match = matchRule(
      this.routes.map((r) => r.rule),
      backend,
      head.path,
    );
    if (!match) return answerNoRule(stream, backend, head.path, hasBody);
    const { rule } = match;
    const { request, response } = rule.headers;
    let sent = head;
    if (match.path !== head.path || request.set.length || request.remove.length) {
      sent = { ...head, path: match.path, headers: rewriteHeaders(head.headers, request) };
    }
    if (response.set.length || response.remove.length) {
      // Every target kind answers through sendHeaders, so the rewrite sits there, once.
      const send = stream.sendHeaders.bind(stream);
      stream.sendHeaders = (list: HeaderList, fin?: boolean) => send(rewriteHeaders(list, response), fin);
    }
    const route = this.routes[match.index];
    route.origin.serve(route.failures.watch(stream), sent, hasBody);
  }

  /** Closes every origin now. */
  close(): void {
    for (const origin of this.origins.values()) origin.close();
    this.origins.clear();
    this.routes = [];
  }
}

/** The JSON 404 for a request no rule takes; a request body is read and dropped. */
function answerNoRule(stream: Stream, backend: string, path: string, hasBody: boolean): void {
  const { status, headers, body } = noRuleResponse(backend, path);
  if (hasBody) stream.onData = (chunk) => stream.consumed(chunk.byteLength);
  stream.sendHeaders(encodeResponseHead({ status, headers }));
  stream.end(body).catch(() => {});
}
