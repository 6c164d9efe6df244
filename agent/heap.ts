// How V8 collects the agent's heap while bodies stream through it (docs/performance.md,
// "Libraries loaded at start-up").
import v8 from "node:v8";

/**
 * Turns off V8's incremental marking in this process. Every relayed MiB allocates about 2 MiB of
 * short-lived Buffers, which V8 counts against the old generation's limit until a scavenge frees
 * them. With incremental marking, an agent whose heap started with more than its own code (the
 * --config file's parsers, say) began a full collection several times a second during a
 * transfer; without it V8 collects the old generation when it is full, as the agent that loaded
 * nothing else did.
 */
export function collectWhenFull(): void {
  v8.setFlagsFromString("--no-incremental-marking");
}
