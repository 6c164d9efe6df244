// Public WebSocket clients in the Durable Object: each is a hibernatable socket bridged to a
// message stream of one tunnel (README "Message streams" in src/protocol).
import { FLOW_SUBPROTOCOL, flowMessage, parseFlowMessage } from "../client-flow.ts";
import { ErrorCode, MAX_WS_MESSAGE } from "../protocol/frame.ts";
import { closeReason, receiveMessages, sendableClose } from "../protocol/messages.ts";
import { StreamState } from "../protocol/stream.ts";
import type { Stream } from "../protocol/session.ts";

/** Tag of every public client socket. */
export const CLIENT_TAG = "client";
/** Tag linking a client socket to its tunnel, so the tunnel can adopt it after hibernation. */
export const clientsOf = (tunnelId: string) => `c:${tunnelId}`;

/** What survives hibernation with a client socket. */
export interface ClientAttachment {
  tunnelId: string;
  streamId: number;
  backend: string;
  /** The client opted into flow control (src/client-flow.ts). */
  flow?: boolean;
}

/**
 * Bytes a client may have sent that the agent has not yet given credit for. The runtime
 * delivers client messages with no way to pause them (workerd#988), so past this the client
 * is closed with 1013 rather than buffered without bound (docs/limits.md "Memory").
 */
export const CLIENT_BACKLOG_LIMIT = 2 * MAX_WS_MESSAGE;
/**
 * Messages a client may have waiting for its tunnel stream, whatever their size: each costs the
 * relay a frame and its promises, so a client of 1-byte messages is bounded by count, not bytes.
 */
export const CLIENT_PENDING_MESSAGES = 4096;
/** Bytes all public clients of one Durable Object may have waiting for their tunnels. */
export const OBJECT_BACKLOG_BYTES = 64 * 1024 * 1024;
/** Messages all public clients of one Durable Object may have waiting for their tunnels. */
export const OBJECT_PENDING_MESSAGES = 16 * 1024;

/** What public clients sent that waits for a tunnel: one per client stream, one per object. */
export class Backlog {
  bytes = 0;
  messages = 0;

  /** Whether one more message of `n` bytes would go past `bytes` or `messages`. */
  over(n: number, bytes: number, messages: number): boolean {
    return this.bytes + n > bytes || this.messages + 1 > messages;
  }

  add(n: number, sign: 1 | -1): void {
    this.bytes += sign * n;
    this.messages += sign;
  }
}

const backlogs = new WeakMap<Stream, Backlog>();

/** Flow-controlled clients: messages sent to the client and not yet acknowledged by it. */
const unacked = new WeakMap<Stream, { queue: Array<{ size: number; handedOn: () => void }>; acked: number }>();

/** Request headers of the client's own handshake; the agent makes its own. */
export const HANDSHAKE_HEADERS = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"]);

/**
 * Answers a WebSocket upgrade the agent accepted (its 101, with the backend's `chosen`
 * subprotocol): a hibernatable client socket bridged to the stream.
 */
export function acceptClient(
  ctx: DurableObjectState,
  stream: Stream,
  upgrade: { tunnelId: string; flow: boolean },
  backend: string,
  chosen: string | null,
): Response {
  const { 0: client, 1: server } = new WebSocketPair();
  const { tunnelId } = upgrade;
  // Flow control only when the backend chose no subprotocol of its own: a socket has one.
  const flow = upgrade.flow && !chosen;
  const protocol = flow ? FLOW_SUBPROTOCOL : chosen;
  ctx.acceptWebSocket(server, [CLIENT_TAG, clientsOf(tunnelId)]);
  server.serializeAttachment({ tunnelId, streamId: stream.id, backend, flow } satisfies ClientAttachment);
  bindClient(server, stream, flow);
  const headers = new Headers();
  if (protocol) headers.set("sec-websocket-protocol", protocol);
  return new Response(null, { status: 101, webSocket: client, headers });
}

/**
 * Sends what arrives on the stream to the client socket, and ends the socket with the stream.
 * For a flow-controlled client a message counts as handed on once the client acknowledged it;
 * for any other, once sent (workerd has no bufferedAmount, workerd#988).
 */
