// The public client's address: Cloudflare's edge sets CF-Connecting-IP; bare `workerd serve`
// (npm run serve, which strips any client-sent CF-Connecting-IP) reports it in request.cf.
/** The client's IP address, without a port; undefined when the runtime gives none. */
export function clientAddress(headers: Headers, cf: unknown): string | undefined {
  const header = headers.get("cf-connecting-ip");
  if (header) return header;
  // workerd reports the peer as "<ip>:<port>" or "[<ipv6>]:<port>".
  const peer = (cf as { clientIp?: unknown } | undefined)?.clientIp;
  if (typeof peer !== "string") return undefined;
  return /^\[(.*)\]:\d+$/.exec(peer)?.[1] ?? /^([^:]*):\d+$/.exec(peer)?.[1] ?? peer;
}
