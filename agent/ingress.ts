// Ingress rules: which rule of a backend takes a request (first match by path prefix), the path
// and headers it goes on with, and the rule conflicts a config must not have. Pure.
import type { HeaderList } from "../src/protocol/frame.ts";
import type { TargetSpec } from "./config.ts";
import { targetText } from "./target-failures.ts";
import { pathOnly, underPrefix } from "../src/access/path.ts";
import type { AccessScope, Policy } from "../src/access/policy.ts";

/** Edits of one direction's headers: `set` replaces every field of a name, `remove` drops them. */
export interface HeaderEdit {
  /** Lowercase names with their values, in the order written; a name with several values repeats. */
  set: Array<[string, string[]]>;
  /** Lowercase names. */
  remove: string[];
}

export interface HeaderRewrite {
  request: HeaderEdit;
  response: HeaderEdit;
}

export type OriginProtocol = "auto" | "http1" | "h2" | "h2c";

/** One validated ingress rule. */
export interface IngressRule {
  /** Where it was written: `ingress[2]` in a config file, `--to` for the one-rule flags. */
  name: string;
  backend: string;
  /** The path prefix without a trailing slash, like `/api`; absent: every path (a catch-all). */
  path?: string;
  /** Remove `path` before the request goes on. */
  stripPrefix: boolean;
  /** The service as written (`http://127.0.0.1:8080`). */
  service: string;
  target: TargetSpec;
  preserveHost: boolean;
  originProtocol: OriginProtocol;
  /** How long connecting to the target may take; absent: the system's limit. */
  connectTimeoutMs?: number;
  headers: HeaderRewrite;
  /** Visitor access policies the relay enforces for the requests this rule takes (docs/access.md). */
  access?: Policy[];
}

export const NO_HEADER_EDITS: HeaderRewrite = { request: { set: [], remove: [] }, response: { set: [], remove: [] } };

/** Header names the agent or the relay manage: a rule may neither set nor remove them. */
export const MANAGED_HEADERS = [
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "upgrade",
  "keep-alive",
  "te",
  "trailer",
  "proxy-connection",
];

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * Why a header name cannot be rewritten, or undefined when it can. Names are compared
 * lowercase, as HTTP/2 and the tunnel carry them.
 */
export function headerNameProblem(name: string): string | undefined {
  if (!TOKEN.test(name)) return "is not a lowercase header name (letters, digits and !#$%&'*+.^_`|~-)";
  if (MANAGED_HEADERS.includes(name)) return "is managed by the agent and cannot be rewritten";
  return undefined;
}

/** Why a header value cannot be sent, or undefined when it can. */
export function headerValueProblem(value: string): string | undefined {
  return /[\r\n\0]/.test(value) ? "must not hold a line break or NUL" : undefined;
}

/**
 * A path prefix as written in a rule, normalised (`/api/` becomes `/api`; `/` means every path),
 * or the reason it cannot be one.
 */
