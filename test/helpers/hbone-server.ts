// An HBONE server for tests, on node:http2: HTTP/2 CONNECT over mutual TLS (TLS 1.3, ALPN h2),
// recording what each CONNECT carried (headers, SNI, TLS version, the client's SPIFFE IDs) and
// tunnelling to loopback targets only.
import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { uriSans } from "../../agent/hbone/identity.ts";
import type { Pki } from "./certs.ts";

export interface ConnectRecord {
  authority: string;
  headers: http2.IncomingHttpHeaders;
  sni: string | false;
  tls: string | null;
  clientIds: string[];
}

export interface HboneServer {
  port: number;
  connects: ConnectRecord[];
  /** TLS connections accepted. */
  sessions: number;
  /** Sends GOAWAY on every open connection: streams in flight go on, no new ones are taken. */
  goAway(): void;
  stop(): Promise<void>;
}

/** Starts the server on 127.0.0.1; `answer` may refuse a CONNECT with a status. */
export async function startHboneServer(pki: Pki, answer?: (authority: string) => number | undefined): Promise<HboneServer> {
  const connects: ConnectRecord[] = [];
  const state = { sessions: 0 };
  const server = http2.createSecureServer({
    key: pki.pem.serverKey,
    cert: pki.pem.serverCert,
    ca: pki.pem.ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: "TLSv1.3",
    ALPNProtocols: ["h2"],
    allowHTTP1: false,
    // Like ztunnel: windows wide enough that the proxy is not what limits a transfer.
    settings: { initialWindowSize: 4 * 1024 * 1024 },
  });
  const open = new Set<http2.ServerHttp2Session>();
  server.on("secureConnection", () => state.sessions++);
  server.on("session", (session) => {
    open.add(session);
    session.on("close", () => open.delete(session));
  });
  server.on("stream", (stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const authority = String(headers[":authority"] ?? "");
    connects.push({
      authority,
      headers,
      sni: (socket as unknown as { servername?: string | false })?.servername ?? false,
      tls: socket?.getProtocol() ?? null,
      clientIds: uriSans(socket?.getPeerCertificate()?.subjectaltname),
    });
    const refuse = (status: number) => {
      stream.respond({ ":status": status });
      stream.end();
    };
    if (headers[":method"] !== "CONNECT") return refuse(405);
    const status = answer?.(authority);
    if (status) return refuse(status);
    const m = /^(?:\[(.+)\]|([^:]+)):(\d+)$/.exec(authority);
    const host = m?.[1] ?? m?.[2];
    if (!m || !host || !["127.0.0.1", "::1", "localhost"].includes(host)) return refuse(403);
    const upstream = net.connect({ host, port: Number(m[3]), allowHalfOpen: true });
    let connected = false;
    upstream.on("connect", () => {
      connected = true;
      stream.respond({ ":status": 200 });
      stream.pipe(upstream);
      upstream.pipe(stream);
    });
    upstream.on("error", () => {
      if (!connected) return refuse(503);
      stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    });
    stream.on("error", () => upstream.destroy());
    stream.on("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connects,
    get sessions() {
      return state.sessions;
    },
    goAway: () => {
      for (const session of open) session.goaway();
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Pooled HTTP/2 connections from agents stay open otherwise.
        for (const session of open) session.destroy();
      }),
  };
}

/** A TCP pass-through that counts the connections it accepted (to count HTTP/2 connections). */
export async function countingProxy(toPort: number): Promise<{ port: number; accepted: () => number; stop(): void }> {
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    const upstream = net.connect(toPort, "127.0.0.1");
    client.pipe(upstream);
    upstream.pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted, stop: () => server.close() };
}
