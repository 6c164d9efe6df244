// The multiplexer: one session per tunnel, over any message transport (a WebSocket in the
// relay's Durable Object, a `ws` socket in the agent, an in-memory pair in tests).
import {
  decodeClose,
  decodeError,
  decodeHeaderBlock,
  decodeHello,
  decodeMessage,
  decodeU32,
  encodeClose,
  encodeError,
  encodeFrames,
  encodeHeaderBlock,
  encodeHello,
  encodeU32,
} from "./codec.ts";
import {
  ErrorCode,
  Flag,
  FrameType,
  HEADER_BYTES,
  MAX_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  TunnelClose,
  type Frame,
  type HeaderList,
  type Hello,
} from "./frame.ts";
import { ReceiveWindow, SendWindow } from "./flow.ts";
import { IdTable } from "./id-table.ts";
import { StreamEvent, StreamState, idleStatus, transition, type StreamStatus } from "./stream.ts";

/** Why a stream ended early: a RST_STREAM from either side, or the tunnel going away. */
export class StreamReset extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** True when the tunnel closed under the stream rather than a RST_STREAM. */
    readonly tunnelLost = false,
  ) {
    super(message);
    this.name = "StreamReset";
  }
}

export interface SessionOptions {
  /** The relay opens odd stream ids; the agent would open even ones. */
  role: "relay" | "agent";
  /** What this side announces; its window and maxFrame bound what the peer may send. */
  hello: Hello;
  /** The peer's hello when already known (a relay session rebuilt after hibernation). */
  remoteHello?: Hello;
  /** Sends one binary message on the transport. */
  send(message: Uint8Array): void;
  /**
   * Sends one binary message given as its frames, `bytes` long once encoded, when the transport
   * can write them without joining them first (default: send(encodeFrames(frames))).
   */
  sendFrames?(frames: readonly Frame[], bytes: number): void;
  /** The peer's HELLO arrived (not called for a rebuilt session). */
  onHello?(hello: Hello): void;
  /** The peer opened a stream. Set the stream's handlers before returning. */
  onStream?(stream: Stream, head: HeaderList, fin: boolean): void;
  /** The peer sent GOAWAY: open nothing new on this session. */
  onGoAway?(code: number, reason: string): void;
  /** A PING we sent came back. */
  onPingAck?(payload: Uint8Array): void;
  /** The session failed: close the transport with `error.closeCode`. */
  onError?(error: ProtocolError): void;
  /** First id this side opens (default 1 for the relay). Must have the role's parity. */
  firstStreamId?: number;
  /** How a flush of coalesced frames is deferred (default: a zero-delay timer). */
  schedule?(flush: () => void): void;
  /**
   * How a flush is deferred when the frame is a HEADERS and at most one stream is open (default:
   * `schedule`). A lone request's head has nothing to be coalesced with, so it leaves with the
   * event that made it instead of costing a timer event of its own. Body frames still wait for
   * `schedule`, so a lone upload's chunks share messages.
   */
  scheduleAlone?(flush: () => void): void;
  /**
   * Sends the coalesced frames at once when this many HEADERS wait among them, or a quarter of
   * the open streams if that is more (default: never, only `schedule` flushes). Under load a
   * zero-delay timer fires behind the events already waiting, so without this a whole burst of
   * requests would reach the peer at once and this side would sit idle until the first answers
   * came back; smaller bursts keep both sides busy (README "Transport").
   */
  headsPerMessage?: number;
  /** The clock PING answers are budgeted by, in ms (default Date.now). */
  now?(): number;
}

/**
 * PINGs answered at once before the budget applies, and answers a second after that
 * (README "Control replies"). A peer that does not read its tunnel cannot make this side hold
 * more than the budget's replies, however many PINGs it sends; PINGs beyond it get no ACK.
 */
export const PING_ACK_BURST = 100;
export const PING_ACKS_PER_SECOND = 10;

