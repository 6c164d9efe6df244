// The Worker's bindings (wrangler.toml [vars], secrets, the Durable Object namespace).
import type { BackendHub } from "./hub/backend-hub.ts";
import type { BackendDirectory } from "./observe/directory.ts";
import type { TokenRegistry } from "./token-registry.ts";

export interface Env {
  /** Secret that signs agent tokens (wrangler secret put RELAY_SECRET; .dev.vars locally). */
  RELAY_SECRET: string;
  /** During a rotation, the secret before RELAY_SECRET: tokens it signed still verify (docs/tokens.md). */
  RELAY_SECRET_PREVIOUS?: string;
  /** When set, host <name>.<RELAY_DOMAIN> routes to backend <name>. */
  RELAY_DOMAIN?: string;
  /** Seconds to wait for an agent's response headers before answering 504 (default 100). */
  RELAY_RESPONSE_TIMEOUT?: string;
  /** Bearer token for the admin API (/_relay/backends/<name>); the API is off without it. */
  RELAY_ADMIN_TOKEN?: string;
  /** Seconds without a heartbeat after which a tunnel is dropped (default 45). */
  RELAY_HEARTBEAT_DEADLINE?: string;
  /** Agent tunnels one backend may hold open (default 64; src/hub/limits.ts). */
  RELAY_MAX_TUNNELS?: string;
  /** Streams in flight on one tunnel (default 1000). */
  RELAY_MAX_STREAMS?: string;
  /** Public WebSockets one backend may hold open (default 10000). */
  RELAY_MAX_WEBSOCKETS?: string;
  BACKEND_HUB: DurableObjectNamespace<BackendHub>;
  /** One global object: which backends each token id connected to, and the revoked ids. */
  TOKEN_REGISTRY: DurableObjectNamespace<TokenRegistry>;
  /** One global object: which backends have tunnels (src/observe/directory.ts). */
  BACKEND_DIRECTORY: DurableObjectNamespace<BackendDirectory>;
}
