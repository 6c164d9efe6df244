// The one interface between tunnels and targets: every target kind (http, https, h2c, unix, tcp,
// bridge+tcp, hbone) answers tunnelled requests through it, and a backend's ingress rules pick
// which target answers each request.
import type { HeaderList } from "../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";
import type { Log } from "./observe/log.ts";
import { noteTarget } from "./observe/observer.ts";
import { matchRule, noRuleResponse, rewriteHeaders, type IngressRule } from "./ingress.ts";
import { TargetFailureLog, targetText } from "./target-failures.ts";
import { HttpTarget, directDialer } from "./targets/http.ts";
import { hboneTarget } from "./targets/hbone.ts";
import { TcpTarget } from "./targets/tcp.ts";
import { BridgeTarget } from "./targets/bridge.ts";

/** Something that can answer tunnelled requests. */
export interface Target {
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
export type TargetSettings = Pick<IngressRule, "target" | "preserveHost" | "originProtocol" | "connectTimeoutMs">;

/** The live target a rule's settings describe. */
export function createTarget(settings: TargetSettings): Target {
  const { target: spec } = settings;
  switch (spec.kind) {
    case "tcp":
      return new TcpTarget(spec.host, spec.port);
    case "bridge":
      return new BridgeTarget(spec);
    case "hbone":
      return hboneTarget(spec, settings.preserveHost, settings.originProtocol);
    default:
      return new HttpTarget(directDialer(spec, settings.originProtocol, settings.connectTimeoutMs), settings.preserveHost);
  }
}

/** Two rules with the same key share one target (and its pooled connections) across reloads. */
function targetKey(settings: TargetSettings): string {
  return JSON.stringify([settings.target, settings.preserveHost, settings.originProtocol, settings.connectTimeoutMs ?? null]);
}

interface Route {
  rule: IngressRule;
  target: Target;
  /** Logs, rate-limited, the requests this rule's target could not take. */
  failures: TargetFailureLog;
}

/**
 * Every rule with its target. `update` swaps the rules for new requests (requests in flight keep
 * theirs); targets no rule uses any more close after `closeAfterMs`, once their requests are done.
 */
export class IngressTable {
  private routes: Route[] = [];
  private readonly targets = new Map<string, Target>();
  private readonly failureLogs = new Map<string, TargetFailureLog>();

  constructor(
    rules: IngressRule[],
    private readonly log: Log = (line) => console.log(line),
    private readonly make: (settings: TargetSettings) => Target = createTarget,
  ) {
    this.update(rules, 0);
  }

  /** Applies new rules to the requests that arrive from now on. */
  update(rules: IngressRule[], closeAfterMs: number): void {
    const used = new Map<string, Target>();
    this.routes = rules.map((rule) => {
      const key = targetKey(rule);
      let target = used.get(key) ?? this.targets.get(key);
      if (!target) target = this.make(rule);
      used.set(key, target);
      const text = targetText(rule.target);
      let failures = this.failureLogs.get(text);
      if (!failures) this.failureLogs.set(text, (failures = new TargetFailureLog(text, this.log)));
      return { rule, target, failures };
    });
    for (const [key, target] of this.targets) {
      if (used.has(key)) continue;
      // Requests in flight still use it; the grace period bounds how long they may take.
      if (closeAfterMs > 0) setTimeout(() => target.close(), closeAfterMs).unref();
      else target.close();
    }
    this.targets.clear();
    for (const [key, target] of used) this.targets.set(key, target);
  }

  /** The target that routes one backend's requests through the rules current when each arrives. */
  forBackend(backend: string): Target {
    const own = () => this.routes.filter((r) => r.rule.backend === backend);
    return {
      // A hello announces what the backend's rules can answer when its tunnel opens.
      caps: [...new Set(own().flatMap((r) => r.target.caps))],
      serve: (stream, head, hasBody) => this.serve(backend, stream, head, hasBody),
      close: () => {},
      protocols: async () => {
        const lists = await Promise.all(own().map((r) => r.target.protocols?.() ?? Promise.resolve([])));
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
      // Through Object.assign, not `stream.sendHeaders = (list) => ...`: see Stream.handle.
      Object.assign(stream, {
        sendHeaders: (list: HeaderList, fin?: boolean) => send(rewriteHeaders(list, response), fin),
      } satisfies Partial<Stream>);
    }
    const route = this.routes[match.index];
    noteTarget(stream, route.failures.target);
    route.target.serve(route.failures.watch(stream), sent, hasBody);
  }

  /** Closes every target now. */
  close(): void {
    for (const target of this.targets.values()) target.close();
    this.targets.clear();
    this.routes = [];
  }
}

/** The JSON 404 for a request no rule takes; a request body is read and dropped. */
function answerNoRule(stream: Stream, backend: string, path: string, hasBody: boolean): void {
  const { status, headers, body } = noRuleResponse(backend, path);
  if (hasBody) stream.handle({ onData: (chunk) => stream.consumed(chunk.byteLength) });
  stream.sendHeaders(encodeResponseHead({ status, headers }));
  stream.end(body).catch(() => {});
}
