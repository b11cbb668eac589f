import { ConfigError } from "../errors.ts";
import { log } from "../log.ts";

/** Runs a command body; bad operator input ends the process with its message and exit code 1. */
export async function exitOnConfigError(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error(error.message);
    process.exit(1);
  }
}
