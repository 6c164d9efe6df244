// Access policies in the agent's config: `access:` per rule and `policy:`/--policy files become
// typed rules and the scopes each backend's hello carries; mistakes name file, line and key path.
import { describe, expect, it } from "vitest";
import { buildAgentConfig } from "../../agent/config.ts";
import { accessScopes } from "../../agent/ingress.ts";
import { mintToken } from "../../src/auth.ts";

const SECRET = "config-access-test-secret";
const TOKEN = await mintToken(SECRET, ["shop", "blog"]);
const HASH = `pbkdf2-sha256$100000$${"A".repeat(22)}==$${"B".repeat(43)}=`;

function load(text: string, extra: Record<string, string> = {}, raw: Record<string, string> = {}) {
  const contents: Record<string, string> = { "/etc/edge/edge.yaml": text, ...extra };
  return buildAgentConfig({ config: "/etc/edge/edge.yaml", ...raw }, { EDGE_RELAY_TOKEN: TOKEN, ANN_HASH: HASH }, (path) => {
    if (Object.hasOwn(contents, path)) return contents[path];
    throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: "ENOENT" });
  });
}

const FILE = `relay: https://relay.example.com
ingress:
  - backend: shop
    path: /admin/
    service: http://127.0.0.1:8080
    access:
      - ip: { allow: [203.0.113.0/24] }
      - basicAuth: { realm: staging, users: [{ name: ann, passwordHash: "\${ANN_HASH}" }] }
  - backend: shop
    service: http://127.0.0.1:3000
  - backend: blog
    service: http://127.0.0.1:4000
    policy: blog-policy.yaml
`;

describe("access in the config file", () => {
  it("gives each backend's hello one scope per rule, in rule order, and none to a backend without policies", () => {
    const config = load(FILE, { "/etc/edge/blog-policy.yaml": "access:\n  - rateLimit: { requests: 10, perSeconds: 60 }\n" });
    expect(accessScopes(config.rules, "shop")).toEqual([
      {
        path: "/admin",
        policies: [
          { ip: { allow: ["203.0.113.0/24"] } },
          { basicAuth: { realm: "staging", users: [{ name: "ann", passwordHash: HASH }] } },
        ],
      },
      { policies: [] },
    ]);
    expect(accessScopes(config.rules, "blog")).toEqual([{ policies: [{ rateLimit: { requests: 10, perSeconds: 60 } }] }]);
    const plain = load("relay: https://relay.example.com\ningress:\n  - backend: shop\n    service: http://127.0.0.1:3000\n");
    expect(accessScopes(plain.rules, "shop")).toBeUndefined();
  });

  it("names the file, line and key path of a mistake inside an access list", () => {
    expect(() => load(FILE.replace("203.0.113.0/24", "203.0.113.0/24x"), { "/etc/edge/blog-policy.yaml": "[]" })).toThrow(
      '/etc/edge/edge.yaml:6:5: ingress[0].access[0].ip.allow[0] "203.0.113.0/24x" is not an IPv4 or IPv6 address or CIDR block.',
    );
  });

  it("names the policy file of a mistake in it, and a policy file that cannot be read", () => {
    expect(() => load(FILE, { "/etc/edge/blog-policy.yaml": "- jwt: { audience: blog }\n" })).toThrow(
      "/etc/edge/blog-policy.yaml: access[0].jwt needs exactly one of jwksUrl and keys.",
    );
    expect(() => load(FILE)).toThrow(
      /ingress\[2\]\.policy "blog-policy\.yaml" names a file that cannot be read \(no such file\) at \/etc\/edge\/blog-policy\.yaml/,
    );
  });

  it("refuses access and policy on one rule", () => {
    const both = FILE.replace("    policy: blog-policy.yaml\n", "    policy: blog-policy.yaml\n    access: [ { accessToken: {} } ]\n");
    expect(() => load(both, { "/etc/edge/blog-policy.yaml": "[]" })).toThrow(
      /policy "blog-policy\.yaml" cannot be combined with ingress\[2\]\.access/,
    );
  });
});
