// The Durable Object inside workerd, with the test playing the agent over the real protocol:
// a real WebSocket through the real Worker, a real Session, real frames.
import { runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { mintToken } from "../../src/auth.ts";
import { describe, expect, it } from "vitest";
import { FLOW_SUBPROTOCOL } from "../../src/client-flow.ts";
import { decodeMessage, encodeFrame, encodeFrames } from "../../src/protocol/codec.ts";
import {
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  ErrorCode,
  Flag,
  FrameType,
  MAX_WS_MESSAGE,
  type HeaderList,
  type Hello,
} from "../../src/protocol/frame.ts";
import { encodeResponseHead } from "../../src/protocol/head.ts";
import { GATHER_BYTES, PING_ACK_BURST, PING_ACKS_PER_SECOND, type Stream } from "../../src/protocol/session.ts";
import { concat } from "../../src/protocol/messages.ts";
import { CLIENT_PENDING_MESSAGES, CLIENT_TAG, OBJECT_BACKLOG_BYTES, type ClientAttachment } from "../../src/hub/public-websockets.ts";
import { RELAY_WINDOW, type TunnelAttachment } from "../../src/hub/tunnels.ts";
import {
  BASE,
  backendName,
  closeAgent,
  connectAgent,
  expectError,
  publicFetch,
  readyAgent,
  respond,
  roundTrip,
  stubFor,
  tapMessages,
  within,
  type TestAgent,
} from "../helpers/hub-agent.ts";
import { EVICTION_MS, evicted } from "../helpers/eviction.ts";

describe("hello exchange", () => {
  it("answers the agent's HELLO with v 1 and a tunnel id, and keeps the hello in the attachment", async () => {
    const backend = backendName();
    const agent = await connectAgent(backend, { hello: { caps: ["http", "x-test"], window: 512 * 1024 } });
    const hello = await within(agent.relayHello, "the relay's HELLO");
    expect(hello.v).toBe(1);
    expect(hello.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(hello.caps).toContain("http");

    const seen = await runInDurableObject(stubFor(backend), (_instance, state) => ({
      all: state.getWebSockets().length,
      tunnels: state
        .getWebSockets("tunnel")
        .map((ws) => ({ tags: state.getTags(ws), meta: ws.deserializeAttachment() as TunnelAttachment })),
    }));
    expect(seen.all).toBe(1);
    expect(seen.tunnels).toHaveLength(1);
    expect(seen.tunnels[0].tags).toContain("tunnel");
    const { meta } = seen.tunnels[0];
    expect(meta.backend).toBe(backend);
    expect(meta.tunnelId).toBe(hello.id);
    expect(meta.hello).toMatchObject({ v: 1, id: agent.hello.id, caps: ["http", "x-test"], window: 512 * 1024 });
    await closeAgent(agent);
  });
});

describe("relaying a request", () => {
  it("carries method, path, forwarding headers and body to the agent, and the response back", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const sent = "hello agent, ".repeat(1000);
    const pending = publicFetch(backend, "/x?y=1", {
      method: "POST",
      body: sent,
      headers: { "content-type": "text/plain", "x-custom": "abc", "cf-connecting-ip": "203.0.113.7", "x-relay-sneaky": "no" },
    });

    const req = await agent.next();
    expect(req.head.method).toBe("POST");
    expect(req.head.path).toBe("/x?y=1");
    expect(req.head.scheme).toBe("http");
    expect(req.head.authority).toBe("relay.test");
    const headers = new Map(req.head.headers);
    expect(headers.get("x-forwarded-proto")).toBe("http");
    expect(headers.get("x-forwarded-host")).toBe("relay.test");
    expect(headers.get("x-forwarded-for")).toBe("203.0.113.7");
    expect(headers.get("x-custom")).toBe("abc");
    expect(headers.get("content-type")).toBe("text/plain");
    expect([...headers.keys()].filter((n) => n.startsWith("x-relay-"))).toEqual([]);
    expect(new TextDecoder().decode(await within(req.body, "the request body"))).toBe(sent);

    await respond(
      req.stream,
      201,
      [
        ["content-type", "text/plain"],
        ["x-agent", "yes"],
        ["set-cookie", "a=1"],
        ["set-cookie", "b=2"],
      ],
      "created!",
    );
    const resp = await within(pending, "the public response");
    expect(resp.status).toBe(201);
    expect(resp.headers.get("x-agent")).toBe("yes");
    expect(resp.headers.get("content-type")).toBe("text/plain");
    // getSetCookie is in the runtime but not yet in this version of @cloudflare/workers-types.
    expect((resp.headers as Headers & { getSetCookie(): string[] }).getSetCookie()).toEqual(["a=1", "b=2"]);
    expect(await resp.text()).toBe("created!");
    await closeAgent(agent);
  });
  it("sends a small body with a Content-Length in its HEADERS' message, one DATA frame with FIN; a larger one streams", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const framesOf = (streamId: number) =>
      agent.messages
        .map((m) => decodeMessage(m, DEFAULT_MAX_FRAME).filter((f) => f.streamId === streamId))
        .filter((frames) => frames.length)
        .map((frames) => frames.map((f) => [f.type, f.flags & Flag.FIN, f.type === FrameType.Data ? f.payload.byteLength : 0]));

    const small = JSON.stringify({ hello: "agent", pad: "x".repeat(2000) });
    const pending = publicFetch(backend, "/small", { method: "POST", body: small, headers: { "content-type": "application/json" } });
    const req = await agent.next();
    expect(new Map(req.head.headers).get("content-length")).toBe(String(small.length));
    expect(new TextDecoder().decode(await within(req.body, "the small body"))).toBe(small);
    expect(framesOf(req.stream.id)).toEqual([
      [
        [FrameType.Headers, 0, 0],
        [FrameType.Data, Flag.FIN, small.length],
      ],
    ]);
    await respond(req.stream, 200, [], "ok");
    expect(await (await within(pending, "the small POST's response")).text()).toBe("ok");

    // Over SMALL_BODY_BYTES (64 KiB) the body streams as it is read, in several DATA frames.
    const large = new Uint8Array(200 * 1024).map((_, i) => i % 251);
    const pendingLarge = publicFetch(backend, "/large", { method: "POST", body: large });
    const big = await agent.next();
    const got = await within(big.body, "the large body");
    expect(got.byteLength).toBe(large.byteLength);
    expect(got.every((b, i) => b === large[i])).toBe(true);
    const frames = framesOf(big.stream.id);
    expect(frames[0][0]).toEqual([FrameType.Headers, 0, 0]);
    expect(frames.flat().filter(([type]) => type === FrameType.Data).length).toBeGreaterThan(1);
    await respond(big.stream, 200, [], "ok");
    expect(await (await within(pendingLarge, "the large POST's response")).text()).toBe("ok");
    await closeAgent(agent);
  });
});

