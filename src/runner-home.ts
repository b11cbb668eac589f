import { dirname, resolve } from "node:path";

/** True when running as the single executable built by `bun build --compile`. */
export const isCompiled =
  import.meta.dir.startsWith("/$bunfs") || /^[A-Z]:[\\/]~BUN/i.test(import.meta.dir);

/**
 * The runner's own directory: where `profiles/` and relative executor commands are looked up.
 * From source that is the package root; compiled, the directory holding the executable.
 */
export const RUNNER_HOME = isCompiled ? dirname(process.execPath) : resolve(import.meta.dir, "..");
