/** Where the runner is installed: profiles/ and relative executor commands are found from here. */
import { dirname, resolve } from "node:path";

/** True when running as the single executable built by `bun build --compile`. */
export const isCompiled = import.meta.dir.startsWith("/$bunfs") || /^[A-Z]:[\\/]~BUN/i.test(import.meta.dir);

/** From source, the package root; compiled, the directory holding the executable. */
export const INSTALL_DIR = isCompiled ? dirname(process.execPath) : resolve(import.meta.dir, "..", "..");
