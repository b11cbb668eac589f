/** Errors that carry a message meant for the operator, printed as is. */

/**
 * An error in what the operator gave us (flags, env, profile files). The CLI prints its message
 * as is, without a stack, and exits 1: the message must name the input and what was expected.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The message of anything thrown, for a log line or a report. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
