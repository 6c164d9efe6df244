// Flow control between the relay and a public WebSocket client that opts in with the
// subprotocol below (edge-relay's own `connect` does). The runtime gives the relay no
// backpressure on public sockets (workerd#988), so without it a fast client can only be cut off
// and a slow one buffered without bound. Shared by the Worker and the agent; pure.

/** The subprotocol a client offers to opt in; the relay answers with it and never forwards it. */
export const FLOW_SUBPROTOCOL = "edge-relay.flow.v1";

/** Bytes an opted-in client may send before the relay's first credit: its initial window. */
export const CLIENT_WINDOW = 1024 * 1024;

/**
 * Control messages are text; data is always binary on a flow-controlled socket.
 * - relay -> client `credit <n>`: n more bytes of the client's data went up the tunnel.
 * - client -> relay `ack <n>`: the client handed n more bytes of received data on.
 */
export type FlowControl = { kind: "credit" | "ack"; bytes: number };

/** Encodes a control message. */
export function flowMessage(kind: FlowControl["kind"], bytes: number): string {
  return `${kind} ${bytes}`;
}

/** Parses a control message; undefined when it is not one. */
export function parseFlowMessage(text: string): FlowControl | undefined {
  const m = /^(credit|ack) (\d{1,12})$/.exec(text);
  return m ? { kind: m[1] as FlowControl["kind"], bytes: Number(m[2]) } : undefined;
}

/** Removes the flow subprotocol from a Sec-WebSocket-Protocol offer; says whether it was there. */
export function takeFlowOffer(offer: string | null): { flow: boolean; rest: string | null } {
  if (!offer) return { flow: false, rest: offer };
  const all = offer
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const rest = all.filter((p) => p !== FLOW_SUBPROTOCOL);
  return { flow: rest.length !== all.length, rest: rest.length ? rest.join(", ") : null };
}
