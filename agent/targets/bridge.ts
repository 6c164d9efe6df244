// HTTP-TCP bridge targets (bridge+tcp://host:port): each public HTTP request gets its own TCP
// connection, and the --bridge-plugin converts between the two (agent/bridge/, docs/bridge-plugins.md).
import net from "node:net";
import type { RequestHead } from "../../src/protocol/head.ts";
import type { Stream } from "../../src/protocol/session.ts";
import { BridgeExchange, type LoadedPlugin } from "../bridge/exchange.ts";
import { loadBridgePlugin } from "../bridge/load.ts";
import type { TargetSpec } from "../config.ts";
import type { Target } from "../target.ts";
import { answerJsonError } from "../response-head.ts";

export class BridgeTarget implements Target {
  readonly caps = ["http"];
  private readonly plugin: Promise<LoadedPlugin>;

  constructor(private readonly target: Extract<TargetSpec, { kind: "bridge" }>) {
    // The CLI loads the plugin before the first tunnel (so a bad one is a config error); this
    // shares that load, and a failure here fails each request rather than the process.
    this.plugin = loadBridgePlugin(target.plugin);
    this.plugin.catch(() => {});
  }

  serve(stream: Stream, head: RequestHead, hasBody: boolean): void {
    if (head.protocol === "websocket") return refuseUpgrade(stream);
    const { host, port, idleMs } = this.target;
    const dial = () => net.connect({ host, port, allowHalfOpen: true });
    new BridgeExchange(stream, head, hasBody, this.plugin, { dial, settings: { idleMs } }).start();
  }

  close(): void {}
}

/** A WebSocket upgrade to a bridge: 501 with the relay's JSON error shape. */
function refuseUpgrade(stream: Stream): void {
  answerJsonError(
    stream,
    501,
    "not_implemented",
    "This backend is an HTTP-TCP bridge: it answers plain HTTP requests, not WebSocket upgrades.",
  );
}
