// The relay of one public request: checks that it can go (an agent, access, head size, limits),
// then makes attempts over the backend's tunnels as src/hub/attempts.ts allows.
import type { Env } from "../env.ts";
import { RelayError } from "../errors.ts";
import type { HubRoute } from "../hub-route.ts";
import { DEFAULT_WINDOW, ErrorCode, type HeaderList } from "../protocol/frame.ts";
import { headSizeProblem } from "../protocol/head.ts";
import type { StreamReset } from "../protocol/session.ts";
import { Admission, allOpen, withUser } from "./access-gate.ts";
import { NO_FAILURES, chooseTunnel, isRepeatable, retryAfter } from "./attempts.ts";
import { RequestBody, isSmallBody } from "./bodies.ts";
import { Deadlines } from "./deadlines.ts";
import { limitsOf, tooManyStreams, tooManyWebSockets, type Limits } from "./limits.ts";
import { CLIENT_TAG, acceptClient } from "./public-websockets.ts";
import { readWhole, requestHead } from "./request-head.ts";
import { ResponseAssembly, type MessageTurn } from "./response.ts";
import type { TunnelRegistry } from "./tunnel-registry.ts";
import type { Tunnel } from "./tunnels.ts";

const DEFAULT_TIMEOUT_SECONDS = 100;

/** What the relay of a request uses of its Durable Object. */
export interface RelayHub {
  ctx: DurableObjectState;
  env: Env;
  tunnels: TunnelRegistry;
  turn: MessageTurn;
  /** The shared response-head timer for a timeout of `seconds`. */
  deadlines(seconds: number): Deadlines;
  /** WebSocket upgrades sent to an agent and not yet answered: they count toward the limit. */
  upgrading: number;
}

/** Keeps one Deadlines for the response timeout (a var: the same for every request). */
export function deadlinesKeeper(): (seconds: number) => Deadlines {
  let deadlines: Deadlines | undefined;
  return (seconds) => {
    if (deadlines?.ms !== seconds * 1000) deadlines = new Deadlines(seconds * 1000);
    return deadlines;
  };
}

/**
 * Relays one public request over the least-loaded tunnel. An attempt that fails before the
 * response head is tried again on another tunnel when that cannot duplicate work
 * (src/hub/attempts.ts, docs/architecture.md "High availability").
 */
export function relayRequest(request: Request, route: HubRoute, hub: RelayHub): Promise<Response> {
  try {
    const tunnels = hub.tunnels.all();
    // No tunnel: answered before the head is built or the body read, so a storm of requests
    // for a backend whose agent is away costs each one a lookup and nothing it could wait on.
    if (tunnels.length === 0) return Promise.resolve(noAgent(route.backend));
    // Tunnels without access policies admit every request: no check, and no promise waited on
    // for one, for what nearly every request is. (In the object every promise between the
    // request and its answer costs a turn of the microtask queue: none is added without need.)
    if (allOpen(tunnels)) return relayAdmitted(request, route, hub, tunnels);
    return admitThenRelay(request, route, hub, tunnels);
  } catch (err) {
    return Promise.reject(err);
  }
}

/** Access policies: only the tunnels whose own policies admit the request may carry it. */
async function admitThenRelay(request: Request, route: HubRoute, hub: RelayHub, tunnels: Tunnel[]): Promise<Response> {
  const admission = new Admission(request, route, hub.tunnels, hub.env.RELAY_SECRET);
  const admitted = await admission.admitted(tunnels);
  if (admitted.length === 0) return admission.refused() ?? noAgent(route.backend);
  return relayAdmitted(request, route, hub, admitted, admission);
}

/** Relays a request to the tunnels that admitted it; `admission` when policies were checked. May throw. */
function relayAdmitted(request: Request, route: HubRoute, hub: RelayHub, admitted: Tunnel[], admission?: Admission): Promise<Response> {
  const { backend } = route;
  const { head, upgrade, flow, idempotencyKey, contentLength } = requestHead(request, route);
  // Refused here, before any frame: a head the agent could not accept would end the whole tunnel.
  const tooLarge = headSizeProblem(head);
  if (tooLarge) {
    return Promise.resolve(
      new RelayError(
        "request_header_fields_too_large",
        `The request's head cannot be relayed: ${tooLarge} (path, Host and headers together).`,
        backend,
      ).toResponse(),
    );
  }
  const limits = limitsOf(hub.env);
  const ready: Ready = {
    head,
    flow,
    contentLength,
    repeatable: isRepeatable(request.method, idempotencyKey),
    tunnels: admitted,
    admission,
    limits,
  };
  if (!upgrade) return attempt(request, route, hub, ready);
  if (hub.tunnels.openSockets(CLIENT_TAG) + hub.upgrading >= limits.websockets)
    return Promise.resolve(tooManyWebSockets(backend, limits.websockets).toResponse());
  hub.upgrading++;
  return attempt(request, route, hub, ready, true).finally(() => hub.upgrading--);
}

