// The `ip` policy: allow and deny CIDR lists matched on the client address the edge reported.
import { RelayError } from "../errors.ts";
import { type Cidr, inCidr, parseCidr, parseIp } from "./ip.ts";
import type { IpPolicy } from "./policy.ts";
import type { Outcome, Visitor } from "./verdict.ts";

export class IpRule {
  private readonly allow?: Cidr[];
  private readonly deny: Cidr[];

  constructor(policy: IpPolicy["ip"]) {
    this.allow = policy.allow?.map((c) => parseCidr(c)!);
    this.deny = (policy.deny ?? []).map((c) => parseCidr(c)!);
  }

  /** Deny wins over allow; with an allow list, an address outside it (or none known) is refused. */
  check(visitor: Visitor): Outcome {
    const ip = visitor.clientIp ? parseIp(visitor.clientIp) : undefined;
    const refused = () => ({ refused: new RelayError("forbidden_ip", "Requests from this address are not allowed.", visitor.backend) });
    if (!ip) return this.allow || this.deny.length ? refused() : {};
    if (this.deny.some((c) => inCidr(ip, c))) return refused();
    if (this.allow && !this.allow.some((c) => inCidr(ip, c))) return refused();
    return {};
  }
}