/**
 * DATA payloads below this size are appended to the stream's DATA frame still waiting in the
 * outbox, up to GATHER_BYTES (README "Transport"): a body written in 1-byte chunks costs one
 * frame per GATHER_BYTES on the wire and in the outbox, not one per chunk.
 */
export const SMALL_DATA_BYTES = 1024;
export const GATHER_BYTES = 16 * 1024;

/**
 * The default stream handler. One shared function, not a fresh closure per stream: the bundler
 * names every closure at creation (keep_names), which cost microseconds per request.
 */
const ignore = (): void => {};

const EMPTY = new Uint8Array(0);

/**
 * A stream the session has forgotten lets go of its handlers. They close over the whole exchange
 * (the agent's ClientRequest and IncomingMessage and their buffers; the relay's response body),
 * and a Stream can stay reachable for V8's young-generation collections after its last event:
 * from any dead object in the old generation that pointed at it (see Stream.handle), which only a
 * full collection finds dead. Holding the handlers, it took every exchange into the old
 * generation (docs/performance.md "What each request leaves to the old generation"). Nothing is
 * delivered to a forgotten stream; a handler set later (a target answering after the stream
 * ended) stays.
 */
function dropHandlers(stream: Stream): void {
  stream.onHeaders = ignore;
  stream.onData = ignore;
  stream.onClose = ignore;
  stream.onEnd = ignore;
  stream.onReset = ignore;
}

/** A stream's handlers, for Stream.handle. */
export type StreamHandlers = Partial<Pick<Stream, "onHeaders" | "onData" | "onClose" | "onEnd" | "onReset">>;

/** One stream of a session. Handlers are set by whoever opened or accepted it, with handle(). */
export class Stream {
  status: StreamStatus = idleStatus();
  readonly sendWindow: SendWindow;
  readonly recvWindow: ReceiveWindow;
  /** Set once the stream has been reset or lost with its tunnel. */
  error?: StreamReset;

  /** The peer's HEADERS for this stream (the response head, for the relay). */
  onHeaders: (head: HeaderList, fin: boolean) => void = ignore;
  /** Body bytes (with the frame's EOM/TEXT flags on message streams); call `consumed(n)` once handed on. */
  onData: (chunk: Uint8Array, flags: number) => void = ignore;
  /** Message streams: the peer's CLOSE (its direction ended with a WebSocket close code). */
  onClose: (code: number, reason: string) => void = ignore;
  /** The peer's FIN: no more data will come. */
  onEnd: () => void = ignore;
  /** The stream was reset by the peer, or the tunnel closed under it. */
  onReset: (reset: StreamReset) => void = ignore;

  private writeTail: Promise<void> = Promise.resolve();

  /**
   * Sets the handlers `h` names. Handlers made per request are set through this, in an object
   * literal, never as `stream.onData = (chunk) => ...`: V8 allocates a function literal assigned
   * straight to a property in the old generation (its parser takes it for a method that will live
   * long). Such a closure is dead as soon as its request ends, but until the next full collection
   * its pointers into the young generation count as live for every young-generation collection,
   * so everything its scope holds (the stream, the exchange, their buffers) is kept and promoted:
   * about a kilobyte per request (docs/performance.md "Closures assigned to properties").
   */
  handle(h: StreamHandlers): void {
    if (h.onHeaders) this.onHeaders = h.onHeaders;
    if (h.onData) this.onData = h.onData;
    if (h.onClose) this.onClose = h.onClose;
    if (h.onEnd) this.onEnd = h.onEnd;
    if (h.onReset) this.onReset = h.onReset;
  }

  constructor(
    private readonly session: Session,
    readonly id: number,
    sendCredit: number,
    receiveWindow: number,
  ) {
    this.sendWindow = new SendWindow(sendCredit);
    this.recvWindow = new ReceiveWindow(receiveWindow);
  }

