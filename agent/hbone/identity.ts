// SPIFFE identities of a mesh peer: the URI SANs of its certificate (DNS names are not used).
// Pure: parses Node's `subjectaltname` string.

/** The URI SANs in a certificate's subjectaltname, e.g. "DNS:a, URI:spiffe://td/ns/x/sa/y". */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  const uris: string[] = [];
  // Entries are ", "-separated; a quoted entry may itself contain commas (Node quotes those).
  for (const m of subjectaltname.matchAll(/(?:^|, )URI:("(?:[^"\\]|\\.)*"|[^,]*)/g)) {
    const raw = m[1];
    uris.push(raw.startsWith('"') ? JSON.parse(raw) : raw);
  }
  return uris;
}

/**
 * Why a peer with these URI SANs is not acceptable, or undefined when it is: it must carry one of
 * the expected SPIFFE identities (any identity when none is expected).
 */
export function identityProblem(subjectaltname: string | undefined, expected: readonly string[]): string | undefined {
  if (expected.length === 0) return undefined;
  const have = uriSans(subjectaltname);
  if (have.some((uri) => expected.includes(uri))) return undefined;
  return `the mesh proxy's certificate carries ${have.length ? have.join(", ") : "no URI SAN"}, not ${expected.join(" or ")}`;
}
