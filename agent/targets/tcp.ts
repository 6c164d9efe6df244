// Raw TCP targets (tcp://host:port): each public WebSocket stream is one TCP connection. Binary
// messages carry the bytes; an empty message is a half-close (FIN); a reset resets.
import net from "node:net";
import { ErrorCode } from "../../src/protocol/frame.ts";
import { encodeResponseHead, type RequestHead } from "../../src/protocol/head.ts";
import { receiveMessages } from "../../src/protocol/messages.ts";
import type { Stream } from "../../src/protocol/session.ts";
import type { Target } from "../target.ts";
import { answerJsonError } from "../response-head.ts";
import { describeError } from "./http.ts";
import { MessagePump } from "./message-pump.ts";
import { ReadBatch } from "../read-batch.ts";

const EMPTY = new Uint8Array(0);

export class TcpTarget implements Target {
  readonly caps = ["ws", "tcp"];

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  serve(stream: Stream, head: RequestHead): void {
    if (head.protocol !== "websocket") return refusePlainHttp(stream);
    const socket = net.connect({ host: this.host, port: this.port, allowHalfOpen: true });
    let connected = false;
    let sentFin = false;
    let gotFin = false;
    const finish = () => {
      if (sentFin && gotFin && stream.writable) stream.close(1000, "").catch(() => {});
    };

    socket.setNoDelay(true);
    socket.on("connect", () => {
      connected = true;
      stream.sendHeaders(encodeResponseHead({ status: 101, headers: [] }));
    });
    const pump = new MessagePump(stream, socket);
    // One message per turn's reads, not per read: each costs the relay an event and the client an ack.
    const reads = new ReadBatch((data) => void pump.send(data).catch(() => {}));
    socket.on("data", (chunk: Buffer) => reads.push(chunk));
    socket.on("end", () => {
      // The target's FIN: an empty message after the data, then a clean close once both sides are done.
      sentFin = true;
      reads.flush();
      pump.send(EMPTY).then(finish, () => {});
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      if (!connected) stream.reset(ErrorCode.OriginUnreachable, describeError(err));
      else stream.reset(ErrorCode.Cancel, `the target reset the connection (${err.code ?? err.message})`);
    });
    socket.on("close", () => {
      if (connected && stream.writable && !(sentFin && gotFin)) stream.reset(ErrorCode.Cancel, "the target closed the connection");
    });

    receiveMessages(
      stream,
      (message, handedOn) => {
        if (message.data.byteLength > 0) return void socket.write(message.data, handedOn);
        // The client's FIN.
        gotFin = true;
        socket.end(handedOn);
        finish();
      },
      () => socket.resetAndDestroy(),
    );
    stream.handle({
      onClose: (code) => {
        if (code === 1000 || code === 1005) socket.end();
        else socket.resetAndDestroy();
      },
      onReset: () => socket.resetAndDestroy(),
    });
  }

  close(): void {}

  async protocols(): Promise<string[]> {
    return ["tcp"];
  }
}

/** A plain HTTP request to a TCP target: 426 with the relay's JSON error shape. */
function refusePlainHttp(stream: Stream): void {
  answerJsonError(stream, 426, "upgrade_required", "This backend is a TCP service: connect with a WebSocket, e.g. `edge-relay connect`.");
}
