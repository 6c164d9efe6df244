// Types for tests that run inside workerd (test/**/*.workers.test.ts): the relay's bindings as
// `env` and its main module as `exports` from "cloudflare:workers".
import type { Env as RelayEnv } from "../src/env.ts";

declare global {
  namespace Cloudflare {
    interface Env extends RelayEnv {}
    interface GlobalProps {
      mainModule: typeof import("../src/index.ts");
      durableNamespaces: "BackendHub" | "TokenRegistry";
    }
  }
}
