// Access tokens on the public side: the header a client sends them in. Shared by the Worker,
// which verifies them, and `edge-relay connect`, which sends them.

/** Public header carrying an access token, for backends whose agent runs --require-access-token. */
export const ACCESS_HEADER = "x-relay-access-token";
