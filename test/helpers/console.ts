// Drops exactly the console lines a test knows to be expected (a fixture's own warnings, the
// runtime's report of a deliberate abort), so that a passing run reads clean; every other line
// still prints.

type Method = "error" | "warn" | "info";
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
