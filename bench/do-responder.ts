// What the bench's Durable Object answers itself for `/_relay/bench/<name>/...`, with no tunnel:
// the cost the platform itself imposes (`npm run bench`, row do-ceiling; bench/worker.ts).

/** The small body the bench's backend and this responder both answer. */
export const BENCH_SMALL_BODY = "hello from edge-relay\n";

const BLOCK_BYTES = 64 * 1024;
let block: Uint8Array | undefined;

/** The bench's deterministic byte pattern (the same as test/helpers/backend.ts patternBlock). */
function patternBlock(): Uint8Array {
  if (block) return block;
  block = new Uint8Array(BLOCK_BYTES);
  let x = 0x12345678;
  for (let i = 0; i < BLOCK_BYTES; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    block[i] = x >>> 24;
  }
  return block;
}

const instances = new WeakMap<object, string>();

/**
 * Answers like the bench's backend: `/bytes?n=N` streams N pattern bytes, a request with a body
 * answers `{length, sha256}` of it, anything else the small body. `/instance` answers an id of
 * the Durable Object instance `owner`, `/ws-echo` upgrades to a WebSocket that echoes every message.
 */
export async function benchResponse(request: Request, path: string, owner: object): Promise<Response> {
  const url = new URL(path, "http://bench");
  // An id per object instance: it changes when the object was evicted (hibernated) and rebuilt.
  if (url.pathname === "/instance") {
    if (!instances.has(owner)) instances.set(owner, crypto.randomUUID());
    return new Response(instances.get(owner));
  }
  if (url.pathname === "/ws-echo" && request.headers.get("upgrade") === "websocket") return webSocketEcho();
  if (request.body) {
    // Typed by hand: bench/backend.ts imports this file under the agent's tsconfig, which lacks workers-types.
    const { DigestStream } = crypto as unknown as {
      DigestStream: new (algorithm: string) => WritableStream<Uint8Array> & { digest: Promise<ArrayBuffer> };
    };
    const digest = new DigestStream("SHA-256");
    const writer = digest.getWriter();
    let length = 0;
    // Large reads, as the relay's own request bodies do (src/hub/bodies.ts ChunkReader).
    const reader = request.body.getReader({ mode: "byob" });
    let buffer = new ArrayBuffer(BLOCK_BYTES);
    for (;;) {
      const { done, value } = await reader.read(new Uint8Array(buffer));
      if (done) break;
      length += value.byteLength;
      await writer.write(value);
      buffer = value.buffer as ArrayBuffer;
    }
    await writer.close();
    const sha256 = [...new Uint8Array(await digest.digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
    return Response.json({ length, sha256 });
  }
  if (url.pathname === "/bytes") {
    const n = Number(url.searchParams.get("n") ?? 0);
    const pattern = patternBlock();
    let left = n;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (left <= 0) return controller.close();
          const size = Math.min(left, BLOCK_BYTES);
          controller.enqueue(pattern.slice(0, size));
          left -= size;
        },
      },
      { highWaterMark: 0 },
    );
    const headers = { "content-type": "application/octet-stream", "content-length": String(n) };
    return new Response(body, { headers, encodeBody: "manual" } as ResponseInit);
  }
  return new Response(BENCH_SMALL_BODY, { headers: { "content-type": "text/plain" } });
}

/** The little of a workerd WebSocket the echo uses, typed by hand (see above). */
interface EchoSocket {
  binaryType: string;
  accept(): void;
  send(data: string | ArrayBuffer): void;
  close(code?: number): void;
  addEventListener(type: "message", listener: (event: { data: string | ArrayBuffer }) => void): void;
  addEventListener(type: "close", listener: (event: { code: number }) => void): void;
}

/**
 * A WebSocket the object echoes every message back on, with no tunnel and no relay code: what
 * workerd itself costs to take a message in and send it out (bench/stream-pairs.ts, `ws-ceiling`).
 */
function webSocketEcho(): Response {
  const { WebSocketPair } = globalThis as unknown as { WebSocketPair: new () => { 0: EchoSocket; 1: EchoSocket } };
  const pair = new WebSocketPair();
  const server = pair[1];
  server.accept();
  // As the relay's hibernatable sockets receive them (the compatibility date makes Blob the default).
  server.binaryType = "arraybuffer";
  server.addEventListener("message", (event) => server.send(event.data));
  server.addEventListener("close", (event) => server.close(event.code === 1005 ? 1000 : event.code));
  return new Response(null, { status: 101, webSocket: pair[0] } as ResponseInit);
}
