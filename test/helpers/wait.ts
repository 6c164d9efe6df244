// Waiting on events in tests: a promise with a deadline, a polled condition, a promise settled
// from outside. Runtime-neutral (no node: or cloudflare: imports), shared by Node and workerd tests.

/** Resolves or rejects like `promise`; rejects naming `what` if it has not settled after `ms`. */
export function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `check()` holds, asking every `everyMs`; rejects naming `what` after `ms`. For
 * state that only a query shows (an API, a counter): anything that fires an event is awaited with
 * `within` instead.
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, ms = 10_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise with its resolve and reject, for settling from a callback. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}
