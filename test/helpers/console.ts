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
 * Decides, a chunk of a log stream at a time, what to keep: a line that matches `pattern` is
 * dropped, and so are the `stack: ` lines right after it (workerd prints a report's stack on a line
 * of its own) and the rest of a dropped line that a chunk boundary cut. Chunks arrive cut anywhere
 * (a child's pipe read under load), so the decision is per line, and a line cut in two is judged
 * by the part that came first.
 */
export class LineFilter {
  /** The last chunk ended inside a line, and whether that line is being dropped. */
  private midLine = false;
  private droppingLine = false;
  /** The last whole line was dropped: a `stack: ` line after it belongs to it. */
  private afterDropped = false;

  constructor(private readonly pattern: RegExp) {}

  /** The part of `text` to write (colour codes are ignored when matching). */
  keep(text: string): string {
    const parts = text.split("\n");
    let out = "";
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      const last = i === parts.length - 1;
      if (last && part === "") break;
      const continued = i === 0 && this.midLine;
      const plain = part.replace(COLOUR, "");
      const drop = continued ? this.droppingLine : this.pattern.test(plain) || (this.afterDropped && plain.startsWith("stack: "));
      if (!drop) out += last ? part : `${part}\n`;
      if (!continued) this.afterDropped = drop;
      this.droppingLine = drop;
    }
    this.midLine = !text.endsWith("\n");
    return out;
  }
}

/**
 * From now on in this process, lines written to process.stdout or process.stderr that match
 * `pattern`, with the stack lines that follow them, are dropped: for a runtime's own log lines,
 * which reach the process as raw writes, not console calls (the workers pool writes workerd's
 * reports of an uncaught exception to stdout, its warnings and errors to stderr).
 */
export function quietOutput(pattern: RegExp): void {
  for (const stream of [process.stdout, process.stderr]) {
    const filter = new LineFilter(pattern);
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === "string" ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : undefined;
      if (text === undefined) return write(chunk, ...rest);
      const kept = filter.keep(text);
      if (kept === "") {
        // A callback passed to write still runs, as if the text had gone out.
        const done = rest.find((r) => typeof r === "function") as (() => void) | undefined;
        if (done) process.nextTick(done);
        return true;
      }
      return write(kept, ...rest);
    }) as typeof stream.write;
  }
}
