// Paths as access policies read them: which agent rule (scope) a request path falls under, and
// the normalised path `bypass` entries are matched on. Pure.

/** The path of a request target without its query. */
export function pathOnly(path: string): string {
  const q = path.indexOf("?");
  return q < 0 ? path : path.slice(0, q);
}

/** True when `prefix` (normalised, no trailing slash) covers `path`: the same path, or below it. */
export function underPrefix(prefix: string | undefined, path: string): boolean {
  if (prefix === undefined) return true;
  const p = pathOnly(path);
  return p === prefix || p.startsWith(`${prefix}/`);
}

const UNRESERVED = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

/**
 * The path a backend will most likely act on, for matching `bypass` entries, or undefined when
 * the path holds anything a backend might read in more than one way: a percent-escape of a
 * reserved character (%2F, %5C, %25 ...), a backslash, a `;` parameter, or a `..` that climbs
 * above the root. Escapes of unreserved characters are decoded, then `.` and `..` segments are
 * resolved and repeated slashes collapsed. Undefined means "no bypass": the policies apply.
 */
export function normalisedPath(path: string): string | undefined {
  const decoded = pathOnly(path).replace(UNRESERVED, (e) => String.fromCharCode(Number.parseInt(e.slice(1), 16)));
  if (/[%\\;\0]/.test(decoded)) return undefined;
  return resolveDots(decoded);
}

/** `path` with `.` and `..` segments resolved and repeated slashes collapsed; undefined above the root. */
function resolveDots(path: string): string | undefined {
  if (!path.startsWith("/")) return undefined;
  const out: string[] = [];
  const segments = path.split("/").slice(1);
  for (const [i, segment] of segments.entries()) {
    const last = i === segments.length - 1;
    if (segment === "..") {
      if (out.length === 0) return undefined;
      out.pop();
      if (last) out.push("");
    } else if (segment === "." || (segment === "" && !last)) {
      if (last) out.push("");
    } else out.push(segment);
  }
  return `/${out.join("/")}`;
}

/**
 * Whether `path` is covered by a bypass entry: `/healthz` covers exactly that path (and
 * `/healthz/`), `/webhooks/` every path below it. Matched on normalisedPath only.
 */
export function bypassed(entries: readonly string[], path: string): boolean {
  const normal = normalisedPath(path);
  if (normal === undefined) return false;
  return entries.some((e) => (e.endsWith("/") ? normal.startsWith(e) : normal === e || normal === `${e}/`));
}

/** Why a bypass entry cannot be one, or undefined when it can. */
export function bypassEntryProblem(entry: string): string | undefined {
  if (!entry.startsWith("/")) return 'must start with "/", like /healthz or /webhooks/';
  if (normalisedPath(entry) !== entry || entry.includes("//"))
    return "must be a plain path (no ., .., //, %, \\ or ;), like /healthz or /webhooks/";
  if (entry === "/") return 'cannot be "/": that bypasses every path; remove the policies instead';
  return undefined;
}

/**
 * The scopes (indexes into `prefixes`, the agent's rules in order) whose policies a request
 * must pass: the rule the agent picks for the raw path, and the one the normalised (or fully
 * decoded) path would take, so a path a backend reads differently cannot slip between rules.
 */
export function scopesFor(prefixes: ReadonlyArray<string | undefined>, path: string): number[] {
  const first = (p: string) => prefixes.findIndex((prefix) => underPrefix(prefix, p));
  const normal = normalisedPath(path) ?? fullyDecoded(path);
  // A path no decoding makes sense of passes every rule's policies.
  const picks = new Set<number>(normal === undefined ? prefixes.keys() : [first(path), first(normal)]);
  picks.delete(-1);
  return [...picks];
}

/** The path with every escape decoded, `\` read as `/`, `;` parameters dropped and dots resolved; undefined when undecodable. */
function fullyDecoded(path: string): string | undefined {
  let p: string;
  try {
    p = decodeURIComponent(pathOnly(path))
      .replace(/\\/g, "/")
      .replace(/;[^/]*/g, "");
  } catch {
    return undefined;
  }
  return resolveDots(p);
}
