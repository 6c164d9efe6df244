// A bridge plugin written from scratch for a tiny length-prefixed protocol: every message is a
// 4-byte big-endian length, then that many bytes. An HTTP POST body becomes one request message;
// the server's one reply message becomes the 200 response body. docs/bridge-plugins.md explains it.
//
//   edge-relay agent ... --to bridge+tcp://127.0.0.1:7000 --bridge-plugin ./length-prefixed.ts
import type { BridgePlugin } from "../../agent/bridge/plugin.ts";

/** Largest message either way; anything bigger is refused before it is buffered whole. */
const MAX_MESSAGE = 1024 * 1024;

const lengthPrefixed: BridgePlugin = {
  name: "length-prefixed",

  // Only POST carries a message. A body we know is too big is refused before reading it.
  encodeHeaders(request, ctx) {
    if (request.method !== "POST") {
      ctx.respond(405, { allow: "POST", "content-type": "text/plain" }, "POST the message as the body.\n");
      return "end";
    }
    if (Number(request.header("content-length") ?? 0) > MAX_MESSAGE) {
      ctx.respond(413, { "content-type": "text/plain" }, `Messages are at most ${MAX_MESSAGE} bytes.\n`);
      return "end";
    }
    return "buffer"; // encodeData gets the whole body at once
  },

  // The whole body: frame it and send it. "end": the request is complete.
  encodeData(body, _endOfStream, ctx) {
    if (body.byteLength > MAX_MESSAGE) {
      ctx.respond(413, { "content-type": "text/plain" }, `Messages are at most ${MAX_MESSAGE} bytes.\n`);
      return "end";
    }
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, body.byteLength);
    ctx.write(header);
    ctx.write(body);
    return "end";
  },

  // TCP bytes so far (all of them, while we return "buffer"): answer once a whole message is in.
  onUpstreamData(bytes, endOfStream, ctx) {
    const length = bytes.byteLength >= 4 ? new DataView(bytes.buffer, bytes.byteOffset).getUint32(0) : undefined;
    if (length !== undefined && length > MAX_MESSAGE)
      throw new Error(`the server announced a ${length}-byte reply, over the ${MAX_MESSAGE}-byte limit`);
    if (length === undefined || bytes.byteLength < 4 + length) {
      if (endOfStream) throw new Error(`the server closed the connection after ${bytes.byteLength} bytes of a reply`);
      return "buffer";
    }
    ctx.respond(200, { "content-type": "application/octet-stream" }, bytes.slice(4, 4 + length));
    return "end";
  },
};

export default lengthPrefixed;