describe("no agent", () => {
  it("answers 502 no_agent at once when no tunnel is connected", async () => {
    const backend = backendName();
    await expectError(await within(publicFetch(backend, "/a"), "the 502"), 502, "no_agent", backend);
  });

  it("answers 502 no_agent when the only tunnel sent GOAWAY", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    agent.session.goAway(ErrorCode.NoError, "draining");
    await roundTrip(agent);
    await expectError(await within(publicFetch(backend, "/a"), "the 502"), 502, "no_agent", backend);
    expect(agent.incoming).toHaveLength(0);
    await closeAgent(agent);
  });

  it("still answers 502 no_agent for a tunnel that sent GOAWAY after the object was evicted", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const backend = backendName();
    const stub = stubFor(backend);
    const agent = await readyAgent(backend);
    agent.session.goAway(ErrorCode.NoError, "draining");
    await roundTrip(agent);
    await evicted(stub);
    const meta = await runInDurableObject(
      stub,
      (_i, state) => state.getWebSockets("tunnel")[0].deserializeAttachment() as TunnelAttachment,
    );
    expect(meta.goingAway).toBe(true);
    await expectError(await within(publicFetch(backend, "/a"), "the 502"), 502, "no_agent", backend);
    expect(agent.incoming).toHaveLength(0);
    await closeAgent(agent);
  });
});

describe("hibernation", () => {
  it("routes over the same socket after eviction, rebuilding the tunnel from its attachment", {
    timeout: 20_000 + EVICTION_MS,
  }, async () => {
    const backend = backendName();
    const stub = stubFor(backend);
    const agent = await readyAgent(backend);

    // One request before eviction, its body read to the end (eviction waits on open bodies).
    const first = publicFetch(backend, "/before");
    await respond((await agent.next()).stream, 200, [], "one");
    expect(await (await first).text()).toBe("one");

    // A new instance (evicted checks it), which has rebuilt nothing yet: the socket is still there.
    await evicted(stub);
    const rebuilt = await runInDurableObject(stub, (instance, state) => ({
      tunnelsInMemory: (instance as unknown as { tunnels: Map<WebSocket, unknown> }).tunnels.size,
      sockets: state.getWebSockets("tunnel").length,
    }));
    expect(rebuilt).toEqual({ tunnelsInMemory: 0, sockets: 1 });

    const second = publicFetch(backend, "/after?z=2");
    const req = await agent.next();
    expect(req.head.path).toBe("/after?z=2");
    expect(req.stream.id % 2).toBe(1);
    await respond(req.stream, 200, [["x-after", "1"]], "two");
    const resp = await within(second, "the response after eviction");
    expect(resp.headers.get("x-after")).toBe("1");
    expect(await resp.text()).toBe("two");

    const after = await runInDurableObject(stub, (instance) => (instance as unknown as { tunnels: Map<WebSocket, unknown> }).tunnels.size);
    expect(after).toBe(1);
    await closeAgent(agent);
  });
});

describe("text messages", () => {
  it("answers the heartbeat ping with pong", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const answer = agent.nextText();
    agent.ws.send("ping");
    expect(await answer).toBe("pong");
    // The tunnel is still up and speaking the protocol.
    await roundTrip(agent);
    expect(agent.texts).toEqual(["pong"]);
    await closeAgent(agent);
  });

  it("closes the tunnel with 1002 on any other text message", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    agent.ws.send("hello?");
    const { code, reason } = await within(agent.closed, "the close");
    expect(code).toBe(1002);
    expect(reason).toMatch(/text/);
  });
});

