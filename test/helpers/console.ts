// Drops exactly the console lines a test knows to be expected (a fixture's own warnings, the
// runtime's report of a deliberate abort), so that a passing run reads clean; every other line
// still prints.

type Method = "error" | "warn" | "info";

/**
 * What workerd prints when the relay errors a response body on purpose: a backend or a tunnel
 * went away mid-response, and the relay fails the body with the session's StreamReset so the
 * client sees the cut (a body that just ended would pass for complete). workerd reports that
 * error as uncaught while it pipes the body (through wrangler: "Uncaught exception: ...";
 * through the workers test pool: "uncaught exception; exception = ..." and, from the Worker
 * that forwarded the response, "exception = ... remote.jsg.Error: ..."): the expected outcome,
 * not a fault.
 */
export const DELIBERATE_BODY_ABORT =
  /^[^\n]*(Uncaught exception: |uncaught exception; exception = |^exception = )[^\n]*\bjsg\.Error: StreamReset: /;
const COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");
const installed = new Map<Method, RegExp[]>();

/**
 * From now on in this process, console[method] calls whose first argument (colour codes removed)
 * matches `pattern` print nothing. Installing the same pattern twice filters it once.
 */
export function quietConsole(method: Method, pattern: RegExp): void {
  let patterns = installed.get(method);
  if (!patterns) {
    const original = console[method].bind(console);
    const list: RegExp[] = [];
    console[method] = (...args: unknown[]) => {
      const first = typeof args[0] === "string" ? args[0].replace(COLOUR, "") : undefined;
      if (first !== undefined && list.some((p) => p.test(first))) return;
      original(...args);
    };
    installed.set(method, list);
    patterns = list;
  }
  if (!patterns.some((p) => p.source === pattern.source && p.flags === pattern.flags)) patterns.push(pattern);
}

/**
 * From now on in this process, writes to process.stderr whose text matches `pattern` are dropped
 * (for a runtime's own log lines, which reach the process as raw writes, not console calls).
 */
export function quietStderr(pattern: RegExp): void {
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]) => {
    const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : undefined;
    if (text !== undefined && pattern.test(text.replace(COLOUR, ""))) return true;
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
}
