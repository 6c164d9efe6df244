// No client left hanging under load: 2,000 concurrent requests for a backend whose agent is
// away, against the real relay in workerd, each answered 502 no_agent with the JSON body.
import http from "node:http";
import { afterAll, beforeAll, expect, it } from "vitest";
import { openRequest } from "../helpers/client.ts";
import { startRelay, type RelayHandle } from "../helpers/relay.ts";

const COUNT = 2000;
/** A bound for "answered", not a performance figure: docs/limits.md "A request storm" has those. */
const ANSWER_WITHIN_MS = 30_000;

let relay: RelayHandle;

beforeAll(async () => {
  relay = await startRelay();
});

afterAll(async () => {
  await relay?.stop();
});

interface Outcome {
  status: number;
  body: string;
  error?: string;
}

/** One request on its own connection; a request with no answer within the bound is an outcome, not a hang. */
function request(agent: http.Agent, i: number, post: boolean): Promise<Outcome> {
  const url = new URL(relay.url);
  return new Promise((resolve) => {
    const req = http.request(
      {
        hostname: url.hostname,
        port: url.port,
        method: post ? "POST" : "GET",
        path: `/r/away/item/${i}`,
        agent,
        headers: post ? { "content-type": "text/plain", "content-length": "13" } : {},
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode!, body }));
        res.on("error", (err) => resolve({ status: 0, body, error: err.message }));
      },
    );
    req.setTimeout(ANSWER_WITHIN_MS, () => req.destroy(new Error(`no answer within ${ANSWER_WITHIN_MS} ms`)));
    req.on("error", (err) => resolve({ status: 0, body: "", error: err.message }));
    req.end(post ? "an order body" : undefined);
  });
}

it(`${COUNT} concurrent requests for a backend with no agent are each answered 502 no_agent`, async () => {
  // One connection per request, all open at once.
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const outcomes = await Promise.all(Array.from({ length: COUNT }, (_, i) => request(agent, i, i % 2 === 1)));
  agent.destroy();
  const tally = new Map<string, number>();
  for (const o of outcomes) {
    const key = o.error ?? `${o.status} ${/"error":"(\w+)"/.exec(o.body)?.[1]}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
  }
  expect(Object.fromEntries(tally)).toEqual({ "502 no_agent": COUNT });
  for (const o of outcomes) {
    expect(JSON.parse(o.body)).toEqual({ error: "no_agent", message: 'No agent is connected for backend "away".', backend: "away" });
  }
}, 120_000);

it("a request whose body has not come yet is answered no_agent without waiting for it", async () => {
  // The head only: the body is never sent.
  const { req, response } = openRequest(relay.url, {
    method: "POST",
    path: "/r/away/upload",
    headers: { "content-type": "text/plain", "content-length": "100" },
  });
  const answered = new Promise<{ status: number; body: string }>((resolve, reject) => {
    response.then(resolve, reject);
    setTimeout(() => reject(new Error("no answer while the body was withheld")), ANSWER_WITHIN_MS).unref();
  });
  const res = await answered;
  req.destroy();
  expect(res.status).toBe(502);
  expect(JSON.parse(res.body)).toMatchObject({ error: "no_agent", backend: "away" });
});
