// What one policy decides about one request: let it in (naming the user, when it learnt one) or
// refuse it with a RelayError and the headers that go with it (WWW-Authenticate, Retry-After).
import type { RelayError } from "../errors.ts";

/** The request as the policies see it. */
export interface Visitor {
  /** Path and query as the agent gets them. */
  path: string;
  headers: Headers;
  /** The client address the edge reported (CF-Connecting-IP, read by the Worker), if any. */
  clientIp?: string;
  /** The Worker verified an access token for this backend. */
  accessToken: boolean;
  backend: string;
}

export type Outcome = { user?: string; email?: string; refused?: undefined } | { refused: RelayError; headers?: Record<string, string> };

/** Whether an outcome refuses the request. */
export function isRefusal(o: Outcome): o is { refused: RelayError; headers?: Record<string, string> } {
  return o.refused !== undefined;
}