describe("bad tunnels", () => {
  it("closes with 4400 when the first binary frame is not HELLO", async () => {
    const backend = backendName();
    const agent = await connectAgent(backend, { sendHello: false });
    agent.ws.send(encodeFrame({ type: FrameType.Ping, flags: 0, streamId: 0, payload: new Uint8Array(8) }));
    expect((await within(agent.closed, "the close")).code).toBe(4400);
  });

  it("closes with 4400 on a HELLO of another version", async () => {
    const backend = backendName();
    const agent = await connectAgent(backend, { hello: { v: 2 } });
    expect((await within(agent.closed, "the close")).code).toBe(4400);
  });

  it("closes with 1002 on garbage bytes, without touching other tunnels", async () => {
    const backend = backendName();
    const other = backendName();
    const good = await readyAgent(backend);
    const elsewhere = await readyAgent(other);
    const bad = await readyAgent(backend);

    bad.ws.send(new Uint8Array([0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0, 0, 0, 1, 0]));
    expect((await within(bad.closed, "the close")).code).toBe(1002);
    // The closed socket lingers in getWebSockets (CLOSING: this agent never answers the close):
    // it must not be chosen again.
    const states = await runInDurableObject(stubFor(backend), (_i, state) => state.getWebSockets("tunnel").map((ws) => ws.readyState));
    expect(states.sort()).toEqual([WebSocket.OPEN, WebSocket.CLOSING]);

    // Several requests in turn: with two equally loaded tunnels, each would pick the bad one half the time.
    for (const [agent, name] of [
      [good, backend],
      [good, backend],
      [good, backend],
      [good, backend],
      [elsewhere, other],
    ] as const) {
      const pending = publicFetch(name, "/still-ok");
      await respond((await agent.next()).stream, 200, [], name);
      expect(await (await within(pending, "a response")).text()).toBe(name);
    }
    expect(bad.incoming).toHaveLength(0);
    await closeAgent(good);
    await closeAgent(elsewhere);
  });
});

describe("bad hellos", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["a 60 KiB payload", { padding: "p".repeat(60 * 1024) }, /^hello of 61\d{3} bytes exceeds 4096$/],
    [
      "5,000 capabilities",
      { caps: Array.from({ length: 5000 }, (_, i) => `capability-${i}`) },
      /^hello caps has 5000 entries \(at most 32\)$/,
    ],
    ["100 capabilities", { caps: Array.from({ length: 100 }, (_, i) => `c${i}`) }, /^hello caps has 100 entries \(at most 32\)$/],
    ["maxFrame 1", { maxFrame: 1 }, /^hello maxFrame 1 is outside 16384\.\.1048576$/],
    ["window 0", { window: 0 }, /^hello window 0 is outside 16384\.\.16777216$/],
    ["a huge window", { window: 2 ** 31 - 1 }, /^hello window 2147483647 is outside 16384\.\.16777216$/],
  ])("closes a tunnel whose HELLO has %s with 4400 naming the field, and opens no stream on it", async (_name, change, reason) => {
    const backend = backendName();
    const agent = await connectAgent(backend, { hello: change as Partial<Hello> });
    const closed = await within(agent.closed, "the close");
    expect(closed.code).toBe(4400);
    expect(closed.reason).toMatch(reason);
    await expectError(await publicFetch(backend, "/"), 502, "no_agent", backend);
    expect(agent.incoming).toHaveLength(0);
  });
});

describe("bad response heads", () => {
  /** Answers with a head the agent has no business sending and the start of a body, leaving the stream open. */
  const badAnswer = (stream: Stream, status: number, headers: HeaderList) => {
    stream.sendHeaders(encodeResponseHead({ status, headers }));
    stream.write(new TextEncoder().encode("a body")).catch(() => {});
  };

  it.each<[string, number, HeaderList, RegExp]>([
    ["a space in a header name", 200, [["bad name", "v"]], /header name "bad name" is not a valid HTTP field name/],
    ["CR LF in a value", 200, [["x-a", "a\r\nset-cookie: evil=1"]], /value of header "x-a"/],
    ["NUL in a value", 200, [["x-a", "a\0b"]], /value of header "x-a"/],
    ["an empty header name", 200, [["", "v"]], /header name "" is not a valid HTTP field name/],
    ["a 200 KB value", 200, [["x-a", "v".repeat(200_000)]], /header block of \d+ bytes exceeds the limit of 65536/],
    ["status 150", 150, [], /status 150 is outside 200-599/],
    ["status 600", 600, [], /status 600 is outside 200-599/],
    ["status 999", 999, [], /status 999 is outside 200-599/],
    ["status 101 to a plain request", 101, [], /101 to a request that asked for no upgrade/],
  ])("answers %s with 502 protocol_error at once, resetting only that stream", async (_name, status, headers, reason) => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const pending = publicFetch(backend, "/bad");
    const incoming = await agent.next();
    // A GET's body already ended: the stream's reset is all that is left to see.
    const reset = new Promise((resolve) => (incoming.stream.onReset = resolve));
    badAnswer(incoming.stream, status, headers);
    const resp = await within(pending, "the 502", 1_000);
    expect(resp.status).toBe(502);
    const body = (await resp.json()) as { error: string; message: string; backend: string };
    expect(body).toMatchObject({ error: "protocol_error", backend });
    expect(body.message).toMatch(reason);
    // The relay reset that stream with PROTOCOL_ERROR; the tunnel carries the next request.
    expect(await within(reset, "the reset")).toMatchObject({ code: ErrorCode.ProtocolError });
    const next = publicFetch(backend, "/next");
    await respond((await agent.next()).stream, 200, [["x-ok", "yes"]], "fine");
    const ok = await within(next, "the next response");
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("fine");
    expect(agent.ws.readyState).toBe(WebSocket.OPEN);
    await closeAgent(agent);
  });
});

describe("streams that end before their response head", () => {
  it("answers 502 tunnel_lost when the tunnel closes under a waiting request", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const pending = publicFetch(backend, "/slow");
    await agent.next();
    agent.ws.close(1001, "agent going away");
    await expectError(await within(pending, "the 502"), 502, "tunnel_lost", backend);
  });

  it("answers 502 origin_unreachable when the agent resets with ORIGIN_UNREACHABLE", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const pending = publicFetch(backend, "/down");
    (await agent.next()).stream.reset(ErrorCode.OriginUnreachable, "connect ECONNREFUSED 127.0.0.1:9");
    await expectError(await within(pending, "the 502"), 502, "origin_unreachable", backend);
    await closeAgent(agent);
  });
});