  get state(): StreamState {
    return this.status.state;
  }

  /** Sends this side's HEADERS (the request, or the response); `fin` when no body follows. */
  sendHeaders(head: HeaderList, fin = false): void {
    this.apply(StreamEvent.SendHeaders);
    if (fin) this.apply(StreamEvent.SendFin);
    this.session.queue(FrameType.Headers, fin ? Flag.FIN : 0, this.id, encodeHeaderBlock(head));
    if (fin) this.session.settle(this);
  }

  /**
   * Sends body bytes, waiting for credit as needed; writes are sent in call order. Rejects with
   * StreamReset when the stream ends first. The chunk must not be changed afterwards.
   */
  write(chunk: Uint8Array): Promise<void> {
    const run = this.writeTail.then(() => this.writeNow(chunk));
    this.writeTail = run.catch(() => {});
    return run;
  }

  /**
   * Message streams: sends one whole message (fragmented to the peer's maxFrame), after every
   * pending write, waiting for credit as needed.
   */
  writeMessage(data: Uint8Array, text: boolean): Promise<void> {
    const run = this.writeTail.then(() => this.writeNow(data, text ? Flag.TEXT : 0, Flag.EOM));
    this.writeTail = run.catch(() => {});
    return run;
  }

  /** Message streams: ends this side's direction with a WebSocket close code, after pending writes. */
  close(code: number, reason = ""): Promise<void> {
    const run = this.writeTail.then(() => {
      if (this.error) throw this.error;
      this.apply(StreamEvent.SendFin);
      this.session.queue(FrameType.Close, 0, this.id, encodeClose(code, reason));
      this.session.settle(this);
    });
    this.writeTail = run.catch(() => {});
    return run;
  }

  /**
   * Ends this side's direction (FIN) after every pending write; with `last`, FIN rides on the
   * DATA frame that carries its final bytes instead of an empty frame of its own.
   */
  end(last?: Uint8Array): Promise<void> {
    const run = this.writeTail.then(async () => {
      if (this.error) throw this.error;
      if (last?.byteLength) await this.writeNow(last, 0, Flag.FIN);
      else this.session.queue(FrameType.Data, Flag.FIN, this.id, EMPTY);
      this.apply(StreamEvent.SendFin);
      this.session.settle(this);
    });
    this.writeTail = run.catch(() => {});
    return run;
  }

  /**
   * Sends all of this side's body at once, FIN on its one DATA frame, right after the HEADERS.
   * Only for a chunk that the fresh send window and the peer's frame size take whole (Session.open
   * checks).
   */
  sendWhole(chunk: Uint8Array): void {
    this.apply(StreamEvent.SendData);
    this.sendWindow.consume(chunk.byteLength);
    this.session.queue(FrameType.Data, Flag.FIN, this.id, chunk);
    this.apply(StreamEvent.SendFin);
    this.session.settle(this);
  }

  /** Aborts both directions and tells the peer why. No-op on a closed stream. */
  reset(code: ErrorCode, message = ""): void {
    if (this.status.state === StreamState.Closed) return;
    this.apply(StreamEvent.SendRst);
    this.error = new StreamReset(code, message);
    this.session.queue(FrameType.RstStream, 0, this.id, encodeError(code, message));
    this.sendWindow.wake();
    this.session.settle(this);
  }

  /**
   * Records that `n` received bytes were handed on; sends credit back in batches, or all of it
   * at once with `all` (message streams, once a whole message was handed on).
   */
  consumed(n: number, all = false): void {
    if (this.status.state === StreamState.Closed) return;
    const credit = this.recvWindow.consumed(n, all);
    if (credit > 0 && this.status.state !== StreamState.HalfClosedRemote) this.session.queueCredit(this.id, credit);
  }

  /** True while this side may still send. */
  get writable(): boolean {
    const s = this.status.state;
    return s === StreamState.Open || s === StreamState.HalfClosedRemote;
  }

