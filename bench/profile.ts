// CPU profile of the relay's JavaScript inside workerd, over the inspector protocol (workerd
// --inspector-addr): the same .cpuprofile format `node --cpu-prof` writes for the agent.
import WebSocket from "ws";

export interface InspectorProfile {
  /** Stops profiling; resolves with the .cpuprofile JSON. */
  stop(): Promise<unknown>;
}

/** Starts sampling the isolate behind the first inspector target of workerd at `port`. */
export async function profileWorkerd(port: number, intervalUs = 200): Promise<InspectorProfile> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl?: string;
    id: string;
  }>;
  const url = targets[0]?.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${targets[0]?.id}`;
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.error ? Promise.reject(new Error(msg.error.message)) : msg.result);
  });
  const call = (method: string, params: object = {}) =>
    new Promise<unknown>((resolve) => {
      const n = ++id;
      pending.set(n, resolve);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: intervalUs });
  await call("Profiler.start");
  return {
    stop: async () => {
      const result = (await call("Profiler.stop")) as { profile: unknown };
      ws.close();
      return result.profile;
    },
  };
}