describe("flow control", () => {
  it("streams several MiB of response body under credit, byte-exact", async () => {
    const backend = backendName();
    // Messages one at a time: the in-process client may reorder a burst (orderedSender).
    const agent = await readyAgent(backend, undefined, { ordered: true });
    const pending = publicFetch(backend, "/big");
    const { stream } = await agent.next();
    stream.sendHeaders(encodeResponseHead({ status: 200, headers: [["content-type", "application/octet-stream"]] }));

    const CHUNK = 192 * 1024;
    const CHUNKS = Math.ceil((3 * RELAY_WINDOW) / CHUNK); // three times the relay's window
    let sentSum = 0;
    // Counts the times the agent's writer had spent all its credit and waited for the relay's
    // WINDOW_UPDATE: with three windows to send it must, or the body did not go under credit.
    let stalls = 0;
    const waitForCredit = stream.sendWindow.waitForCredit.bind(stream.sendWindow);
    stream.sendWindow.waitForCredit = () => {
      stalls++;
      return waitForCredit();
    };
    const writing = (async () => {
      for (let i = 0; i < CHUNKS; i++) {
        const chunk = new Uint8Array(CHUNK);
        for (let j = 0; j < CHUNK; j += 97) chunk[j] = (i * 31 + j) & 0xff;
        for (let j = 0; j < CHUNK; j += 97) sentSum += chunk[j];
        await stream.write(chunk);
      }
      await stream.end();
    })();

    const resp = await within(pending, "the response head");
    expect(resp.status).toBe(200);
    const reader = resp.body!.getReader();
    let received = 0;
    let receivedSum = 0;
    for (;;) {
      const { done, value } = await within(reader.read(), "a body chunk");
      if (done) break;
      for (let j = 0; j < value.byteLength; j++) if (((received + j) % CHUNK) % 97 === 0) receivedSum += value[j];
      received += value.byteLength;
    }
    await within(writing, "the agent's writes");
    expect(received).toBe(CHUNK * CHUNKS);
    expect(receivedSum).toBe(sentSum);
    expect(stalls).toBeGreaterThan(0);
    await closeAgent(agent);
  });
});

describe("tunnel choice", () => {
  it("sends new requests to the less loaded tunnel", async () => {
    const backend = backendName();
    const a = await readyAgent(backend);
    const held = [publicFetch(backend, "/a1"), publicFetch(backend, "/a2"), publicFetch(backend, "/a3")];
    const onA = [await a.next(), await a.next(), await a.next()];

    const b = await readyAgent(backend);
    const more = [publicFetch(backend, "/b1"), publicFetch(backend, "/b2"), publicFetch(backend, "/b3")];
    const onB = [await b.next(), await b.next(), await b.next()];
    expect(onB.map((r) => r.head.path).sort()).toEqual(["/b1", "/b2", "/b3"]);
    expect(a.incoming).toHaveLength(3);

    for (const r of [...onA, ...onB]) await respond(r.stream, 200, [], r.head.path);
    const bodies = await Promise.all([...held, ...more].map(async (p) => (await within(p, "a response")).text()));
    expect(bodies).toEqual(["/a1", "/a2", "/a3", "/b1", "/b2", "/b3"]);
    await closeAgent(a);
    await closeAgent(b);
  });
});

/** Resolves once the agents together hold `n` streams (past or future). */
function streamsAt(agents: TestAgent[], n: number): Promise<void> {
  const total = () => agents.reduce((sum, a) => sum + a.incoming.length, 0);
  return within(
    new Promise<void>((resolve) => {
      const check = () => {
        if (total() < n) return;
        for (const a of agents) a.onIncoming = undefined;
        resolve();
      };
      for (const a of agents) a.onIncoming = check;
      check();
    }),
    `${n} streams at the agents`,
  );
}

describe("tunnel choice after eviction", () => {
  it("spreads requests over both rebuilt tunnels (3/3 with six requests held unanswered)", { timeout: 20_000 + EVICTION_MS }, async () => {
    const backend = backendName();
    const stub = stubFor(backend);
    const a = await readyAgent(backend);
    const b = await readyAgent(backend);
    const all = () => [...a.incoming, ...b.incoming];

    // Two requests before eviction, bodies read to the end (eviction waits on open bodies).
    for (let i = 1; i <= 2; i++) {
      const pending = publicFetch(backend, `/before${i}`);
      await streamsAt([a, b], i);
      await respond(all().find((r) => r.head.path === `/before${i}`)!.stream, 200, [], "ok");
      expect(await (await within(pending, "a response before eviction")).text()).toBe("ok");
    }
    const before = { a: a.incoming.length, b: b.incoming.length };
    await evicted(stub);
    const inMemory = await runInDurableObject(
      stub,
      (instance) => (instance as unknown as { tunnels: Map<WebSocket, unknown> }).tunnels.size,
    );
    expect(inMemory).toBe(0);

    // Six requests; neither agent answers until all six arrived, so each choice sees the load.
    const pending = Array.from({ length: 6 }, (_, i) => publicFetch(backend, `/after${i}`));
    await streamsAt([a, b], 8);
    const onA = a.incoming.slice(before.a);
    const onB = b.incoming.slice(before.b);
    expect([onA.length, onB.length]).toEqual([3, 3]);

    for (const r of [...onA, ...onB]) await respond(r.stream, 200, [], r.head.path);
    const bodies = await Promise.all(pending.map(async (p) => (await within(p, "a response after eviction")).text()));
    expect(bodies).toEqual(["/after0", "/after1", "/after2", "/after3", "/after4", "/after5"]);
    const rebuilt = await runInDurableObject(
      stub,
      (instance) => (instance as unknown as { tunnels: Map<WebSocket, unknown> }).tunnels.size,
    );
    expect(rebuilt).toBe(2);
    await closeAgent(a);
    await closeAgent(b);
  });
});

