// The ConfigError a config call throws, for tests of the agent's configuration messages.
import { ConfigError } from "../../agent/config.ts";

/** Runs `run` and returns the ConfigError it throws; fails when it throws nothing or something else. */
export function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}
