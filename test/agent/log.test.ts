// The agent's log lines: credentials scrubbed from any line, and nothing else touched.
import { describe, expect, it } from "vitest";
import { createLogger } from "../../agent/observe/log.ts";

async function lines(format: "text" | "json", write: (log: (line: string) => void) => void): Promise<string[]> {
  const out: string[] = [];
  const logger = await createLogger({ format, write: (line) => out.push(line) });
  logger.addSecret("s3cret-token-value");
  write((line) => logger.log(line));
  return out.map((l) => (format === "json" ? (JSON.parse(l) as { msg: string }).msg : l.trimEnd()));
}

describe("agent log scrubbing", () => {
  it.each(["text", "json"] as const)("redacts credentials and the token in %s lines", async (format) => {
    const got = await lines(format, (log) => {
      log("authorization: Bearer abc.def-ghi");
      log("Authorization: Basic YW5uOmNvcnJlY3QgaG9yc2U=");
      log("the relay said no to s3cret-token-value");
    });
    expect(got).toEqual(["authorization: Bearer [redacted]", "Authorization: Basic [redacted]", "the relay said no to [redacted]"]);
  });

  it("leaves a backend named like a scheme alone", async () => {
    const line = "edge-relay: tunnel 1 up: relay=ws://127.0.0.1:8787 backend=acc-basic tunnels=1/1";
    expect(await lines("text", (log) => log(line))).toEqual([line]);
  });
});