/** One whole WebSocket message as the in-test agent received it, with each DATA frame's flags. */
interface AgentMessage {
  data: Uint8Array;
  text: boolean;
  flags: number[];
}

/** Plays the agent's side of a message stream: records messages and CLOSE; credit back per message. */
function messageSide(stream: Stream) {
  const messages: AgentMessage[] = [];
  const waiters: Array<() => void> = [];
  let parts: Uint8Array[] = [];
  let flags: number[] = [];
  let onClose!: (c: { code: number; reason: string }) => void;
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (onClose = resolve));
  stream.onData = (chunk, f) => {
    parts.push(chunk.slice());
    flags.push(f);
    if (!(f & Flag.EOM)) return stream.consumed(chunk.byteLength);
    messages.push({ data: concat(parts), text: (f & Flag.TEXT) !== 0, flags });
    parts = [];
    flags = [];
    // README "Message streams": all credit back once a whole message was handed on.
    stream.consumed(chunk.byteLength, true);
    for (const w of waiters.splice(0)) w();
  };
  stream.onClose = (code, reason) => onClose({ code, reason });
  let taken = 0;
  const next = async (): Promise<AgentMessage> => {
    while (messages.length <= taken) await within(new Promise<void>((r) => waiters.push(r)), "a message at the agent");
    return messages[taken++];
  };
  return { messages, next, closed };
}

/** Collects what a public client WebSocket receives. */
function clientSide(ws: WebSocket) {
  const received: Array<string | ArrayBuffer> = [];
  const waiters: Array<() => void> = [];
  const events: string[] = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.addEventListener("close", (ev) => {
      events.push(`close ${ev.code}`);
      resolve({ code: ev.code, reason: ev.reason });
    }),
  );
  ws.addEventListener("error", () => events.push("error"));
  ws.addEventListener("message", (ev) => {
    received.push(ev.data as string | ArrayBuffer);
    for (const w of waiters.splice(0)) w();
  });
  let taken = 0;
  const next = async (): Promise<string | ArrayBuffer> => {
    while (received.length <= taken) await within(new Promise<void>((r) => waiters.push(r)), "a message at the client");
    return received[taken++];
  };
  return { next, closed, events };
}

/**
 * Sends a public WebSocket upgrade for `/ws` and has the agent answer `:status 101` (with
 * `chosen` as its subprotocol); resolves with the accepted client socket and both sides.
 */
async function publicSocket(agent: TestAgent, backend: string, opts: { offer?: string; chosen?: string } = {}) {
  const pending = publicFetch(backend, "/ws", {
    headers: { Upgrade: "websocket", ...(opts.offer ? { "Sec-WebSocket-Protocol": opts.offer } : {}) },
  });
  const req = await agent.next();
  expect(req.head.protocol).toBe("websocket");
  expect(req.head.path).toBe("/ws");
  const agentSide = messageSide(req.stream);
  req.stream.sendHeaders(encodeResponseHead({ status: 101, headers: opts.chosen ? [["sec-websocket-protocol", opts.chosen]] : [] }));
  const resp = await within(pending, "the 101");
  expect(resp.status).toBe(101);
  const ws = resp.webSocket!;
  expect(ws).toBeTruthy();
  ws.accept();
  ws.binaryType = "arraybuffer";
  return { req, resp, ws, agentSide, client: clientSide(ws) };
}

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (s: string) => new TextEncoder().encode(s);

