// A target's response head on its way into the tunnel: one the relay could not give a public
// client (a status outside 200-599, a header HTTP does not allow, a head over the size limit)
// resets that stream alone, so the client gets a 502 at once and the tunnel stays up.
import { ErrorCode, type HeaderList } from "../src/protocol/frame.ts";
import { encodeResponseHead, responseHeadProblem } from "../src/protocol/head.ts";
import type { Stream } from "../src/protocol/session.ts";

/**
 * Sends the target's response head on `stream` (with FIN when `fin`) and returns true; or, when
 * responseHeadProblem refuses it, resets the stream with ORIGIN_RESET and a message saying why,
 * and returns false: the caller then drops the target's response.
 */
export function sendResponseHead(stream: Stream, status: number, headers: HeaderList, fin = false): boolean {
  const problem = responseHeadProblem(status, headers);
  if (problem) {
    stream.reset(ErrorCode.OriginReset, `the target's response cannot be relayed: ${problem}`);
    return false;
  }
  stream.sendHeaders(encodeResponseHead({ status, headers }), fin);
  return true;
}

/** Answers a stream itself with the relay's JSON error shape `{error, message}`, for requests a target kind cannot take. */
export function answerJsonError(stream: Stream, status: number, error: string, message: string): void {
  const body = new TextEncoder().encode(JSON.stringify({ error, message }));
  stream.sendHeaders(
    encodeResponseHead({
      status,
      headers: [
        ["content-type", "application/json"],
        ["content-length", String(body.byteLength)],
      ],
    }),
  );
  stream
    .write(body)
    .then(() => stream.end())
    .catch(() => {});
}
