// Loads the module --bridge-plugin names (a built-in, a file, or a package) with import() and
// checks its default export is a plugin; every failure is a ConfigError naming the flag.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, join } from "node:path";
import { pathToFileURL } from "node:url";
import { ConfigError } from "../config.ts";
import type { LoadedPlugin } from "./exchange.ts";
import type { BridgePlugin } from "./plugin.ts";

/** The plugins that ship with the agent. */
export const BUILT_IN_PLUGINS: Record<string, () => Promise<{ default: unknown }>> = {
  raw: () => import("./raw.ts"),
  resp: () => import("./resp.ts"),
};

/** Where --bridge-plugin points, as config.ts resolved it. */
export interface PluginRef {
  /** As written: "raw", "./codec.ts", "@acme/codec". */
  text: string;
  kind: "builtin" | "file" | "package";
  /** A built-in's name, a file's absolute path, or a package name. */
  specifier: string;
  /** For a package: the folder resolution starts from (the working directory, or the --config file's). */
  from: string;
  /** How errors start: `--bridge-plugin "./codec.ts"` or `agent.json line 4: "bridge-plugin": "./codec.ts"`. */
  subject: string;
  where: { field: string; file?: string; line?: number };
}

const HOOKS = ["encodeHeaders", "encodeData", "onUpstreamData"] as const;
const cache = new Map<string, Promise<LoadedPlugin>>();

/** Imports and checks the plugin once per process; later calls share the result. Rejects with ConfigError. */
export function loadBridgePlugin(ref: PluginRef): Promise<LoadedPlugin> {
  const key = `${ref.kind}\0${ref.specifier}\0${ref.kind === "package" ? ref.from : ""}`;
  let loading = cache.get(key);
  if (!loading) {
    loading = load(ref);
    cache.set(key, loading);
  }
  return loading;
}

async function load(ref: PluginRef): Promise<LoadedPlugin> {
  let module: unknown;
  if (ref.kind === "builtin") {
    module = await BUILT_IN_PLUGINS[ref.specifier]();
  } else {
    if (ref.kind === "file" && !existsSync(ref.specifier)) throw problem(ref, `names a file that does not exist (${ref.specifier})`);
    const url = ref.kind === "file" ? pathToFileURL(ref.specifier).href : resolvePackage(ref);
    try {
      module = await import(url);
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code;
      if (ref.kind === "package" && code === "ERR_MODULE_NOT_FOUND" && String((err as Error).message).includes(`'${ref.specifier}'`)) {
        throw problem(
          ref,
          `is neither a built-in plugin (${Object.keys(BUILT_IN_PLUGINS).join(", ")}) nor a package installed in ${ref.from} or beside edge-relay; to load a file, write a path like ./${ref.text}`,
        );
      }
      if (ref.kind === "file" && code === "ERR_UNKNOWN_FILE_EXTENSION" && /\.[mc]?ts$/.test(ref.specifier)) {
        // The packaged agent is plain JavaScript; only the repository's tsx launcher or a Node
        // that strips types (22.18 and later) can import a TypeScript plugin.
        throw problem(
          ref,
          `is TypeScript, which Node ${process.versions.node} cannot load: compile it to a .js or .mjs file (e.g. \`npx esbuild ${ref.text} --format=esm --outfile=${ref.text.replace(/\.[mc]?ts$/, ".mjs")}\`) or run Node 22.18 or later`,
        );
      }
      throw problem(ref, `could not be loaded: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const exported = (module as { default?: unknown }).default;
  if (exported === null || typeof exported !== "object") {
    const hint =
      module && typeof module === "object" && ("plugin" in module || "encodeHeaders" in module)
        ? " (export the plugin object as the module's default: `export default { ... }`)"
        : "";
    throw problem(ref, `has no bridge plugin as its default export${hint}`);
  }
  const missing = HOOKS.filter((hook) => typeof (exported as Record<string, unknown>)[hook] !== "function");
  if (missing.length > 0) {
    throw problem(
      ref,
      `exports a default that is not a bridge plugin: it needs the functions ${HOOKS.join(", ")} (missing ${missing.join(", ")})`,
    );
  }
  const plugin = exported as BridgePlugin;
  const name = typeof plugin.name === "string" && plugin.name ? plugin.name : ref.kind === "file" ? basename(ref.specifier) : ref.specifier;
  return { plugin, name };
}

/**
 * A package as `require.resolve` finds it from `ref.from`; failing that (not installed there, or
 * an ESM-only package without a `require`/`default` export), the bare name, which import()
 * resolves from the agent's own folder.
 */
function resolvePackage(ref: PluginRef): string {
  try {
    return pathToFileURL(createRequire(join(ref.from, "noop.js")).resolve(ref.specifier)).href;
  } catch {
    return ref.specifier;
  }
}

function problem(ref: PluginRef, predicate: string): ConfigError {
  return new ConfigError(`${ref.subject} ${predicate}.`, ref.where);
}