describe("public WebSockets", () => {
  it("carries messages both ways, keeps working after eviction, and passes the client's close to the agent", {
    timeout: 20_000 + 2 * EVICTION_MS,
  }, async () => {
    const backend = backendName();
    const stub = stubFor(backend);
    const agent = await readyAgent(backend);
    const { req, ws, agentSide, client } = await publicSocket(agent, backend);
    expect(req.head.headers.filter(([n]) => n === "sec-websocket-key" || n === "sec-websocket-protocol")).toEqual([]);

    // Client -> agent: a text message has TEXT on its frame, a binary one not; both end with EOM.
    ws.send("héllo agent");
    const t = await agentSide.next();
    expect(t).toEqual({ data: text("héllo agent"), text: true, flags: [Flag.EOM | Flag.TEXT] });
    ws.send(bytes(0, 1, 2, 255));
    expect(await agentSide.next()).toEqual({ data: bytes(0, 1, 2, 255), text: false, flags: [Flag.EOM] });

    // Agent -> client: TEXT arrives as a string, binary as an ArrayBuffer.
    await req.stream.writeMessage(text("hello client ✓"), true);
    expect(await client.next()).toBe("hello client ✓");
    await req.stream.writeMessage(bytes(9, 8, 7, 0), false);
    const bin = await client.next();
    expect(bin).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(bin as ArrayBuffer)).toEqual(bytes(9, 8, 7, 0));

    // The idle stream has its full window on both sides (README "Message streams").
    await roundTrip(agent);
    expect(req.stream.sendWindow.available).toBe(RELAY_WINDOW);

    const evictions: Array<"client first" | "agent first"> = ["client first", "agent first"];
    for (const order of evictions) {
      await evicted(stub);
      const rebuilt = await runInDurableObject(stub, (instance, state) => ({
        tunnelsInMemory: (instance as unknown as { tunnels: Map<WebSocket, unknown> }).tunnels.size,
        clients: state.getWebSockets("client").map((c) => c.deserializeAttachment() as ClientAttachment),
      }));
      expect(rebuilt.tunnelsInMemory).toBe(0);
      expect(rebuilt.clients).toEqual([{ tunnelId: (await agent.relayHello).id, streamId: req.stream.id, backend, flow: false }]);

      // The relay rebuilds the stream from the client socket's attachment (session.adopt),
      // whichever side speaks first.
      const fromClient = async () => {
        ws.send(`from the client, ${order}`);
        expect(await agentSide.next()).toMatchObject({ data: text(`from the client, ${order}`), text: true });
      };
      const fromAgent = async () => {
        await req.stream.writeMessage(text(`from the agent, ${order}`), false);
        const got = await client.next();
        expect(new TextDecoder().decode(got as ArrayBuffer)).toBe(`from the agent, ${order}`);
      };
      if (order === "client first") {
        await fromClient();
        await fromAgent();
      } else {
        await fromAgent();
        await fromClient();
      }
    }
    expect(client.events).toEqual([]);

    // The client's close reaches the agent as CLOSE; the agent answers with its own.
    ws.close(1000, "client done");
    expect(await within(agentSide.closed, "the CLOSE at the agent")).toEqual({ code: 1000, reason: "client done" });
    expect((await within(client.closed, "the client's close")).code).toBe(1000);
    // The agent's direction is open until its own CLOSE: a message it sends now crosses the
    // relay's close. The relay drops it, and the tunnel (shared by other streams) stays up.
    await req.stream.writeMessage(text("crossing the close"), true);
    await req.stream.close(1000, "client done");
    await roundTrip(agent);
    expect(agent.session.streams.has(req.stream.id)).toBe(false);
    const after = publicFetch(backend, "/still-up");
    await respond((await agent.next()).stream, 200, [], "still up");
    expect(await (await within(after, "a response on the same tunnel")).text()).toBe("still up");
    await closeAgent(agent);
  });

  it("keeps the flow subprotocol between client and relay, answering it when the agent chose none", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);

    // Offered alone: not forwarded; the 101 carries it.
    const alone = await publicSocket(agent, backend, { offer: FLOW_SUBPROTOCOL });
    expect(alone.req.head.headers.filter(([n]) => n === "sec-websocket-protocol")).toEqual([]);
    expect(alone.resp.headers.get("sec-websocket-protocol")).toBe(FLOW_SUBPROTOCOL);
    // Flow control is on: credit for the client's data once it went up the tunnel...
    alone.ws.send(bytes(1, 2, 3, 4, 5));
    expect(await alone.agentSide.next()).toEqual({ data: bytes(1, 2, 3, 4, 5), text: false, flags: [Flag.EOM] });
    expect(await alone.client.next()).toBe("credit 5");
    // ...and the agent's credit comes back only once the client acknowledged the message.
    await alone.req.stream.writeMessage(new Uint8Array(1000), false);
    expect(((await alone.client.next()) as ArrayBuffer).byteLength).toBe(1000);
    await roundTrip(agent);
    expect(alone.req.stream.sendWindow.available).toBe(RELAY_WINDOW - 1000);
    const credit = alone.req.stream.sendWindow.waitForCredit();
    alone.ws.send("ack 1000");
    await within(credit, "the agent's credit after the client's ack");
    expect(alone.req.stream.sendWindow.available).toBe(RELAY_WINDOW);

    // Offered with the application's own: only those are forwarded.
    const mixed = await publicSocket(agent, backend, { offer: `chat.v1, ${FLOW_SUBPROTOCOL}, chat.v2` });
    expect(mixed.req.head.headers.filter(([n]) => n === "sec-websocket-protocol")).toEqual([
      ["sec-websocket-protocol", "chat.v1, chat.v2"],
    ]);
    expect(mixed.resp.headers.get("sec-websocket-protocol")).toBe(FLOW_SUBPROTOCOL);

    // The agent chose one of the application's: that is the answer, and flow control is off.
    const chosen = await publicSocket(agent, backend, { offer: `chat.v1, ${FLOW_SUBPROTOCOL}`, chosen: "chat.v1" });
    expect(chosen.resp.headers.get("sec-websocket-protocol")).toBe("chat.v1");
    chosen.ws.send("plain text goes up");
    expect(await chosen.agentSide.next()).toMatchObject({ data: text("plain text goes up"), text: true });
    const attachments = await runInDurableObject(stubFor(backend), (_i, state) =>
      state.getWebSockets("client").map((c) => (c.deserializeAttachment() as ClientAttachment).flow),
    );
    expect(attachments.sort()).toEqual([false, true, true]);

    for (const s of [alone, mixed, chosen]) s.ws.close(1000);
    await closeAgent(agent);
  });
});