  private async writeNow(chunk: Uint8Array, flags = 0, lastFlags = 0): Promise<void> {
    let at = 0;
    if (chunk.byteLength === 0 && lastFlags) {
      if (this.error) throw this.error;
      this.apply(StreamEvent.SendData);
      this.session.queue(FrameType.Data, flags | lastFlags, this.id, chunk);
      return;
    }
    while (at < chunk.byteLength) {
      if (this.error) throw this.error;
      this.apply(StreamEvent.SendData);
      const credit = this.sendWindow.available;
      if (credit === 0) {
        await this.sendWindow.waitForCredit();
        continue;
      }
      const n = Math.min(credit, this.session.peerMaxFrame, chunk.byteLength - at);
      this.sendWindow.consume(n);
      at += n;
      this.session.queueData(this.id, at === chunk.byteLength ? flags | lastFlags : flags, chunk.subarray(at - n, at));
    }
  }

  /** Moves the state machine; used by the session for received frames too. */
  apply(event: StreamEvent): void {
    this.status = transition(this.status, event);
  }

  /** Ends the stream from outside (peer RST, tunnel gone) and tells the handler once. */
  fail(reset: StreamReset): void {
    if (this.status.state === StreamState.Closed && this.error) return;
    this.apply(StreamEvent.RecvRst);
    this.error = reset;
    this.sendWindow.wake();
    this.onReset(reset);
  }
}

/** A tunnel's multiplexer: frames in, frames out, streams in between. */
export class Session {
  readonly streams = new IdTable<Stream>();
  remoteHello?: Hello;
  /** The peer sent GOAWAY. */
  remoteGoingAway = false;
  /** We sent GOAWAY. */
  localGoingAway = false;
  closed = false;

  private nextId: number;
  private outbox: Frame[] = [];
  private outboxBytes = 0;
  /** HEADERS frames in the outbox. */
  private outboxHeads = 0;
  /** The outbox's one PING ACK: a later PING replaces its payload (only the latest needs answering). */
  private pendingPingAck?: Frame;
  /** The outbox's last frame when it is a small DATA frame that later small DATA may join. */
  private gathering?: { frame: Frame; buffer: Uint8Array; n: number };
  /** The outbox's WINDOW_UPDATE per stream, with its credit: later credit adds to it. */
  private pendingCredit = new IdTable<{ frame: Frame; credit: number }>();
  /** PING answers the budget still allows, and when it was last refilled. */
  private pingAcks = PING_ACK_BURST;
  private pingAcksAt = 0;
  private flushScheduled = false;
  /** The stream whose frame is being delivered to its handlers (see settle). */
  private dispatching?: Stream;
  private readonly schedule: (flush: () => void) => void;
  private readonly flushBound = () => this.flush();

  constructor(private readonly opts: SessionOptions) {
    this.remoteHello = opts.remoteHello;
    this.nextId = opts.firstStreamId ?? (opts.role === "relay" ? 1 : 2);
    if (this.nextId % 2 !== (opts.role === "relay" ? 1 : 0)) throw new Error(`stream id ${this.nextId} has the wrong parity`);
    // A macrotask, not a microtask: a write or end() runs a few promise hops after it is called, so
    // a microtask flush would send each one alone instead of one message per turn (README "Transport").
    this.schedule = opts.schedule ?? ((flush) => setTimeout(flush, 0));
  }

  /** Largest DATA payload the peer accepts. */
  get peerMaxFrame(): number {
    return this.remoteHello?.maxFrame ?? 16 * 1024;
  }

  /** Streams not yet closed. */
  get activeStreams(): number {
    return this.streams.size;
  }

  /** Whether this side can open streams now. */
  get ready(): boolean {
    return !!this.remoteHello && !this.closed && !this.remoteGoingAway && !this.localGoingAway;
  }

