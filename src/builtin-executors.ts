import { normalize } from "node:path";
import { isCompiled } from "./runner-home.ts";

/** The first argument that makes the runner's executable act as one of its built-in executors. */
export const EXECUTOR_ENTRY = "__executor";

/** Executors shipped with the runner, by the command a profile names them with. */
export const BUILTIN_EXECUTORS: Record<string, string> = {
  "executors/claude-code/ao-claude-code-exec": "claude-code",
  "executors/test-executor/ao-test-exec": "test",
};

/**
 * The compiled runner carries the built-in executors; when a profile names one and no such file
 * is beside the executable, the executable itself runs it. From source the files are always there.
 */
export function builtinExecutorArgv(command: string): string[] | undefined {
  const name = BUILTIN_EXECUTORS[normalize(command)];
  if (!isCompiled || !name) return undefined;
  return [process.execPath, EXECUTOR_ENTRY, name];
}
