import { expect } from "bun:test";
import { ConfigError } from "../../src/shared/errors.ts";

/** Runs `fn` and returns the ConfigError it throws; fails the test if it throws nothing or something else. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}
