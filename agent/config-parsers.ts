// The --config file's parsers (yaml, ajv), loaded on first use. The agent command uses them only in
// the worker thread of config-worker.ts: in the isolate that relays bodies they left V8 collecting
// the whole heap several times a second during transfers (docs/performance.md).
import { createRequire } from "node:module";
import type * as AjvModule from "ajv";
import type * as YamlModule from "yaml";

let yamlModule: typeof YamlModule | undefined;
let ajvModule: typeof AjvModule | undefined;

/**
 * Loads a package synchronously. A bundle (`npm run build`) turns the plain `require` call into its
 * own copy of the package; the TypeScript sources, run as ES modules, have no `require` of their own.
 */
function load<T>(bundled: () => T, name: string): T {
  return typeof require === "function" ? bundled() : (createRequire(import.meta.url)(name) as T);
}

/** The `yaml` package. */
export function yaml(): typeof YamlModule {
  yamlModule ??= load(() => require("yaml") as typeof YamlModule, "yaml");
  return yamlModule;
}

/** The `ajv` package. */
export function ajv(): typeof AjvModule {
  ajvModule ??= load(() => require("ajv") as typeof AjvModule, "ajv");
  return ajvModule;
}
