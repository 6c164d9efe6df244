// Request and response heads as header lists with HTTP/2-style pseudo-fields (README "Header block").
import { headerBlockSize } from "./codec.ts";
import { MAX_HEAD_BYTES, MAX_HEAD_FIELDS, ProtocolError, type HeaderList } from "./frame.ts";

/** A tunnelled request's head. */
export interface RequestHead {
  method: string;
  /** Path and query exactly as the public client sent them (after the /r/<name> prefix). */
  path: string;
  scheme: string;
  authority: string;
  /** "websocket" for a WebSocket upgrade (README "Message streams"), else absent. */
  protocol?: string;
  /** Regular fields, in order; repeated names repeat. */
  headers: HeaderList;
}

/** A tunnelled response's head. */
export interface ResponseHead {
  status: number;
  headers: HeaderList;
}

/** Builds the header list for a request head. */
export function encodeRequestHead(head: RequestHead): HeaderList {
  return [
    [":method", head.method],
    [":path", head.path],
    [":scheme", head.scheme],
    [":authority", head.authority],
    ...(head.protocol ? ([[":protocol", head.protocol]] as HeaderList) : []),
    ...head.headers,
  ];
}

/** Builds the header list for a response head. */
export function encodeResponseHead(head: ResponseHead): HeaderList {
  return [[":status", String(head.status)], ...head.headers];
}

function split(list: HeaderList): { pseudo: Map<string, string>; headers: HeaderList } {
  const pseudo = new Map<string, string>();
  let i = 0;
  for (; i < list.length && list[i][0].startsWith(":"); i++) pseudo.set(list[i][0], list[i][1]);
  const headers = list.slice(i);
  for (const [name] of headers) if (name.startsWith(":")) throw new ProtocolError("pseudo-fields must come before regular fields");
  return { pseudo, headers };
}

/** A pseudo-field every request head must carry. */
function required(pseudo: Map<string, string>, name: string): string {
  const v = pseudo.get(name);
  if (v === undefined) throw new ProtocolError(`request head lacks ${name}`);
  return v;
}

/** Reads a request head; missing pseudo-fields are a protocol error. */
export function decodeRequestHead(list: HeaderList): RequestHead {
  const { pseudo, headers } = split(list);
  const head: RequestHead = {
    method: required(pseudo, ":method"),
    path: required(pseudo, ":path"),
    scheme: required(pseudo, ":scheme"),
    authority: required(pseudo, ":authority"),
    headers,
  };
  const protocol = pseudo.get(":protocol");
  if (protocol !== undefined) head.protocol = protocol;
  return head;
}

/**
 * Why a head of these fields must not be sent (over MAX_HEAD_FIELDS fields or MAX_HEAD_BYTES
 * encoded), or undefined when it fits. A usual head is judged from its string lengths alone:
 * no UTF-8 char takes more than three bytes per UTF-16 unit.
 */
export function headSizeProblem(fields: HeaderList): string | undefined {
  if (fields.length > MAX_HEAD_FIELDS) return `${fields.length} header fields exceed the limit of ${MAX_HEAD_FIELDS}`;
  let chars = 0;
  for (let i = 0; i < fields.length; i++) chars += fields[i][0].length + fields[i][1].length;
  if (2 + 6 * fields.length + 3 * chars <= MAX_HEAD_BYTES) return undefined;
  const bytes = headerBlockSize(fields);
  return bytes > MAX_HEAD_BYTES ? `the header block of ${bytes} bytes exceeds the limit of ${MAX_HEAD_BYTES}` : undefined;
}

/** Chars of an HTTP field name, an RFC 9110 token: 1 at their char code. */
const TOKEN = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[c.charCodeAt(0)] = 1;

/** Whether `name` is an RFC 9110 token (never empty). A char loop: the relay checks every response field. */
function isFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] === 0) return false;
  }
  return true;
}

/** Whether `value` holds only visible ASCII, space, tab and obs-text (0x80-0xFF): never CR, LF or NUL (RFC 9110 5.5). */
function isFieldValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}

/**
 * Why a response head cannot be relayed to a public client, or undefined when it can: a status
 * outside 200-599 (101 too, which only an upgrade may answer: the relay checks that), a field
 * name or value HTTP does not allow, or a head over MAX_HEAD_FIELDS / MAX_HEAD_BYTES. Both sides
 * apply it: the agent answers such a backend response 502 itself, the relay resets the stream.
 */
export function responseHeadProblem(status: number, headers: HeaderList): string | undefined {
  if (!Number.isInteger(status) || ((status < 200 || status > 599) && status !== 101)) return `status ${status} is outside 200-599`;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    if (!isFieldName(name)) return `the header name ${JSON.stringify(name.slice(0, 40))} is not a valid HTTP field name`;
    if (!isFieldValue(value)) return `the value of header "${name}" holds a character HTTP does not allow`;
  }
  return headSizeProblem(headers);
}

/**
 * Reads a response head; a missing or malformed :status, or a head responseHeadProblem refuses,
 * is a protocol error (of the stream: the caller resets it).
 */
export function decodeResponseHead(list: HeaderList): ResponseHead {
  // No Map or second pass as for requests: a response head has one pseudo-field, and the relay
  // reads one per request. Unknown pseudo-fields are ignored.
  let status: string | undefined;
  let i = 0;
  for (; i < list.length && list[i][0].startsWith(":"); i++) if (list[i][0] === ":status") status = list[i][1];
  const headers = i === 0 ? list : list.slice(i);
  for (let j = 0; j < headers.length; j++)
    if (headers[j][0].startsWith(":")) throw new ProtocolError("pseudo-fields must come before regular fields");
  if (status === undefined || !/^\d{3}$/.test(status)) throw new ProtocolError(`response head has a bad :status ${JSON.stringify(status)}`);
  const code = Number(status);
  const problem = responseHeadProblem(code, headers);
  if (problem) throw new ProtocolError(`response head: ${problem}`);
  return { status: code, headers };
}
