// Public request -> backend name and forwarded path. Pure; first match wins:
// host <name>.<RELAY_DOMAIN>, then path /r/<name>/<rest>, then header X-Relay-Backend.
import { isValidBackendName } from "../auth.ts";
import { RelayError } from "../errors.ts";

/** Where a public request goes. `redirect` asks the client to add the trailing slash. */
export type Route =
  | { kind: "backend"; backend: string; path: string; via: "host" | "path" | "header" }
  | { kind: "redirect"; location: string }
  | { kind: "relay" };

/** The path and query of an absolute URL string, exactly as serialized (no re-encoding). */
export function pathAndQuery(url: string): string {
  const afterScheme = url.indexOf("//") + 2;
  const slash = url.indexOf("/", afterScheme);
  const query = url.indexOf("?", afterScheme);
  if (slash === -1 || (query !== -1 && query < slash)) return "/" + (query === -1 ? "" : url.slice(query));
  return url.slice(slash);
}

/** The scheme (without ":") and host of an absolute URL string, without parsing the whole URL. */
export function schemeAndHost(url: string): { scheme: string; host: string } {
  const colon = url.indexOf(":");
  const start = colon + 3;
  let end = start;
  while (end < url.length && url[end] !== "/" && url[end] !== "?" && url[end] !== "#") end++;
  return { scheme: url.slice(0, colon), host: url.slice(start, end) };
}

/**
 * Where the ":<port>" at the end of `host` starts (a colon followed by one or more digits), or -1.
 * A string scan, not a regex: it runs for every public request.
 */
export function portColon(host: string): number {
  const colon = host.lastIndexOf(":");
  if (colon === -1 || colon === host.length - 1) return -1;
  for (let i = colon + 1; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
  }
  return colon;
}

function checkName(name: string): string {
  if (!isValidBackendName(name)) {
    throw new RelayError(
      "bad_backend_name",
      `"${name.slice(0, 80)}" is not a backend name: use 1 to 63 lower-case letters, digits and inner hyphens.`,
    );
  }
  return name;
}

/**
 * Decides where a request goes. `host` is the Host header, `headerBackend` the X-Relay-Backend
 * header. Throws RelayError(bad_backend_name) for a route whose name is malformed.
 */
export function route(url: string, host: string | null, headerBackend: string | null, relayDomain?: string): Route {
  const path = pathAndQuery(url);
  if (relayDomain && host) {
    const colon = portColon(host);
    const hostname = (colon === -1 ? host : host.slice(0, colon)).toLowerCase();
    const suffix = "." + relayDomain.toLowerCase();
    if (hostname.endsWith(suffix) && hostname.length > suffix.length) {
      return { kind: "backend", backend: checkName(hostname.slice(0, -suffix.length)), path, via: "host" };
    }
  }
  const m = /^\/r\/([^/?]*)(\/[^?]*)?(\?.*)?$/.exec(path);
  if (m) {
    const backend = checkName(m[1]);
    if (m[2] === undefined) return { kind: "redirect", location: `/r/${backend}/${m[3] ?? ""}` };
    return { kind: "backend", backend, path: m[2] + (m[3] ?? ""), via: "path" };
  }
  if (headerBackend !== null) return { kind: "backend", backend: checkName(headerBackend.trim()), path, via: "header" };
  return { kind: "relay" };
}
