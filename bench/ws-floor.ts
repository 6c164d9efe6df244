// The bench's ws-floor row, inside the backend's Durable Object: each small GET is answered only
// after a WebSocket round trip to a peer that echoes what it gets (bench/bench.ts runs the peer),
// with the relay's batching and no relay code: what the platform's WebSocket transport alone
// adds to do-ceiling, the least any tunnel through one object can cost.
import { BENCH_SMALL_BODY } from "./do-responder.ts";

/** The tag of the peer's socket among the object's hibernatable WebSockets. */
export const FLOOR_TAG = "bench-ws-floor";
/** Bytes each request takes in a message: its id. */
const ID_BYTES = 8;
/** As the relay's Session: a burst leaves once this many requests wait (src/hub/tunnels.ts). */
const PER_MESSAGE = 8;

/** The little of a workerd WebSocket the floor uses, typed by hand (bench/do-responder.ts says why). */
interface FloorSocket {
  send(data: ArrayBuffer | Uint8Array): void;
}

/** The requests of one object waiting for the peer, and the batch not yet sent. */
export class WsFloor {
  /** Requests sent to the peer, oldest first, each answered by the next id the peer echoes. */
  private readonly waiting: Array<(response: Response) => void> = [];
  private batch = 0;
  private scheduled = false;
  private nextId = 0;

  constructor(private readonly peer: () => FloorSocket | undefined) {}

  /**
   * Answers once the peer echoed this request's id. A request alone goes out in a microtask, a
   * burst in one message on a timer or once PER_MESSAGE (a quarter of those waiting when more)
   * are ready, as the relay sends request heads.
   */
  request(): Promise<Response> {
    if (!this.peer())
      return Promise.resolve(Response.json({ error: "no_peer", message: "No ws-floor peer is connected." }, { status: 502 }));
    const answer = new Promise<Response>((resolve) => this.waiting.push(resolve));
    this.batch++;
    if (this.batch >= Math.max(PER_MESSAGE, this.waiting.length >> 2)) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      if (this.waiting.length <= 1) queueMicrotask(() => this.flush());
      else setTimeout(() => this.flush(), 0);
    }
    return answer;
  }

  /** A message from the peer: answers as many of the oldest requests as it holds ids. */
  receive(message: ArrayBuffer | string): void {
    const n = typeof message === "string" ? 0 : message.byteLength / ID_BYTES;
    for (const resolve of this.waiting.splice(0, n)) resolve(new Response(BENCH_SMALL_BODY, { headers: { "content-type": "text/plain" } }));
  }

  /** The peer went away: what waits is answered 502. */
  closed(): void {
    for (const resolve of this.waiting.splice(0))
      resolve(Response.json({ error: "peer_closed", message: "The ws-floor peer closed." }, { status: 502 }));
    this.batch = 0;
  }

  private flush(): void {
    this.scheduled = false;
    if (this.batch === 0) return;
    const ids = new DataView(new ArrayBuffer(this.batch * ID_BYTES));
    for (let i = 0; i < this.batch; i++) ids.setFloat64(i * ID_BYTES, this.nextId++);
    this.batch = 0;
    this.peer()?.send(ids.buffer);
  }
}