export function normalizePathPrefix(text: string): { prefix?: string } | { problem: string } {
  if (!text.startsWith("/")) return { problem: 'must start with "/", like /api' };
  if (/[?#\s]/.test(text)) return { problem: "must be a path only, with no query, fragment or spaces" };
  const prefix = text.replace(/\/+$/, "");
  return prefix ? { prefix } : {};
}

export { underPrefix };

/**
 * The access scopes the backend's tunnels announce: one per rule of `backend`, in order, with
 * its path prefix and policies, so the relay picks the rule the agent will; undefined when no
 * rule of the backend has policies.
 */
export function accessScopes(rules: readonly IngressRule[], backend: string): AccessScope[] | undefined {
  const mine = rules.filter((r) => r.backend === backend);
  if (!mine.some((r) => r.access?.length)) return undefined;
  return mine.map((r) => ({ ...(r.path !== undefined ? { path: r.path } : {}), policies: r.access ?? [] }));
}

/** A rule chosen for a request, and the path the target sees. */
export interface Match<R extends IngressRule = IngressRule> {
  rule: R;
  index: number;
  path: string;
}

/** The first rule of `backend` whose prefix covers `path`; undefined when none does. */
export function matchRule<R extends IngressRule>(rules: readonly R[], backend: string, path: string): Match<R> | undefined {
  for (let index = 0; index < rules.length; index++) {
    const rule = rules[index];
    if (rule.backend !== backend || !underPrefix(rule.path, path)) continue;
    return { rule, index, path: rule.stripPrefix && rule.path ? stripPrefix(rule.path, path) : path };
  }
  return undefined;
}

/** `path` without `prefix`, kept absolute: /api/v1/x -> /v1/x, /api -> /, /api?q -> /?q. */
export function stripPrefix(prefix: string, path: string): string {
  const rest = path.slice(prefix.length);
  return rest.startsWith("/") ? rest : `/${rest}`;
}

/**
 * Applies one direction's edits to a header list: removed and set names leave the list, the set
 * values join at its end in the order written; every other field keeps its place, repeated
 * names included. Pseudo-fields (`:status`) stay in front.
 */
export function rewriteHeaders(list: HeaderList, edit: HeaderEdit): HeaderList {
  if (edit.set.length === 0 && edit.remove.length === 0) return list;
  const drop = new Set([...edit.remove, ...edit.set.map(([name]) => name)]);
  const out: HeaderList = list.filter(([name]) => !drop.has(name.toLowerCase()));
  for (const [name, values] of edit.set) for (const value of values) out.push([name, value]);
  return out;
}

/** A rule that can never take a request, and why. */
export interface RuleConflict {
  index: number;
  message: string;
}

/**
 * Rules that can never match: the same backend and path as an earlier rule, or a path that an
 * earlier rule of the same backend already covers (a catch-all covers every later rule).
 */
export function ruleConflicts(rules: readonly IngressRule[]): RuleConflict[] {
  const out: RuleConflict[] = [];
  rules.forEach((rule, index) => {
    const earlier = rules.findIndex(
      (other, i) =>
        i < index &&
        other.backend === rule.backend &&
        (other.path === undefined || (rule.path !== undefined && underPrefix(other.path, rule.path))),
    );
    if (earlier < 0) return;
    const other = rules[earlier];
    const where = `backend ${rule.backend}${rule.path ? `, path ${rule.path}` : ""}`;
    if (other.path === rule.path) {
      out.push({ index, message: `repeats ${other.name} (${where}): the first one always wins, so remove one` });
    } else if (other.path === undefined) {
      out.push({
        index,
        message: `can never match: ${other.name} before it is the catch-all of ${rule.backend} (no path); move the catch-all last`,
      });
    } else {
      out.push({
        index,
        message: `can never match: ${other.name} before it takes every ${rule.backend} request under ${other.path}; put the longer path first`,
      });
    }
  });
  return out;
}

/** The agent's answer when no rule of the backend takes a request: a JSON 404, as the relay's errors read. */
export function noRuleResponse(backend: string, path: string): { status: number; headers: HeaderList; body: Uint8Array } {
  const shown = pathOnly(path).slice(0, 200);
  const body = new TextEncoder().encode(
    JSON.stringify({
      error: "no_ingress_rule",
      message: `No ingress rule of backend "${backend}" takes ${shown}; add a rule for it or a catch-all.`,
      backend,
    }),
  );
  return {
    status: 404,
    headers: [
      ["content-type", "application/json; charset=utf-8"],
      ["cache-control", "no-store"],
      ["content-length", String(body.byteLength)],
    ],
    body,
  };
}

/** The target as one printable string: as --to names it, with an hbone target's proxy (no secrets). */
export function describeTarget(target: TargetSpec): string {
  const text = targetText(target);
  return target.kind === "hbone" ? `${text} via ${target.hbone.proxy.host}:${target.hbone.proxy.port}` : text;
}

/** One line per rule for `edge-relay validate` and `ingress match`: where, backend, path, target, options. */
export function describeRule(rule: IngressRule): string {
  const parts = [
    `${rule.name}: backend ${rule.backend}`,
    `path ${rule.path ?? "* (every path)"}${rule.stripPrefix ? " (stripped)" : ""}`,
    `-> ${describeTarget(rule.target)}`,
  ];
  const options: string[] = [];
  if (rule.originProtocol !== "auto") options.push(`protocol ${rule.originProtocol}`);
  if (rule.preserveHost) options.push("preserveHost");
  if (rule.connectTimeoutMs !== undefined) options.push(`connectTimeout ${rule.connectTimeoutMs / 1000}s`);
  if (rule.target.kind === "https" && rule.target.ca) options.push("own CA");
  if (rule.target.kind === "https" && rule.target.insecure) options.push("insecure");
  if (rule.target.kind === "bridge") options.push(`plugin ${rule.target.plugin.text}`, `idle ${rule.target.idleMs}ms`);
  // Only the kinds: policies hold password hashes and client secrets.
  if (rule.access?.length) options.push(`access ${rule.access.map((p) => Object.keys(p)[0]).join(", ")}`);
  for (const side of ["request", "response"] as const) {
    const edit = rule.headers[side];
    if (edit.set.length) options.push(`${side} set ${edit.set.map(([n]) => n).join(", ")}`);
    if (edit.remove.length) options.push(`${side} remove ${edit.remove.join(", ")}`);
  }
  return parts.join(", ") + (options.length ? ` [${options.join("; ")}]` : "");
}
