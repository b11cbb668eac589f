/**
 * The executors shipped with the runner: one list, read by profiles (to resolve a command to the
 * runner's own executable when compiled) and by `agent-runner __executor <name>` (to run one).
 * Each executor's code is imported only when it runs, so the runner never loads the Agent SDK.
 */
import { normalize } from "node:path";
import { isCompiled } from "../config/install-dir.ts";

/** The first argument that makes the runner's executable act as one of its built-in executors. */
export const EXECUTOR_ENTRY = "__executor";

type ExecutorMain = (argv: string[]) => Promise<number>;

interface BuiltinExecutor {
  /** The command a profile names it with, relative to the install directory. */
  command: string;
  load: () => Promise<ExecutorMain>;
}

const BUILTIN_EXECUTORS: Record<string, BuiltinExecutor> = {
  "claude-code": {
    command: "executors/claude-code/ao-claude-code-exec",
    load: async () => (await import("./claude-code-entry.ts")).main,
  },
  test: {
    command: "executors/test-executor/ao-test-exec",
    load: async () => (await import("./test-executor.ts")).main,
  },
};

/**
 * The compiled runner carries the built-in executors; when a profile names one and no such file
 * is beside the executable, the executable itself runs it. From source the files are always there.
 */
export function builtinExecutorArgv(command: string): string[] | undefined {
  const name = isCompiled ? builtinExecutorName(command) : undefined;
  return name === undefined ? undefined : [process.execPath, EXECUTOR_ENTRY, name];
}

/** The built-in executor a profile's command names, if any. */
export function builtinExecutorName(command: string): string | undefined {
  const wanted = normalize(command);
  return Object.keys(BUILTIN_EXECUTORS).find((name) => BUILTIN_EXECUTORS[name]!.command === wanted);
}

/** `agent-runner __executor <name> [args]`: runs the named built-in executor; returns its exit code. */
export async function runBuiltinExecutor(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const executor = name === undefined ? undefined : BUILTIN_EXECUTORS[name];
  if (!executor) {
    const problem = name === undefined ? "missing executor name" : `unknown built-in executor '${name}'`;
    process.stderr.write(
      `agent-runner ${EXECUTOR_ENTRY}: ${problem} (known: ${Object.keys(BUILTIN_EXECUTORS).join(", ")})\n`,
    );
    return 1;
  }
  return (await executor.load())(rest);
}