describe("memory bounds (docs/limits.md, Memory)", () => {
  /** Every frame of `type` the relay sent this agent (optionally on one stream). */
  const relayFrames = (agent: TestAgent, type: FrameType, streamId?: number) =>
    agent.messages
      .flatMap((m) => decodeMessage(m, 1 << 30))
      .filter((f) => f.type === type && (streamId === undefined || f.streamId === streamId));

  // 65,536 chunks through the pool's in-process fetch: seconds on a loaded machine, hence the time.
  it("gathers a request body sent in 1-byte chunks into DATA frames of GATHER_BYTES, byte-exact", { timeout: 90_000 }, async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const n = 64 * 1024;
    const pattern = Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        for (let k = 0; k < 1000 && at < n; k++, at++) controller.enqueue(pattern.slice(at, at + 1));
        if (at >= n) controller.close();
      },
    });
    const pending = publicFetch(backend, "/upload", { method: "POST", body, duplex: "half" } as RequestInit);
    const req = await agent.next();
    expect(await within(req.body, "the whole body at the agent", 80_000)).toEqual(pattern);
    await respond(req.stream, 200, [], "ok");
    expect((await within(pending, "the response")).status).toBe(200);
    const data = relayFrames(agent, FrameType.Data, req.stream.id).filter((f) => f.payload.byteLength > 0);
    expect(data.every((f) => f.payload.byteLength <= GATHER_BYTES)).toBe(true);
    // Full frames of GATHER_BYTES, and shorter ones where a flush came between reads: never one per byte.
    expect(data.length).toBeLessThanOrEqual(n / 1024);
    await closeAgent(agent);
  });

  it("answers a flood of PINGs with at most one ACK per message and no more than the budget", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const started = Date.now();
    const ping = (i: number) => ({ type: FrameType.Ping, flags: 0, streamId: 0, payload: new Uint8Array(8).fill(i & 0xff) });
    // The flood's one ACK, carrying its last payload, before more PINGs could replace that payload
    // in the outbox (however the runtime spaces the relay's flushes between messages).
    const floodAck = new Promise<Uint8Array>((resolve) => (agent.onPingAck = resolve));
    agent.ws.send(encodeFrames(Array.from({ length: 1000 }, (_, i) => ping(i))));
    expect(await within(floodAck, "the flood's ACK")).toEqual(new Uint8Array(8).fill(999 & 0xff));
    agent.onPingAck = undefined;
    for (let i = 0; i < 3 * PING_ACK_BURST; i++) agent.ws.send(encodeFrame(ping(i)));
    // A request after the flood: once it reaches the agent, every PING before it was handled.
    const pending = publicFetch(backend, "/after-the-flood");
    await respond((await agent.next()).stream, 200, [], "still answering");
    expect(await (await within(pending, "a response after the flood")).text()).toBe("still answering");
    const acks = relayFrames(agent, FrameType.Ping).filter((f) => f.flags & Flag.ACK);
    expect(acks[0].payload).toEqual(new Uint8Array(8).fill(999 & 0xff));
    const seconds = (Date.now() - started) / 1000;
    expect(acks.length).toBeGreaterThan(1);
    expect(acks.length).toBeLessThanOrEqual(PING_ACK_BURST + Math.ceil(seconds * PING_ACKS_PER_SECOND) + 1);
    for (const m of agent.messages)
      expect(decodeMessage(m, 1 << 30).filter((f) => f.type === FrameType.Ping).length).toBeLessThanOrEqual(1);
    await closeAgent(agent);
  });

  it("carries one-byte client messages in order, and closes a client with 1013 past CLIENT_PENDING_MESSAGES waiting", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const { ws, agentSide, req } = await publicSocket(agent, backend);
    const n = 500;
    const tap = await tapMessages(stubFor(backend), CLIENT_TAG);
    const sent = Array.from({ length: n }, (_, i) => i & 0xff);
    for (const b of sent) ws.send(bytes(b));
    while (agentSide.messages.length < n) await agentSide.next();
    // The agent gets them in the order the object got them from the runtime, each once (the
    // in-process client may deliver a burst out of order; over TCP, test/e2e/websocket.test.ts).
    const taken = tap.taken.map((t) => t.bytes[0]);
    expect(agentSide.messages.map((m) => m.data[0])).toEqual(taken);
    expect([...taken].sort((x, y) => x - y)).toEqual([...sent].sort((x, y) => x - y));
    // Never more tunnel messages than client messages; a burst shares them (the session's outbox).
    const carrying = agent.messages.filter((m) =>
      decodeMessage(m, 1 << 30).some((f) => f.type === FrameType.Data && f.streamId === req.stream.id),
    );
    expect(carrying.length).toBeLessThanOrEqual(n);

    // An agent that returns no credit: a window's worth of one message, then 1-byte messages wait.
    const stalled = await publicSocket(agent, backend);
    stalled.req.stream.onData = () => {};
    const client = clientSide(stalled.ws);
    stalled.ws.send(new Uint8Array(DEFAULT_WINDOW));
    // The window's message first: the in-process client may hand a burst over out of order, and
    // 1-byte messages ahead of it would take the window, leaving too few waiting behind it.
    await tap.handled(n + 1, "the window's message");
    for (let i = 0; i <= CLIENT_PENDING_MESSAGES; i++) stalled.ws.send(bytes(1));
    const closed = await within(client.closed, "the stalled client's close", 90_000);
    expect(closed).toEqual({ code: 1013, reason: "the backend is not reading" });
    ws.close(1000);
    await closeAgent(agent);
  }, 120_000);

  it("closes the client that takes the object past OBJECT_BACKLOG_BYTES waiting with 1013, and only that one", async () => {
    const backend = backendName();
    const agent = await readyAgent(backend);
    const full = OBJECT_BACKLOG_BYTES / MAX_WS_MESSAGE;
    const sockets = [];
    for (let c = 0; c <= full; c++) {
      const s = await publicSocket(agent, backend);
      s.req.stream.onData = () => {};
      sockets.push({ ...s, watched: clientSide(s.ws) });
    }
    // Each of the first ones sends one largest message: the agent takes a window of it, the rest
    // waits for credit, and together they fill the object's backlog to the byte.
    for (const s of sockets.slice(0, full)) s.ws.send(new Uint8Array(MAX_WS_MESSAGE));
    const waiting = () =>
      runInDurableObject(stubFor(backend), (instance) => (instance as unknown as { clientBacklog: { bytes: number } }).clientBacklog.bytes);
    for (let tries = 0; (await waiting()) < OBJECT_BACKLOG_BYTES; tries++) {
      if (tries > 300) throw new Error(`only ${await waiting()} bytes wait in the object`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const last = sockets[full];
    last.ws.send(bytes(1));
    expect(await within(last.watched.closed, "the last client's close", 20_000)).toEqual({
      code: 1013,
      reason: "the relay holds too much for this backend",
    });
    for (const s of sockets.slice(0, full)) expect(s.watched.events).toEqual([]);
    for (const s of sockets.slice(0, full)) s.ws.close(1000);
    await closeAgent(agent);
  }, 120_000);
});

