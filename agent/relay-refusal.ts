// Reads why the relay could not be used: its JSON error body as "code: message", or a sentence
// saying what to fix when the URL does not lead to a relay (a path, an HTML page, plain HTTP).
import type { IncomingMessage } from "node:http";
import { CONNECT_PATH } from "./config.ts";

/**
 * Refusal codes no retry can cure: the token itself is wrong for this relay or backend. The
 * supervisor gives up after a few of these so a service manager shows the failure.
 */
export const TOKEN_REFUSALS: readonly string[] = [
  "token_missing",
  "token_invalid",
  "token_expired",
  "token_revoked",
  "token_backend_mismatch",
];

/** The relay (or whatever answered at --relay) refused the WebSocket upgrade. */
export class RelayRefusal extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    /** The relay's error code, when it answered with edge-relay's JSON error body. */
    readonly code?: string,
  ) {
    super(message);
    this.name = "RelayRefusal";
  }

  /** True when the relay refused the token itself (see TOKEN_REFUSALS). */
  get tokenRefused(): boolean {
    return this.code !== undefined && TOKEN_REFUSALS.includes(this.code);
  }
}

/** Reads the refusal's body and resolves with a RelayRefusal; `url` is the agent's tunnel URL. */
export function describeRefusal(res: IncomingMessage, url?: URL): Promise<RelayRefusal> {
  return new Promise((resolve) => {
    let body = "";
    res.setEncoding("utf8");
    res.on("data", (d: string) => (body += d.slice(0, 2000)));
    res.on("end", () => resolve(refusal(res.statusCode, String(res.headers["content-type"] ?? ""), body, url)));
    res.on("error", () => resolve(new RelayRefusal(`the relay answered ${res.statusCode}`, res.statusCode)));
  });
}

function refusal(status: number | undefined, contentType: string, body: string, url: URL | undefined): RelayRefusal {
  let json: { error?: unknown; message?: unknown } | undefined;
  try {
    json = JSON.parse(body) as typeof json;
  } catch {
    json = undefined;
  }
  const prefix = url?.pathname.endsWith(CONNECT_PATH) ? url.pathname.slice(0, -CONNECT_PATH.length) : "";
  const pathHint =
    url && prefix
      ? ` --relay has the path ${prefix}, but the relay listens at its root: give only the scheme and host, like ${url.protocol === "wss:" ? "https" : "http"}://${url.host}.`
      : "";
  if (json && typeof json.error === "string") {
    const detail = `the relay answered ${status} (${json.error}: ${typeof json.message === "string" ? json.message : ""})`;
    return new RelayRefusal(status === 404 && pathHint ? `${detail};${pathHint}` : detail, status, json.error);
  }
  const what =
    /html/i.test(contentType) || /^\s*<(!doctype|html)/i.test(body)
      ? "an HTML page"
      : body.trim()
        ? `"${body.trim().slice(0, 120)}"`
        : "no body";
  const fix = pathHint || ` check --relay: it must be the URL of an edge-relay Worker, like https://relay.example.com.`;
  return new RelayRefusal(
    `${url?.host ?? "the relay"} answered ${status} with ${what} instead of upgrading to an edge-relay tunnel, so it is not an edge-relay relay at that URL;${fix}`,
    status,
  );
}
