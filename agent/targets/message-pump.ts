// Sends a target's data up a message stream, pausing the target while more than a window of it
// waits for the relay's credit, so a slow public client holds the target, not the agent's memory.
import { DEFAULT_WINDOW } from "../../src/protocol/frame.ts";
import type { Stream } from "../../src/protocol/session.ts";

/** Something that can stop and restart delivering data (a net.Socket, a ws WebSocket). */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export class MessagePump {
  private waiting = 0;

  constructor(
    private readonly stream: Stream,
    private readonly source: Pausable,
    private readonly limit: number = DEFAULT_WINDOW,
  ) {}

  /** Sends one message; resolves once it has gone up the tunnel. */
  send(data: Uint8Array, text = false): Promise<void> {
    this.waiting += data.byteLength;
    if (this.waiting > this.limit) this.source.pause();
    const sent = this.stream.writeMessage(data, text);
    sent.then(
      () => {
        this.waiting -= data.byteLength;
        if (this.waiting <= this.limit / 2) this.source.resume();
      },
      () => {},
    );
    return sent;
  }
}
