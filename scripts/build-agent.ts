// Bundles the agent into one ES module file that runs on plain Node: the package's bin
// (`npm run build` writes dist/edge-relay.mjs) and the agent every benchmark script runs, so the
// bench measures the program users install rather than the sources run through tsx.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

/**
 * Builds `root`'s agent into `<root>/dist/edge-relay.mjs` and returns that path. The file stays
 * inside the checkout so that `ws`, the one package left out of the bundle, resolves from the
 * checkout's node_modules. A checkout from before the agent had agent/bin/edge-relay.ts gets the
 * same bundle made from its agent/cli.ts, so comparisons with older commits bundle both sides.
 */
export async function buildAgent(root: string): Promise<string> {
  const outfile = join(root, "dist", "edge-relay.mjs");
  const entry = join(root, "agent", "bin", "edge-relay.ts");
  const input = existsSync(entry)
    ? { entryPoints: [entry] }
    : {
        stdin: {
          contents: 'import { main } from "../cli.ts";\nprocess.exitCode = await main(process.argv.slice(2));\n',
          resolveDir: join(root, "agent", "bin"),
          sourcefile: "edge-relay.ts",
          loader: "ts" as const,
        },
      };
  await build({
    ...input,
    outfile,
    bundle: true,
    platform: "node",
    target: "node20.3",
    format: "esm",
    external: ["ws"],
    // Bundled CommonJS packages call require(): an ES module has none of its own.
    banner: { js: "import { createRequire as __agentRequire } from 'node:module'; const require = __agentRequire(import.meta.url);" },
    logLevel: "warning",
  });
  return outfile;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await buildAgent(fileURLToPath(new URL("../", import.meta.url)));
}