describe("limits (docs/limits.md)", () => {
  const limit = (name: "RELAY_MAX_TUNNELS" | "RELAY_MAX_STREAMS" | "RELAY_MAX_WEBSOCKETS") => Number(env[name]);

  it("refuses the connect past RELAY_MAX_TUNNELS with 429 too_many_tunnels, and takes one again once a tunnel closed", async () => {
    const backend = backendName();
    const max = limit("RELAY_MAX_TUNNELS");
    const agents = [];
    for (let i = 0; i < max; i++) agents.push(await readyAgent(backend));
    const connect = async () =>
      exports.default.fetch(`${BASE}/_relay/connect?backend=${backend}`, {
        headers: { Upgrade: "websocket", Authorization: `Bearer ${await mintToken(env.RELAY_SECRET, backend)}` },
      });
    const refused = await connect();
    await expectError(refused, 429, "too_many_tunnels", backend);
    await closeAgent(agents.pop()!);
    const again = await readyAgent(backend);
    // The tunnels still carry requests.
    const pending = publicFetch(backend, "/still");
    await streamsAt([...agents, again], 1);
    const req = [...agents, again].flatMap((a) => a.incoming)[0];
    await respond(req.stream, 200, [], "ok");
    expect(await (await within(pending, "the response")).text()).toBe("ok");
    for (const a of [...agents, again]) await closeAgent(a);
  });

  it("answers 503 too_many_streams when every tunnel carries RELAY_MAX_STREAMS, and uses a tunnel with room", async () => {
    const backend = backendName();
    const max = limit("RELAY_MAX_STREAMS");
    const a = await readyAgent(backend);
    const held = Array.from({ length: max }, (_, i) => publicFetch(backend, `/held${i}`));
    await streamsAt([a], max);
    await expectError(await within(publicFetch(backend, "/over"), "the refusal"), 503, "too_many_streams", backend);
    expect(a.incoming).toHaveLength(max);

    const b = await readyAgent(backend);
    const next = publicFetch(backend, "/roomy");
    const onB = await b.next();
    expect(onB.head.path).toBe("/roomy");
    await respond(onB.stream, 200, [], "b");
    expect(await (await within(next, "the response on b")).text()).toBe("b");
    for (const r of a.incoming) await respond(r.stream, 204);
    for (const resp of await within(Promise.all(held), "the held responses")) expect(resp.status).toBe(204);
    await closeAgent(a);
    await closeAgent(b);
  });

  it("counts upgrades the agent has not answered yet toward RELAY_MAX_WEBSOCKETS", async () => {
    const backend = backendName();
    const max = limit("RELAY_MAX_WEBSOCKETS");
    const agent = await readyAgent(backend);
    const upgrade = () => publicFetch(backend, "/ws", { headers: { Upgrade: "websocket" } });
    const waiting = Array.from({ length: max }, upgrade);
    await streamsAt([agent], max);
    await expectError(await within(upgrade(), "the refusal"), 503, "too_many_websockets", backend);
    expect(agent.incoming).toHaveLength(max);
    // Refused by the agent, they free their places: the next upgrade reaches it.
    for (const r of agent.incoming) await respond(r.stream, 403);
    for (const resp of await within(Promise.all(waiting), "the agent's refusals")) expect(resp.status).toBe(403);
    const again = upgrade();
    await streamsAt([agent], max + 1);
    await respond(agent.incoming[max].stream, 403);
    expect((await within(again, "the last refusal")).status).toBe(403);
    await closeAgent(agent);
  });

  it("answers a WebSocket upgrade past RELAY_MAX_WEBSOCKETS with 503 too_many_websockets, before the agent sees it", async () => {
    const backend = backendName();
    const max = limit("RELAY_MAX_WEBSOCKETS");
    const agent = await readyAgent(backend);
    const sockets = [];
    for (let i = 0; i < max; i++) sockets.push(await publicSocket(agent, backend));
    const over = await within(publicFetch(backend, "/ws", { headers: { Upgrade: "websocket" } }), "the refusal");
    await expectError(over, 503, "too_many_websockets", backend);
    expect(agent.incoming).toHaveLength(max);
    // The open ones are untouched, and plain requests still pass.
    sockets[0].ws.send(bytes(7));
    expect((await sockets[0].agentSide.next()).data).toEqual(bytes(7));
    const plain = publicFetch(backend, "/plain");
    const req = await agent.next();
    await respond(req.stream, 200, [], "plain");
    expect(await (await within(plain, "the plain response")).text()).toBe("plain");
    for (const s of sockets) s.ws.close(1000);
    await closeAgent(agent);
  });
});