  /** Sends our HELLO. The agent calls this first; the relay once the agent's hello arrived. */
  sendHello(): void {
    this.queue(FrameType.Hello, 0, 0, encodeHello(this.opts.hello));
  }

  /**
   * Opens a stream with its HEADERS; `fin` when no body follows. With `body`, the whole of this
   * side's body: when it fits the peer's window and frame size it follows as one DATA frame with
   * FIN in the same turn (a small request is two frames in one message), else as end(body) does.
   */
  open(head: HeaderList, fin = false, body?: Uint8Array): Stream {
    if (!this.remoteHello) throw new Error("cannot open a stream before the peer's hello");
    if (this.closed) throw new StreamReset(ErrorCode.InternalError, "the tunnel is closed", true);
    let id = this.nextId;
    while (this.streams.has(id)) id = this.advance(id);
    this.nextId = this.advance(id);
    const stream = new Stream(this, id, this.remoteHello.window, this.opts.hello.window);
    this.streams.set(id, stream);
    stream.sendHeaders(head, fin);
    if (body && body.byteLength <= Math.min(this.remoteHello.window, this.peerMaxFrame)) stream.sendWhole(body);
    else if (body) stream.end(body).catch(() => {}); // a reset reaches onReset
    return stream;
  }

  /**
   * Re-creates a stream that was open before this session was rebuilt (a relay session after
   * hibernation, for an idle WebSocket): both heads were exchanged and both windows are full.
   */
  adopt(id: number, localEnded = false, remoteEnded = false): Stream {
    if (!this.remoteHello) throw new Error("cannot adopt a stream before the peer's hello");
    const stream = new Stream(this, id, this.remoteHello.window, this.opts.hello.window);
    stream.apply(StreamEvent.SendHeaders);
    stream.apply(StreamEvent.RecvHeaders);
    if (localEnded) stream.apply(StreamEvent.SendFin);
    if (remoteEnded) stream.apply(StreamEvent.RecvFin);
    this.streams.set(id, stream);
    return stream;
  }

  /** Tells the peer to open nothing new; in-flight streams go on. */
  goAway(code: ErrorCode = ErrorCode.NoError, reason = ""): void {
    if (this.localGoingAway) return;
    this.localGoingAway = true;
    this.queue(FrameType.GoAway, 0, 0, encodeError(code, reason));
  }

  /** Sends a PING with an 8-byte payload. */
  ping(payload: Uint8Array): void {
    this.queue(FrameType.Ping, 0, 0, payload);
  }

  /** Feeds one binary message from the transport. A protocol error ends the session. */
  receive(message: Uint8Array | ArrayBuffer): void {
    if (this.closed) return;
    const bytes = message instanceof Uint8Array ? message : new Uint8Array(message);
    try {
      for (const frame of decodeMessage(bytes, Math.max(this.opts.hello.maxFrame, 64 * 1024))) this.dispatch(frame);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.fail(err);
    }
  }

  /** Ends the session after a protocol error: streams fail, the owner closes the transport. */
  fail(error: ProtocolError): void {
    if (this.closed) return;
    this.destroy(`protocol error: ${error.message}`);
    this.opts.onError?.(error);
  }

  /** The transport closed: every stream fails with a tunnel-lost reset. */
  destroy(reason = "the tunnel closed"): void {
    if (this.closed) return;
    this.closed = true;
    this.dropOutbox();
    const streams = this.streams.values();
    this.streams.clear();
    for (const s of streams) {
      s.fail(new StreamReset(ErrorCode.Cancel, reason, true));
      dropHandlers(s);
    }
  }

  /** Queues a frame for the next coalesced message. */
  queue(type: FrameType, flags: number, streamId: number, payload: Uint8Array): Frame | undefined {
    if (this.closed) return undefined;
    const frame = { type, flags, streamId, payload };
    this.outbox.push(frame);
    // Frame headers count: many small frames weigh what they cost, not just their payloads.
    this.outboxBytes += HEADER_BYTES + payload.byteLength;
    this.queued(type);
    return frame;
  }

