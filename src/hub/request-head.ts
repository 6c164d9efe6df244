// A public request as the agent gets it: its head as a header list, and a small body read whole.
import { takeFlowOffer } from "../client-flow.ts";
import { RelayError } from "../errors.ts";
import { RELAY_PREFIX, isHopByHop } from "../http-headers.ts";
import type { HubRoute } from "../hub-route.ts";
import type { HeaderList } from "../protocol/frame.ts";
import { isValidTraceparent, newTraceparent } from "../observe/traceparent.ts";
import { HANDSHAKE_HEADERS } from "./public-websockets.ts";

/** The agent's head for a public request, and what the relay needs to know about it. */
export interface RequestHead {
  head: HeaderList;
  /** A WebSocket upgrade. */
  upgrade: boolean;
  /** The client offered the relay's flow subprotocol (src/client-flow.ts). */
  flow: boolean;
  idempotencyKey: boolean;
  contentLength?: string;
}

/**
 * The head an agent gets for a public request (protocol README "Header block"), in one pass
 * over its headers, since each Headers call crosses into the runtime and this runs for every
 * request. Dropped: hop-by-hop fields, every x-relay- field (the route came in its own header,
 * the rest are the public client's), and X-Forwarded-Proto and -Host, which are set here from
 * the route. Added: the client's address (the route's) to X-Forwarded-For, and a traceparent when
 * the request has no valid one (src/observe/traceparent.ts); made here, in the pass the head
 * takes anyway, rather than set on the request one runtime call each. For a WebSocket upgrade the handshake's own fields go too, and the relay's flow
 * subprotocol is taken out of the offer.
 */
export function requestHead(request: Request, route: HubRoute): RequestHead {
  const scheme = route.scheme ?? "https";
  const authority = route.authority ?? "";
  const head: HeaderList = [
    [":method", request.method],
    [":path", route.path ?? "/"],
    [":scheme", scheme],
    [":authority", authority],
  ];
  const pseudo = head.length;
  let upgrade: string | undefined;
  let connection: string | undefined;
  let idempotencyKey = false;
  let contentLength: string | undefined;
  /** The incoming traceparent's validity; undefined when there was none. */
  let trace: boolean | undefined;
  let tracestate: number | undefined;
  /** The client address still to be added to X-Forwarded-For. */
  let client = route.client;
  for (const field of request.headers) {
    const name = field[0];
    if (name.startsWith(RELAY_PREFIX) || name === "x-forwarded-proto" || name === "x-forwarded-host") continue;
    if (isHopByHop(name)) {
      if (name === "upgrade") upgrade = field[1];
      else if (name === "connection") connection = field[1];
      continue;
    }
    if (name === "idempotency-key") idempotencyKey = true;
    else if (name === "content-length") contentLength = field[1];
    else if (name === "traceparent") {
      trace = isValidTraceparent(field[1]);
      if (!trace) continue;
    } else if (name === "tracestate") tracestate = head.length;
    else if (name === "x-forwarded-for" && client !== undefined) {
      head.push([name, forwardedFor(field[1], client)]);
      client = undefined;
      continue;
    }
    head.push(field);
  }
  if (client !== undefined) head.push(["x-forwarded-for", client]);
  if (!trace) {
    // A traceparent that was there but invalid takes its tracestate with it (W3C Trace Context).
    if (trace === false && tracestate !== undefined) head.splice(tracestate, 1);
    head.push(["traceparent", newTraceparent()]);
  }
  head.push(["x-forwarded-proto", scheme], ["x-forwarded-host", authority]);
  const websocket = upgrade?.toLowerCase() === "websocket";
  let flow = false;
  let fields = head;
  if (connection !== undefined || websocket) {
    // Rare: drop what Connection names (the runtime usually strips Connection itself), and the
    // WebSocket handshake's fields, which the agent's own handshake makes anew.
    const named = new Set((connection ?? "").split(",").map((t) => t.trim().toLowerCase()));
    fields = head.filter(
      ([name], i) => i < pseudo || !(named.has(name) || (websocket && (HANDSHAKE_HEADERS.has(name) || name === "sec-websocket-protocol"))),
    );
    if (websocket) {
      fields.splice(pseudo, 0, [":protocol", "websocket"]);
      const offer = takeFlowOffer(request.headers.get("sec-websocket-protocol"));
      flow = offer.flow;
      if (offer.rest) fields.push(["sec-websocket-protocol", offer.rest]);
    }
  }
  return { head: fields, upgrade: websocket, flow, idempotencyKey, contentLength };
}

/**
 * X-Forwarded-For with the client's address: the edge appends the client already, so it is
 * added only where it is not the last address.
 */
export function forwardedFor(prior: string, client: string): string {
  if (!prior) return client;
  const comma = prior.lastIndexOf(",");
  return (comma === -1 ? prior : prior.slice(comma + 1)).trim() === client ? prior : `${prior}, ${client}`;
}

/**
 * A small request body, read whole; one that breaks off first is a 400 (its client is likely
 * gone). Returned, not thrown: an error thrown in the object reaches the Worker without its class.
 */
export async function readWhole(request: Request, backend: string): Promise<Uint8Array | RelayError> {
  try {
    return new Uint8Array(await request.arrayBuffer());
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return new RelayError("request_body_incomplete", `The request body ended before its Content-Length (${why.slice(0, 200)}).`, backend);
  }
}
