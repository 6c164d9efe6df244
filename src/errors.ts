// Every HTTP error the relay answers with: a stable code, a status and a JSON body
// {error, message, backend}. The table in README.md lists them all.

/** Stable error codes and their HTTP statuses. */
export const ERROR_STATUS = {
  bad_backend_name: 400,
  request_body_incomplete: 400,
  bad_revocation: 400,
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  token_revoked: 401,
  access_denied: 401,
  admin_unauthorized: 401,
  token_backend_mismatch: 403,
  mesh_denied: 403,
  not_found: 404,
  upgrade_required: 426,
  too_many_tunnels: 429,
  request_header_fields_too_large: 431,
  no_agent: 502,
  origin_unreachable: 502,
  origin_error: 502,
  tunnel_lost: 502,
  bridge_error: 502,
  mesh_identity_mismatch: 502,
  protocol_error: 502,
  overloaded: 503,
  too_many_streams: 503,
  too_many_websockets: 503,
  internal_error: 500,
  relay_misconfigured: 500,
  timeout: 504,
} as const;

export type ErrorName = keyof typeof ERROR_STATUS;

/** The code of each error response made by toResponse, for the relay's counters (src/observe/). */
const responseCodes = new WeakMap<Response, ErrorName>();

/** The relay error a response answers, or undefined for a backend's own response. */
export function relayErrorOf(response: Response): ErrorName | undefined {
  return responseCodes.get(response);
}

/** An error that becomes a JSON response. */
export class RelayError extends Error {
  constructor(
    readonly code: ErrorName,
    message: string,
    readonly backend?: string,
  ) {
    super(message);
    this.name = "RelayError";
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  /** The JSON response: {error, message, backend}. */
  toResponse(extraHeaders?: HeadersInit): Response {
    const body: Record<string, string> = { error: this.code, message: this.message };
    if (this.backend) body.backend = this.backend;
    const headers = new Headers(extraHeaders);
    headers.set("content-type", "application/json; charset=utf-8");
    headers.set("cache-control", "no-store");
    const response = new Response(JSON.stringify(body), { status: this.status, headers });
    responseCodes.set(response, this.code);
    return response;
  }
}
