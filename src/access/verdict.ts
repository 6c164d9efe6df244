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
  method: string;
  /** The public scheme and host (X-Forwarded-Proto/-Host), and the path prefix of /r/<name>/ routing. */
  scheme: string;
  authority: string;
  base: string;
  /** RELAY_SECRET: the oidc policy derives its cookie key from it and the backend name. */
  secret: string;
}

/**
 * Admitted (with who, when known); refused with an error and its headers; or answered by the
 * policy itself (`answer`: the oidc login redirect and callback), which the relay sends as is.
 */
export type Outcome =
  | { user?: string; email?: string; refused?: undefined; answer?: undefined }
  | { refused: RelayError; headers?: Record<string, string>; answer?: undefined }
  | { answer: Response; refused?: undefined };

/** Whether an outcome keeps the request from the backend: a refusal or the policy's own answer. */
export function isRefusal(o: Outcome): o is Exclude<Outcome, { user?: string }> {
  return o.refused !== undefined || o.answer !== undefined;
}

/** The response for an outcome that keeps the request from the backend. */
export function refusalResponse(o: Exclude<Outcome, { user?: string }>): Response {
  return o.answer ?? o.refused.toResponse(o.headers);
}
