// Reads why the relay refused a WebSocket upgrade: its JSON error body as "code: message", or
// the start of whatever else it sent; and which refusals no retry can cure.
import type { IncomingMessage } from "node:http";

/** Relay error codes that refuse the token itself: retrying with the same token cannot succeed. */
const TOKEN_REFUSALS = new Set(["token_missing", "token_invalid", "token_expired", "token_revoked"]);

/** A refused upgrade: the sentence to print and the relay's error code, when it sent one. */
export class RelayRefusal extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "RelayRefusal";
  }

  /** True when the relay refused the token (401 token_*): the agent must stop, not retry. */
  get tokenRefused(): boolean {
    return this.code !== undefined && TOKEN_REFUSALS.has(this.code);
  }
}

/** Resolves with a RelayRefusal whose message is "the relay answered <status> (<code>: <message>)". */
export function readRefusal(res: IncomingMessage): Promise<RelayRefusal> {
  return new Promise((resolve) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => (body += d.slice(0, 2000)));
    res.on("end", () => {
      let detail = body.trim().slice(0, 300);
      let code: string | undefined;
      try {
        const json = JSON.parse(body) as { error?: string; message?: string };
        if (typeof json.error === "string") {
          code = json.error;
          detail = `${json.error}: ${json.message ?? ""}`;
        }
      } catch {
        // Not our JSON error body: show the text as is.
      }
      resolve(new RelayRefusal(`the relay answered ${res.statusCode}${detail ? ` (${detail})` : ""}`, code));
    });
    res.on("error", () => resolve(new RelayRefusal(`the relay answered ${res.statusCode}`)));
  });
}

/** Resolves with "the relay answered <status> (<code>: <message>)". */
export async function describeRefusal(res: IncomingMessage): Promise<string> {
  return (await readRefusal(res)).message;
}
