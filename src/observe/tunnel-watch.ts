// What a backend's Durable Object tells the observers about its tunnels: bytes each way for the
// counters, and the open-tunnel count for the backend directory (src/observe/directory.ts).
import type { Env } from "../env.ts";
import { backendDirectory } from "./directory.ts";

/** The hooks the tunnel registry calls: each is a few operations, as they run per message. */
export interface TunnelWatch {
  /** The relay sent `bytes` on a tunnel. */
  sent(bytes: number): void;
  /** An agent sent `bytes` on a tunnel. */
  received(bytes: number): void;
  /** `backend` now has `open` open tunnels (after a connect or a close). */
  changed(backend: string, open: number): void;
}

/** Sends a backend's open-tunnel count to the directory whenever it differs from the last one sent. */
export class TunnelReports {
  /** The count last sent; unknown in an object rebuilt after hibernation, which sends again. */
  private reported?: number;
  private lastAt = 0;

  constructor(private readonly env: Env) {}

  report(backend: string, open: number): void {
    if (this.reported === open || !this.env.BACKEND_DIRECTORY) return;
    this.reported = open;
    // Stamps increase within this object, and wall time orders them across its rebuilds.
    this.lastAt = Math.max(Date.now(), this.lastAt + 1);
    backendDirectory(this.env)
      .report(backend, open, this.lastAt)
      .catch((err) => {
        // The next connect, close or listing sends the count again.
        this.reported = undefined;
        console.error("backend directory report failed", err);
      });
  }
}
