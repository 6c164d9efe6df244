// The one interface between tunnels and targets: every target kind (http, https, h2c, unix,
// tcp, bridge+tcp, hbone) answers tunnelled requests through it.
import type { RequestHead } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";
import type { AgentConfig } from "./config.ts";
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

/** The origin for a configured target. */
export function createOrigin(config: AgentConfig): Origin {
  const target = config.target;
  switch (target.kind) {
    case "tcp":
      return new TcpOrigin(target.host, target.port);
    case "bridge":
      return new BridgeOrigin(target);
    case "hbone":
      return hboneOrigin(target, config.preserveHost, config.originProtocol);
    default:
      return new HttpOrigin(directDialer(target, config.originProtocol), config.preserveHost);
  }
}