  /**
   * Queues DATA; a small payload without flags joins the stream's small DATA frame when that is
   * the outbox's last frame and has room (SMALL_DATA_BYTES, GATHER_BYTES).
   */
  queueData(streamId: number, flags: number, payload: Uint8Array): void {
    const n = payload.byteLength;
    const last = this.gathering;
    const limit = Math.min(GATHER_BYTES, this.peerMaxFrame);
    if (flags === 0 && last && last.frame.streamId === streamId && this.waiting(last.frame) && last.n + n <= limit) {
      // The buffer grows as bytes join: a frame flushed with a few bytes cost only a few.
      if (last.n + n > last.buffer.byteLength) {
        const bigger = new Uint8Array(Math.min(limit, Math.max(2 * last.buffer.byteLength, last.n + n)));
        bigger.set(last.buffer.subarray(0, last.n));
        last.buffer = bigger;
      }
      last.buffer.set(payload, last.n);
      last.n += n;
      last.frame.payload = last.buffer.subarray(0, last.n);
      this.outboxBytes += n;
      if (this.outboxBytes >= MAX_MESSAGE_BYTES) this.flush();
      return;
    }
    if (flags !== 0 || n >= SMALL_DATA_BYTES) {
      this.queue(FrameType.Data, flags, streamId, payload);
      return;
    }
    const buffer = new Uint8Array(Math.min(limit, Math.max(64, 2 * n)));
    buffer.set(payload);
    const frame = this.queue(FrameType.Data, 0, streamId, buffer.subarray(0, n));
    this.gathering = frame && this.waiting(frame) ? { frame, buffer, n } : undefined;
  }

  /**
   * Queues a WINDOW_UPDATE, or adds to the one already waiting for this stream: the outbox holds
   * at most one per stream, however often credit is returned in one turn.
   */
  queueCredit(streamId: number, credit: number): void {
    const pending = this.pendingCredit.get(streamId);
    if (pending) {
      pending.credit += credit;
      pending.frame.payload = encodeU32(pending.credit);
      return;
    }
    const frame = this.queue(FrameType.WindowUpdate, 0, streamId, encodeU32(credit));
    if (frame && this.waiting(frame)) this.pendingCredit.set(streamId, { frame, credit });
  }

  /**
   * Answers a PING within the budget. One ACK waits in the outbox at most, carrying the latest
   * payload; past the budget PINGs go unanswered, so a peer that never reads cannot make this
   * side hold replies in proportion to what it sends.
   */
  private answerPing(payload: Uint8Array): void {
    if (this.pendingPingAck) {
      this.pendingPingAck.payload = payload.slice();
      return;
    }
    const now = this.opts.now?.() ?? Date.now();
    this.pingAcks = Math.min(PING_ACK_BURST, this.pingAcks + ((now - this.pingAcksAt) * PING_ACKS_PER_SECOND) / 1000);
    this.pingAcksAt = now;
    if (this.pingAcks < 1) return;
    this.pingAcks -= 1;
    const frame = this.queue(FrameType.Ping, Flag.ACK, 0, payload.slice());
    if (frame && this.waiting(frame)) this.pendingPingAck = frame;
  }

  /** Whether a frame just queued still waits in the outbox (queue() may have flushed it). */
  private waiting(frame: Frame): boolean {
    return this.outbox[this.outbox.length - 1] === frame;
  }

  /** Flushes or schedules a flush after a frame of `type` was queued. */
  private queued(type: FrameType): void {
    if (this.outboxBytes >= MAX_MESSAGE_BYTES) return this.flush();
    if (type === FrameType.Headers && this.opts.headsPerMessage !== undefined) {
      if (++this.outboxHeads >= Math.max(this.opts.headsPerMessage, this.streams.size >> 2)) return this.flush();
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      if (type === FrameType.Headers && this.streams.size <= 1 && this.opts.scheduleAlone) this.opts.scheduleAlone(this.flushBound);
      else this.schedule(this.flushBound);
    }
  }

