// The public client's address: Cloudflare's edge sets CF-Connecting-IP; bare `workerd serve`
// (npm run serve, which strips any client-sent CF-Connecting-IP) reports it in request.cf.
/** The client's IP address, without a port; undefined when the runtime gives none. */
export function clientAddress(headers: Headers, cf: unknown): string | undefined {
  const header = headers.get("cf-connecting-ip");
  if (header) return header;
  const peer = (cf as { clientIp?: unknown } | undefined)?.clientIp;
  return typeof peer === "string" ? withoutPort(peer) : undefined;
}

/**
 * workerd reports the peer as "<ip>:<port>" or "[<ipv6>]:<port>": the address without the port.
 * Anything else (no port, or a bare IPv6 address whose last group is digits) is returned as is.
 * String scans, not regexes: this runs for every public request on bare workerd.
 */
export function withoutPort(peer: string): string {
  const colon = peer.lastIndexOf(":");
  if (colon === -1 || colon === peer.length - 1) return peer;
  for (let i = colon + 1; i < peer.length; i++) {
    const c = peer.charCodeAt(i);
    if (c < 48 || c > 57) return peer;
  }
  // "[<ipv6>]:<port>"
  if (peer.charCodeAt(0) === 91 && peer.charCodeAt(colon - 1) === 93 && colon >= 2) return peer.slice(1, colon - 1);
  // "<ipv4>:<port>": the only colon.
  return peer.indexOf(":") === colon ? peer.slice(0, colon) : peer;
}
