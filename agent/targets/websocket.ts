// WebSocket upgrades to http(s) and unix targets: the agent opens its own WebSocket to the
// target and carries messages, close codes and refusals over a message stream.
import type { ClientRequestArgs } from "node:http";
import WebSocket from "ws";
import { endToEnd, pairs } from "../../src/http-headers.ts";
import { ErrorCode, MAX_WS_MESSAGE } from "../../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import { closeReason, receiveMessages, sendableClose } from "../../src/protocol/messages.ts";
import { sendResponseHead } from "../response-head.ts";
import type { Stream } from "../../src/protocol/session.ts";
import { describeError, sendBody } from "./http.ts";
import { MessagePump } from "./message-pump.ts";

/** Where and how to open the target's WebSocket. */
export interface WebSocketTarget {
  /** ws://host:port, wss://host:port or ws+unix:/path.sock (the request path is appended). */
  base: string;
  host: string;
  tls?: { ca?: string; rejectUnauthorized: boolean };
  /** Brings the connection (an HBONE CONNECT stream) instead of dialling `base`. */
  createConnection?: ClientRequestArgs["createConnection"];
}

/** Request headers that belong to the client's own handshake, never forwarded. */
const HANDSHAKE = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol", "host"]);

/** Bridges one WebSocket stream to the target. */
export function serveWebSocket(stream: Stream, head: RequestHead, target: WebSocketTarget): void {
  const offered: string[] = [];
  const headers: Record<string, string> = { host: target.host };
  for (const [name, value] of head.headers) {
    if (name === "sec-websocket-protocol")
      offered.push(
        ...value
          .split(",")
          .map((p) => p.trim())
          .filter(Boolean),
      );
    else if (!HANDSHAKE.has(name)) headers[name] = headers[name] ? `${headers[name]}, ${value}` : value;
  }
  const url = target.base.startsWith("ws+unix:") ? `${target.base}:${head.path}` : target.base + head.path;
  const options: WebSocket.ClientOptions & ClientRequestArgs = {
    headers,
    perMessageDeflate: false,
    maxPayload: MAX_WS_MESSAGE,
    handshakeTimeout: 30_000,
    followRedirects: false,
    ...(target.tls ? { ca: target.tls.ca, rejectUnauthorized: target.tls.rejectUnauthorized } : {}),
    ...(target.createConnection ? { createConnection: target.createConnection as never } : {}),
  };
  const ws = new WebSocket(url, offered, options);
  let opened = false;
  let answered = false;
  let peerClosed = false;

  ws.on("upgrade", (res) => {
    answered = true;
    const chosen = res.headers["sec-websocket-protocol"];
    stream.sendHeaders(encodeResponseHead({ status: 101, headers: chosen ? [["sec-websocket-protocol", String(chosen)]] : [] }));
  });
  ws.on("unexpected-response", (_req, res) => {
    // The target refused the upgrade: its answer goes to the client as plain HTTP.
    answered = true;
    const noBody = res.statusCode === 204 || res.statusCode === 304;
    if (!sendResponseHead(stream, res.statusCode ?? 502, endToEnd(pairs(res.rawHeaders)), noBody)) return void res.destroy();
    if (noBody) return void res.resume();
    void sendBody(res, stream);
  });
  ws.on("error", (err: NodeJS.ErrnoException & { tunnelCode?: ErrorCode }) => {
    if (!answered)
      stream.reset(err.tunnelCode ?? ErrorCode.OriginUnreachable, err.tunnelCode !== undefined ? err.message : describeError(err));
  });
  ws.on("open", () => (opened = true));
  const pump = new MessagePump(stream, ws);
  ws.on("message", (data: Buffer, isBinary: boolean) => void pump.send(data, !isBinary).catch(() => {}));
  ws.on("close", (code: number, reason: Buffer) => {
    if (!opened) return;
    if (code === 1006) return stream.reset(ErrorCode.Cancel, "the target dropped the WebSocket");
    if (stream.writable) stream.close(code, reason.toString()).catch(() => {});
  });

  receiveMessages(
    stream,
    (message, handedOn) => ws.send(message.data, { binary: !message.text }, handedOn),
    () => ws.close(1009, "message too big"),
  );
  stream.handle({
    onClose: (code, reason) => {
      peerClosed = true;
      if (ws.readyState === WebSocket.OPEN) ws.close(sendableClose(code), closeReason(reason));
    },
    onReset: () => {
      if (!peerClosed) ws.terminate();
    },
    onEnd: () => {},
  });
}
