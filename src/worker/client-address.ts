// The public client's address: Cloudflare's edge sets CF-Connecting-IP; bare `workerd serve`
// (npm run serve, which strips any client-sent CF-Connecting-IP) reports it in request.cf.
import { portColon } from "./routing.ts";

/** The client's IP address, without a port; undefined when the runtime gives none. */
export function clientAddress(headers: Headers, cf: unknown): string | undefined {
  const header = headers.get("cf-connecting-ip");
  if (header) return header;
  const peer = (cf as { clientIp?: unknown } | undefined)?.clientIp;
  return typeof peer === "string" ? withoutPort(peer) : undefined;
}

/**
 * workerd reports the peer as "<ip>:<port>" or "[<ipv6>]:<port>": the address without the port.
 * Anything else (no port, or a bare IPv6 address) is returned as is.
 */
export function withoutPort(peer: string): string {
  const colon = portColon(peer);
  if (colon === -1) return peer;
  // "[<ipv6>]:<port>"
  if (colon >= 2 && peer.charCodeAt(0) === 91 && peer.charCodeAt(colon - 1) === 93) return peer.slice(1, colon - 1);
  // "<ipv4>:<port>": the only colon.
  return peer.indexOf(":") === colon ? peer.slice(0, colon) : peer;
}
