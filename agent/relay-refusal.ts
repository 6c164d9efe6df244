// Reads why the relay refused a WebSocket upgrade: its JSON error body as "code: message", or
// the start of whatever else it sent.
import type { IncomingMessage } from "node:http";

/** Resolves with "the relay answered <status> (<code>: <message>)". */
export function describeRefusal(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => (body += d.slice(0, 2000)));
    res.on("end", () => {
      let detail = body.trim().slice(0, 300);
      try {
        const json = JSON.parse(body) as { error?: string; message?: string };
        if (json.error) detail = `${json.error}: ${json.message ?? ""}`;
      } catch {
        // Not our JSON error body: show the text as is.
      }
      resolve(`the relay answered ${res.statusCode}${detail ? ` (${detail})` : ""}`);
    });
    res.on("error", () => resolve(`the relay answered ${res.statusCode}`));
  });
}
