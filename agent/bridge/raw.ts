// The built-in `raw` bridge plugin, the default: the request body goes to the TCP server as is,
// and what the server sends back is the response body (200, application/octet-stream) until it
// closes the connection or sends nothing for --bridge-idle.
import type { BridgePlugin } from "./plugin.ts";

const raw: BridgePlugin = {
  name: "raw",

  encodeHeaders(_request, ctx) {
    ctx.endOnIdle();
    return "continue";
  },

  encodeData(chunk, _endOfStream, ctx) {
    if (chunk.byteLength > 0) ctx.write(chunk);
    return "continue";
  },

  onUpstreamData(chunk, endOfStream, ctx) {
    if (!ctx.headersSent) ctx.sendHeaders(200, { "content-type": "application/octet-stream" });
    ctx.sendData(chunk);
    return endOfStream ? "end" : "continue";
  },
};

export default raw;
