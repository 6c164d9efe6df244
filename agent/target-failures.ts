// Logs why the target could not serve a request (unreachable, or its bridge plugin failed): one
// line per kind of failure at most every 10 s, so the operator sees what clients get as a 502
// without a line per request.
import { ErrorCode } from "../src/protocol/frame.ts";
import type { Stream } from "../src/protocol/session.ts";
import type { TargetSpec } from "./config.ts";
import type { Log } from "./observe/log.ts";

/** The shortest time between two lines about the same kind of failure. */
export const TARGET_LOG_INTERVAL_MS = 10_000;

/** Rate-limits the lines about one target's failures, keyed by error code (ECONNREFUSED, ...). */
export class TargetFailureLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly target: string,
    private readonly log: Log,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reports one request the target could not take; logs unless this kind was logged lately. */
  report(message: string, code: ErrorCode = ErrorCode.OriginUnreachable): void {
    const kind = `${code}:${/^(E[A-Z0-9_]+)\b/.exec(message)?.[1] ?? message.slice(0, 80)}`;
    const seen = this.last.get(kind);
    const now = this.now();
    if (seen && now - seen.at < TARGET_LOG_INTERVAL_MS) {
      seen.suppressed++;
      return;
    }
    const more = seen?.suppressed ? ` (${seen.suppressed} more like it since the last line)` : "";
    this.last.set(kind, { at: now, suppressed: 0 });
    const line =
      code === ErrorCode.BridgeError
        ? `edge-relay: the bridge plugin of ${this.target} failed: ${message}; clients get 502 bridge_error${more}`
        : `edge-relay: cannot reach the target ${this.target}: ${message}; clients get 502 origin_unreachable${more}`;
    this.log(line, { level: "warn" });
  }

  /** Makes `stream` report its reset when the target was unreachable or its plugin failed; returns it. */
  watch(stream: Stream): Stream {
    const reset = stream.reset.bind(stream);
    // Through Object.assign, not `stream.reset = (code) => ...`: see Stream.handle.
    return Object.assign(stream, {
      reset: (code: ErrorCode, message = "") => {
        if (code === ErrorCode.OriginUnreachable || code === ErrorCode.BridgeError) this.report(message, code);
        reset(code, message);
      },
    } satisfies Partial<Stream>);
  }
}

/** The target as --to names it. */
export function targetText(target: TargetSpec): string {
  switch (target.kind) {
    case "http":
      return target.h2c ? `h2c://${target.url.host}` : target.url.origin;
    case "https":
      return target.url.origin;
    case "unix":
      return `unix:${target.path}`;
    case "hbone":
      return `hbone://${target.authority}`;
    case "tcp":
      return `tcp://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
    case "bridge":
      return `bridge+tcp://${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  }
}