/** A request that passed the checks: its head, and the tunnels and limits it found. */
interface Ready {
  head: HeaderList;
  flow: boolean;
  contentLength?: string;
  repeatable: boolean;
  /** The tunnels whose access policies admitted the request. */
  tunnels: Tunnel[];
  /** The access check, when tunnels had policies; a retry makes one for the tunnels that connected meanwhile. */
  admission?: Admission;
  limits: Limits;
}

/** Sends the request over a tunnel, and again on another as src/hub/attempts.ts allows. */
async function attempt(request: Request, route: HubRoute, hub: RelayHub, ready: Ready, upgrade = false): Promise<Response> {
  const { backend } = route;
  const { head, flow, contentLength, repeatable, tunnels, limits } = ready;
  let admission = ready.admission;
  // A small body is read whole and goes with the HEADERS; any other streams under credit.
  const raw = upgrade ? null : request.body;
  const whole = raw && isSmallBody(contentLength) ? await readWhole(request, backend) : undefined;
  if (whole instanceof RelayError) return whole.toResponse();
  const body = raw && !whole ? new RequestBody(raw, DEFAULT_WINDOW) : undefined;
  const seconds = Number(hub.env.RELAY_RESPONSE_TIMEOUT) || DEFAULT_TIMEOUT_SECONDS;
  const tried = new Set<Tunnel>();
  let tally = NO_FAILURES;
  let lastReset: StreamReset | undefined;
  /** The agent that refused this request or whose tunnel was lost under it. */
  let avoidAgent: string | undefined;
  for (;;) {
    let untried = tunnels;
    if (tried.size > 0) {
      admission ??= new Admission(request, route, hub.tunnels, hub.env.RELAY_SECRET);
      untried = await admission.admitted(hub.tunnels.all().filter((t) => !tried.has(t)));
    }
    const tunnel = chooseTunnel(untried, limits.streamsPerTunnel, avoidAgent);
    if (typeof tunnel !== "object") {
      body?.abort();
      if (lastReset) return errorForReset(lastReset, backend).toResponse();
      return tunnel === "full" ? tooManyStreams(backend, limits.streamsPerTunnel).toResponse() : noAgent(backend);
    }
    tried.add(tunnel);
    const fields = admission ? withUser(head, admission.who.get(tunnel)) : head;
    const stream = whole?.byteLength ? tunnel.session.open(fields, false, whole) : tunnel.session.open(fields, !upgrade && !body);
    body?.attach(stream);
    const { tunnelId } = tunnel.meta;
    const outcome = await new ResponseAssembly(stream, {
      method: request.method,
      backend,
      upgrade: upgrade ? (s, chosen) => acceptClient(hub.ctx, s, { tunnelId, flow }, backend, chosen) : undefined,
      deadlines: hub.deadlines(seconds),
      seconds,
      turn: hub.turn,
    }).answer;
    if (outcome instanceof Response) {
      body?.commit();
      return outcome;
    }
    lastReset = outcome;
    avoidAgent = tunnel.meta.hello?.id;
    const next = retryAfter(outcome, tally, { repeatable, replayable: !body || body.replayable });
    if (!next) {
      body?.abort();
      return errorForReset(outcome, backend).toResponse();
    }
    tally = next;
  }
}

/** The answer for a backend with no tunnel to relay over. */
function noAgent(backend: string): Response {
  return new RelayError("no_agent", `No agent is connected for backend "${backend}".`, backend).toResponse();
}

/** The HTTP error for a stream that ended before its response headers. */
export function errorForReset(reset: StreamReset, backend: string): RelayError {
  if (reset.tunnelLost) return new RelayError("tunnel_lost", `The agent's tunnel closed before it answered (${reset.message}).`, backend);
  switch (reset.code) {
    case ErrorCode.OriginUnreachable:
      return new RelayError("origin_unreachable", `The agent could not reach its target: ${reset.message}.`, backend);
    case ErrorCode.MeshDenied:
      return new RelayError("mesh_denied", `The service mesh refused the agent: ${reset.message}.`, backend);
    case ErrorCode.MeshRefused:
      return new RelayError("origin_error", `The mesh refused the request: ${reset.message}.`, backend);
    case ErrorCode.MeshIdentity:
      return new RelayError("mesh_identity_mismatch", `The agent did not trust the mesh proxy: ${reset.message}.`, backend);
    case ErrorCode.BridgeError:
      return new RelayError("bridge_error", `The agent's HTTP-TCP bridge failed: ${reset.message}.`, backend);
    case ErrorCode.RefusedStream:
      return new RelayError("no_agent", `The agent refused the request: ${reset.message || "it is shutting down"}.`, backend);
    default:
      return new RelayError(
        "origin_error",
        `The agent reset the request (${ErrorCode[reset.code] ?? reset.code}${reset.message ? `: ${reset.message}` : ""}).`,
        backend,
      );
  }
}