export function bindClient(ws: WebSocket, stream: Stream, flow = false): void {
  const pending = { queue: [] as Array<{ size: number; handedOn: () => void }>, acked: 0 };
  if (flow) unacked.set(stream, pending);
  receiveMessages(
    stream,
    (message, handedOn) => {
      // The client closed while the agent still sent (its CLOSE has not crossed ours yet):
      // send() would throw into the tunnel's message handler and close the whole tunnel.
      if (ws.readyState !== WebSocket.OPEN) return handedOn();
      ws.send(message.text ? new TextDecoder().decode(message.data) : message.data);
      if (flow) pending.queue.push({ size: message.data.byteLength, handedOn });
      else handedOn();
    },
    () => safeClose(ws, 1009, "message too big"),
  );
  stream.handle({
    onClose: (code, reason) => safeClose(ws, sendableClose(code), closeReason(reason)),
    onReset: (reset) =>
      safeClose(ws, reset.code === ErrorCode.MessageTooBig ? 1009 : 1011, reset.tunnelLost ? "backend connection lost" : "reset"),
  });
}

/**
 * A message from the public client: up the stream, within the client's backlog limits and the
 * object's (`objectBacklog`, shared by every client of the Durable Object).
 */
export function clientMessage(
  ws: WebSocket,
  stream: Stream | undefined,
  message: string | ArrayBuffer,
  objectBacklog: Backlog,
  flow = false,
): void {
  if (flow && typeof message === "string") return flowControl(ws, stream, message);
  if (!stream || !stream.writable) return safeClose(ws, 1011, "backend connection lost");
  const data = typeof message === "string" ? new TextEncoder().encode(message) : new Uint8Array(message);
  if (data.byteLength > MAX_WS_MESSAGE) {
    stream.reset(ErrorCode.MessageTooBig, `client message of ${data.byteLength} bytes`);
    return safeClose(ws, 1009, `messages are limited to ${MAX_WS_MESSAGE} bytes`);
  }
  let backlog = backlogs.get(stream);
  if (!backlog) backlogs.set(stream, (backlog = new Backlog()));
  const n = data.byteLength;
  const full = backlog.over(n, CLIENT_BACKLOG_LIMIT, CLIENT_PENDING_MESSAGES)
    ? "the backend is not reading"
    : objectBacklog.over(n, OBJECT_BACKLOG_BYTES, OBJECT_PENDING_MESSAGES)
      ? "the relay holds too much for this backend"
      : undefined;
  if (full) {
    stream.reset(ErrorCode.Cancel, `client backlog over the limit: ${full}`);
    return safeClose(ws, 1013, full);
  }
  backlog.add(n, 1);
  objectBacklog.add(n, 1);
  const settled = () => {
    backlog.add(n, -1);
    objectBacklog.add(n, -1);
  };
  // Frames of messages that arrive in one turn (or before the session's flush timer, which
  // fires late under a burst) leave in one tunnel message (src/protocol/session.ts queue).
  stream
    .writeMessage(data, typeof message === "string")
    .then(() => {
      settled();
      if (flow) ws.send(flowMessage("credit", n));
    }, settled)
    .catch(() => {}); // the client socket closed meanwhile
}

/** A flow-controlled client's control message: an ack returns the tunnel's credit. */
function flowControl(ws: WebSocket, stream: Stream | undefined, text: string): void {
  const control = parseFlowMessage(text);
  if (!control || control.kind !== "ack") return safeClose(ws, 1008, "text messages on a flow-controlled socket must be acks");
  const pending = stream && unacked.get(stream);
  if (!pending) return;
  pending.acked += control.bytes;
  while (pending.queue.length > 0 && pending.acked >= pending.queue[0].size) {
    const { size, handedOn } = pending.queue.shift()!;
    pending.acked -= size;
    handedOn();
  }
}

/** The public client closed (or dropped): tell the agent, and finish the close handshake. */
export function clientClosed(ws: WebSocket, stream: Stream | undefined, code: number, reason: string): void {
  if (stream && stream.state !== StreamState.Closed) {
    if (code === 1006) stream.reset(ErrorCode.Cancel, "the public client dropped the WebSocket");
    else if (stream.writable) stream.close(code, reason).catch(() => {});
  }
  // Without this the client waits ~10 s and sees 1006 (docs/platform-notes.md "Close our side of
  // every WebSocket").
  safeClose(ws, sendableClose(code) ?? 1000, closeReason(reason));
}

function safeClose(ws: WebSocket, code: number | undefined, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // Already closed.
  }
}
