// Wire constants of the tunnel protocol: frame types, flags, error codes, limits.
// Each name and value is specified in ./README.md; tests pin every one of them.
import type { AccessScope } from "../access/policy.ts";

/** Protocol version announced in HELLO. */
export const PROTOCOL_VERSION = 1;

/** Bytes in a frame header: type (u8), flags (u8), stream id (u32), length (u32). */
export const HEADER_BYTES = 10;

/** Frame types. */
export enum FrameType {
  /** Stream 0. UTF-8 JSON: version, software, id, capabilities, window, maxFrame. */
  Hello = 0x0,
  /** Opens a stream (the first on an id) or carries the response head: a header block. */
  Headers = 0x1,
  /** Body bytes; may be empty when it only carries FIN. */
  Data = 0x2,
  /** u32 credit increment for the stream's send window. */
  WindowUpdate = 0x3,
  /** u32 error code then a UTF-8 message: aborts both directions of the stream. */
  RstStream = 0x4,
  /** Stream 0. 8 opaque bytes; answered with ACK and the same bytes. */
  Ping = 0x5,
  /** Stream 0. u32 error code then a UTF-8 reason: no new streams on this tunnel. */
  GoAway = 0x6,
  /** Message streams: u16 WebSocket close code then a UTF-8 reason; ends the sender's direction. */
  Close = 0x7,
}

/** Frame flags. */
export const Flag = {
  /** The sender's last frame on this stream (half-close). HEADERS and DATA. */
  FIN: 0x01,
  /** This PING answers one with the same payload. */
  ACK: 0x02,
  /** Message streams: this DATA frame ends a message. */
  EOM: 0x04,
  /** Message streams: this DATA frame belongs to a text (UTF-8) message. */
  TEXT: 0x08,
} as const;

/** Flags each frame type may carry; any other bit is a protocol error. */
export const ALLOWED_FLAGS: Record<FrameType, number> = {
  [FrameType.Hello]: 0,
  [FrameType.Headers]: Flag.FIN,
  [FrameType.Data]: Flag.FIN | Flag.EOM | Flag.TEXT,
  [FrameType.WindowUpdate]: 0,
  [FrameType.RstStream]: 0,
  [FrameType.Ping]: Flag.ACK,
  [FrameType.GoAway]: 0,
  [FrameType.Close]: 0,
};

/** Error codes carried by RST_STREAM and GOAWAY. */
export enum ErrorCode {
  /** Clean end. */
  NoError = 0,
  /** The peer broke the spec. */
  ProtocolError = 1,
  /** The sender failed. */
  InternalError = 2,
  /** The peer sent more than its window. */
  FlowControlError = 3,
  /** A frame arrived for a stream the sender had closed. */
  StreamClosed = 4,
  /** The agent took no action on the stream (draining): safe to retry. */
  RefusedStream = 5,
  /** The public client or the backend went away. */
  Cancel = 6,
  /** The agent could not connect to its target. */
  OriginUnreachable = 7,
  /** The target broke the connection mid-response. */
  OriginReset = 8,
  /** The relay gave up waiting for the response headers. */
  Timeout = 9,
  /** A WebSocket message over the size limit (close code 1009). */
  MessageTooBig = 10,
  /** The agent's bridge plugin failed on this request (agent/bridge/; docs/targets.md, the bridge). */
  BridgeError = 11,
  /** The service mesh refused the agent (its certificate, or a 401/403 to CONNECT). */
  MeshDenied = 12,
  /** The mesh proxy's certificate carries none of the expected SPIFFE identities. */
  MeshIdentity = 13,
  /** The mesh proxy answered CONNECT with another status than 200, 401, 403 or 503. */
  MeshRefused = 14,
}

/** WebSocket close codes a tunnel ends with. */
export enum TunnelClose {
  /** Agent shutdown or relay drain. */
  Normal = 1000,
  /** The peer broke the spec; the reason says which. */
  ProtocolError = 1002,
  /** The sender failed internally. */
  InternalError = 1011,
  /** Missing or unsupported hello. */
  BadHello = 4400,
  /** The relay revoked the tunnel's token: reconnecting with it is refused (401 token_revoked). */
  TokenRevoked = 4401,
}

/** Largest WebSocket message carried on a message stream (README "Message streams"). */
export const MAX_WS_MESSAGE = 16 * 1024 * 1024;

/** Largest header block a receiver accepts; a larger HEADERS frame is a protocol error. */
export const MAX_HEADER_BLOCK = 256 * 1024;
/**
 * Largest header block a sender builds for a request or response head, well under
 * MAX_HEADER_BLOCK: the relay answers a larger public request 431, the agent a larger backend
 * response 502, so no public input or backend answer can reach the other side as a protocol error.
 */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Most fields (pseudo-fields included) a sender puts in one head; checked with MAX_HEAD_BYTES. */
export const MAX_HEAD_FIELDS = 1000;

/** Largest HELLO payload a receiver accepts (close code 4400 beyond it), not counting `access`. */
export const MAX_HELLO_BYTES = 4 * 1024;
/** Most entries in a hello's `caps` and `targetProtocols`. */
export const MAX_HELLO_LIST = 32;
/** Longest string in a hello (`software`, `id`, each capability and target protocol). */
export const MAX_HELLO_STRING = 256;
/** Bounds of a hello's `window`: smaller costs a WINDOW_UPDATE every few frames, larger unbounded buffers. */
export const MIN_WINDOW = 16 * 1024;
export const MAX_WINDOW = 16 * 1024 * 1024;
/** Bounds of a hello's `maxFrame`: smaller costs a frame header and a dispatch every few bytes. */
export const MIN_MAX_FRAME = 16 * 1024;
export const MAX_MAX_FRAME = 1024 * 1024;
/** Largest WebSocket message a sender builds when coalescing frames. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;
/** Default initial receive window per stream. */
export const DEFAULT_WINDOW = 1024 * 1024;
/** Default largest DATA payload a receiver accepts. */
export const DEFAULT_MAX_FRAME = 256 * 1024;
/** Text heartbeat the agent sends and the relay's auto-response answers. */
export const HEARTBEAT_PING = "ping";
export const HEARTBEAT_PONG = "pong";

/** One decoded frame. `payload` may be a view into the message it came from. */
export interface Frame {
  type: FrameType;
  flags: number;
  streamId: number;
  payload: Uint8Array;
}

/** What each side announces in HELLO. */
export interface Hello {
  v: number;
  software: string;
  id: string;
  caps: string[];
  window: number;
  maxFrame: number;
  /** Agent: public requests must carry an access token for this backend. */
  requireAccess?: boolean;
  /** Agent: what its target speaks, e.g. ["h2"], ["http/1.1"], ["hbone", "http/1.1"], ["tcp"]. */
  targetProtocols?: string[];
  /** Agent: the visitor access policies of each of its rules of this backend (docs/access.md). */
  access?: AccessScope[];
}

/** An ordered list of header fields, pseudo-fields (":method", ":status") first. */
export type HeaderList = Array<[name: string, value: string]>;

/** A violation of the spec: ends the tunnel with close code 1002 (or `closeCode`). */
export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly closeCode: number = TunnelClose.ProtocolError,
  ) {
    super(message);
    this.name = "ProtocolError";
  }
}
