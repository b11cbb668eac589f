/** How a command ends on bad operator input: its message, exit code 1, no stack. */
import { ConfigError } from "../shared/errors.ts";
import { log } from "../shared/log.ts";

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