  /** Sends every queued frame now, coalesced into as few messages as the size cap allows. */
  flush(): void {
    // Also after a flush the size cap or headsPerMessage forced: frames queued next get a timer
    // of their own, later than the one still pending, so they gather into bigger messages than
    // the pending timer would send (docs/performance.md "Why the code is shaped this way").
    this.flushScheduled = false;
    if (this.closed || this.outbox.length === 0) return;
    const frames = this.outbox;
    this.dropOutbox();
    try {
      let start = 0;
      let bytes = 0;
      for (let i = 0; i < frames.length; i++) {
        const size = frames[i].payload.byteLength + 10;
        if (i > start && bytes + size > MAX_MESSAGE_BYTES) {
          this.sendMessage(frames.slice(start, i), bytes);
          start = i;
          bytes = 0;
        }
        bytes += size;
      }
      this.sendMessage(start === 0 ? frames : frames.slice(start), bytes);
    } catch (err) {
      // The transport is gone (e.g. a socket closed under us): its streams are lost.
      this.destroy(`the tunnel failed to send: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private sendMessage(frames: readonly Frame[], bytes: number): void {
    if (this.opts.sendFrames) this.opts.sendFrames(frames, bytes);
    else this.opts.send(encodeFrames(frames));
  }

  /** Empties the outbox and forgets the replies waiting in it. */
  private dropOutbox(): void {
    this.outbox = [];
    this.outboxBytes = 0;
    this.outboxHeads = 0;
    this.pendingPingAck = undefined;
    this.gathering = undefined;
    if (this.pendingCredit.size) this.pendingCredit.clear();
  }

  /** Forgets a stream once both directions are done. */
  settle(stream: Stream): void {
    if (stream.state !== StreamState.Closed) return;
    this.streams.delete(stream.id);
    // A stream closed by its own handler keeps its handlers until the frame's events are all
    // delivered (a target answering in onStream still hears the request's FIN): dispatchStream
    // drops them after.
    if (stream !== this.dispatching) dropHandlers(stream);
  }

  /**
   * Ends a stream the peer misused: its handler hears of it as a reset, the peer gets RST_STREAM
   * with the same code and message.
   */
  private abort(stream: Stream, code: ErrorCode, message: string): void {
    this.streams.delete(stream.id);
    stream.fail(new StreamReset(code, message));
    dropHandlers(stream);
    this.queue(FrameType.RstStream, 0, stream.id, encodeError(code, message));
  }

  private advance(id: number): number {
    const next = id + 2;
    return next > 0x7fffffff ? (this.opts.role === "relay" ? 1 : 2) : next;
  }

  private dispatch(frame: Frame): void {
    if (!this.remoteHello) {
      if (frame.type !== FrameType.Hello) throw new ProtocolError("the first frame must be HELLO", TunnelClose.BadHello);
      const hello = decodeHello(frame.payload);
      if (hello.v !== PROTOCOL_VERSION) {
        throw new ProtocolError(
          `protocol version ${hello.v} is not supported (this side speaks ${PROTOCOL_VERSION})`,
          TunnelClose.BadHello,
        );
      }
      this.remoteHello = hello;
      this.opts.onHello?.(hello);
      return;
    }
    switch (frame.type) {
      case FrameType.Hello:
        throw new ProtocolError("HELLO may be sent only once");
      case FrameType.Ping:
        if (frame.flags & Flag.ACK) this.opts.onPingAck?.(frame.payload);
        else this.answerPing(frame.payload);
        return;
      case FrameType.GoAway: {
        const { code, message } = decodeError(frame.payload);
        this.remoteGoingAway = true;
        this.opts.onGoAway?.(code, message);
        return;
      }
      default:
        return this.dispatchStream(frame);
    }
  }

  private dispatchStream(frame: Frame): void {
    // Restored after, should a handler make the session deliver another frame meanwhile.
    const outer = this.dispatching;
    this.dispatching = this.streams.get(frame.streamId);
    try {
      this.deliver(frame, this.dispatching);
    } finally {
      const delivered = this.dispatching;
      this.dispatching = outer;
      if (delivered?.state === StreamState.Closed && !this.streams.has(delivered.id)) dropHandlers(delivered);
    }
  }

  /** Delivers one stream frame's events to `found`, the stream it names, or opens the peer's new stream. */
  private deliver(frame: Frame, found: Stream | undefined): void {
    if (frame.type === FrameType.Data && frame.payload.byteLength > this.opts.hello.maxFrame) {
      throw new ProtocolError(`DATA payload of ${frame.payload.byteLength} bytes exceeds maxFrame ${this.opts.hello.maxFrame}`);
    }
    let stream = found;
    if (!stream) {
      const peerOpened = frame.streamId % 2 === (this.opts.role === "relay" ? 0 : 1);
      // Frames for a stream we already closed crossed our RST_STREAM: drop them.
      if (!peerOpened || frame.type !== FrameType.Headers) return;
      if (!this.opts.onStream) throw new ProtocolError(`the peer may not open streams (stream ${frame.streamId})`);
      stream = new Stream(this, frame.streamId, this.remoteHello!.window, this.opts.hello.window);
      this.streams.set(stream.id, stream);
      this.dispatching = stream;
      const fin = (frame.flags & Flag.FIN) !== 0;
      stream.apply(StreamEvent.RecvHeaders);
      if (fin) stream.apply(StreamEvent.RecvFin);
      this.opts.onStream(stream, decodeHeaderBlock(frame.payload), fin);
      if (fin) stream.onEnd();
      return;
    }
    const fin = (frame.flags & Flag.FIN) !== 0;
    switch (frame.type) {
      case FrameType.Headers:
        stream.apply(StreamEvent.RecvHeaders);
        if (fin) stream.apply(StreamEvent.RecvFin);
        stream.onHeaders(decodeHeaderBlock(frame.payload), fin);
        break;
      case FrameType.Data:
        stream.apply(StreamEvent.RecvData);
        if (frame.payload.byteLength > 0) {
          try {
            stream.recvWindow.receive(frame.payload.byteLength);
          } catch (err) {
            return this.abort(stream, ErrorCode.FlowControlError, (err as Error).message);
          }
          stream.onData(frame.payload, frame.flags);
        } else if (frame.flags & Flag.EOM) {
          stream.onData(frame.payload, frame.flags);
        }
        if (fin) stream.apply(StreamEvent.RecvFin);
        break;
      case FrameType.Close: {
        const { code, reason } = decodeClose(frame.payload);
        if (stream.onClose === ignore) {
          // CLOSE belongs to message streams only; on any other stream nobody reads it, and taking
          // it as a FIN would leave the receiver's reader (a public response body) waiting for
          // ever. The stream is reset both ways instead.
          return this.abort(stream, ErrorCode.ProtocolError, `CLOSE on stream ${stream.id}, which carries no messages`);
        }
        stream.apply(StreamEvent.RecvFin);
        stream.onClose(code, reason);
        this.settle(stream);
        return;
      }
      case FrameType.WindowUpdate: {
        const n = decodeU32(frame.payload);
        if (n === 0) throw new ProtocolError(`WINDOW_UPDATE of 0 on stream ${stream.id}`);
        stream.sendWindow.grant(n);
        return;
      }
      case FrameType.RstStream: {
        const { code, message } = decodeError(frame.payload);
        this.streams.delete(stream.id);
        stream.fail(new StreamReset(code, message));
        dropHandlers(stream);
        return;
      }
    }
    if (fin) stream.onEnd();
    this.settle(stream);
  }
}
