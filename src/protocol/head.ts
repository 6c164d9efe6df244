// Request and response heads as header lists with HTTP/2-style pseudo-fields (README "Header block").
import { ProtocolError, type HeaderList } from "./frame.ts";

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

/** Reads a response head; a missing or malformed :status is a protocol error. */
export function decodeResponseHead(list: HeaderList): ResponseHead {
  // No Map or second pass as for requests: a response head has one pseudo-field, and the relay
  // reads one per request. Unknown pseudo-fields are ignored.
  let status: string | undefined;
  let i = 0;
  for (; i < list.length && list[i][0].startsWith(":"); i++) if (list[i][0] === ":status") status = list[i][1];
  for (let j = i; j < list.length; j++) if (list[j][0].startsWith(":")) throw new ProtocolError("pseudo-fields must come before regular fields");
  const code = Number(status);
  if (!Number.isInteger(code) || code < 100 || code > 999) {
    throw new ProtocolError(`response head has a bad :status ${JSON.stringify(status)}`);
  }
  return { status: code, headers: i === 0 ? list : list.slice(i) };
}
