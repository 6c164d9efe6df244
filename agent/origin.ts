// The one interface between tunnels and targets: every target kind (http, https, unix, and
// tcp, and later h2c, hbone, bridge) answers tunnelled requests through it.
import type { RequestHead } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";
import type { AgentConfig } from "./config.ts";
import { HttpOrigin } from "./targets/http.ts";
import { TcpOrigin } from "./targets/tcp.ts";

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
}

/** The origin for a configured target. */
export function createOrigin(config: AgentConfig): Origin {
  const target = config.target;
  return target.kind === "tcp" ? new TcpOrigin(target.host, target.port) : new HttpOrigin(target, config.preserveHost);
}
