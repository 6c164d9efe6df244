import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { configDefaults, defineConfig } from "vitest/config";
import { DELIBERATE_BODY_ABORT, quietOutput } from "./test/helpers/console.ts";

// Two projects in one `vitest run`:
//  - "workers": test/**/*.workers.test.ts inside workerd (@cloudflare/vitest-pool-workers,
//    vitest 4 plugin API), Worker = test/relay/wrangler.test.toml (main ../../src/index.ts).
//  - "node": every other test/**/*.test.ts in plain Node (forks), e2e tests that start wrangler.
// The workers pool writes workerd's log lines to this process's stdout and stderr: a passing run
// should not show workerd's report of a response body the relay cut on purpose
// (test/helpers/console.ts).
quietOutput(DELIBERATE_BODY_ABORT);

const wranglerTestConfig = fileURLToPath(new URL("./test/relay/wrangler.test.toml", import.meta.url));

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: wranglerTestConfig },
            miniflare: {
              // Test-only secret; takes precedence over wrangler vars / .dev.vars.
              // FUZZ_SEED / FUZZ_RUNS reach test/relay/fuzz.workers.test.ts (workerd has no process.env).
              bindings: {
                RELAY_SECRET: "test-relay-secret-0123456789abcdef",
                FUZZ_SEED: process.env.FUZZ_SEED ?? "",
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? "",
              },
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.workers.test.ts"],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/**/*.workers.test.ts"],
          pool: "forks",
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
