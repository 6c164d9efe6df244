// Throwaway PKI for mesh tests: a CA, a server certificate with a SPIFFE URI SAN, a client
// certificate, and a client certificate from another (untrusted) CA, made with openssl.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const SERVER_ID = "spiffe://cluster.local/ns/default/sa/server";
export const CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client";

export interface Pki {
  dir: string;
  /** File paths (PEM). */
  files: { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string; rogueCert: string; rogueKey: string };
  /** The same, as text. */
  pem: Record<keyof Pki["files"], string>;
}

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function ca(dir: string, name: string): void {
  openssl(
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    dir,
  );
}

function leaf(dir: string, name: string, issuer: string, san: string, usage: string): void {
  openssl(
    [
      "req",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/O=cluster.local`,
    ],
    dir,
  );
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\nbasicConstraints=CA:FALSE\n`);
  openssl(
    [
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${issuer}.pem`,
      "-CAkey",
      `${issuer}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    ],
    dir,
  );
}

/** Makes a fresh PKI in a temporary folder. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "edge-relay-pki-"));
  ca(dir, "ca");
  ca(dir, "rogue-ca");
  leaf(dir, "server", "ca", `URI:${SERVER_ID},IP:127.0.0.1,DNS:localhost`, "serverAuth");
  leaf(dir, "client", "ca", `URI:${CLIENT_ID}`, "clientAuth");
  leaf(dir, "rogue", "rogue-ca", `URI:${CLIENT_ID}`, "clientAuth");
  const files = {
    ca: join(dir, "ca.pem"),
    serverCert: join(dir, "server.pem"),
    serverKey: join(dir, "server.key"),
    clientCert: join(dir, "client.pem"),
    clientKey: join(dir, "client.key"),
    rogueCert: join(dir, "rogue.pem"),
    rogueKey: join(dir, "rogue.key"),
  };
  const pem = Object.fromEntries(Object.entries(files).map(([k, f]) => [k, readFileSync(f, "utf8")])) as Pki["pem"];
  return { dir, files, pem };
}
