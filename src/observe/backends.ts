// The Worker's side of the observers' views: asks the directory which backends to look at, then
// each backend's Durable Object for its view, a batch at a time.
import type { Env } from "../env.ts";
import { askHub } from "../hub-route.ts";
import { backendDirectory } from "./directory.ts";
import type { HubView } from "./hub-view.ts";

/** Backend objects asked at once (each is a subrequest). */
const BATCH = 50;
/** Most backends one listing asks about, under the platform's subrequest limit. */
export const MAX_OBSERVED_BACKENDS = 500;

/**
 * The views of the backends the directory lists: with `recent`, also those whose tunnels closed
 * within the last day (their counters still count). Without `recent`, only backends whose object
 * still holds an open tunnel are kept, whatever the directory last heard.
 */
export async function observeBackends(env: Env, url: string, recent = false): Promise<HubView[]> {
  const names = (await backendDirectory(env).backends(recent)).slice(0, MAX_OBSERVED_BACKENDS);
  const views: HubView[] = [];
  for (let i = 0; i < names.length; i += BATCH) {
    views.push(...(await Promise.all(names.slice(i, i + BATCH).map((name) => observeBackend(env, url, name)))));
  }
  return recent ? views : views.filter((v) => v.tunnels.length > 0);
}

/** One backend object's view (its `observe` op). */
export async function observeBackend(env: Env, url: string, backend: string): Promise<HubView> {
  return (await (await askHub(env, url, { op: "observe", backend })).json()) as HubView;
}
