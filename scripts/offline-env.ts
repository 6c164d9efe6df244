// Keeps wrangler and miniflare offline and quiet (docs/platform-notes.md "Local runs and tests"): no
// update check (the banner triggers it), no metrics, no cf-object fetch. Shared by npm start,
// the test harness and the benchmark.

/** The environment variables, for a child process's env. */
export const OFFLINE_ENV = {
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_HIDE_BANNER: "true",
} as const;

/** Applies them to this process (wrangler's startWorker reads them from here). */
export function useOfflineWrangler(): void {
  Object.assign(process.env, OFFLINE_ENV);
  process.env.WRANGLER_LOG ??= "error";
}
