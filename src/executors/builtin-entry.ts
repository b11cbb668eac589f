/**
 * `agent-runner __executor <name> [args]`: the compiled runner carries the built-in executors and
 * runs one of them in its own process (see builtinExecutorArgv). Each is imported only when asked
 * for, so the runner's own start-up never loads the Agent SDK.
 */
import { EXECUTOR_ENTRY } from "../builtin-executors.ts";

type ExecutorMain = (argv: string[]) => Promise<number>;

const BUILTIN_EXECUTOR_MAINS: Record<string, () => Promise<ExecutorMain>> = {
  "claude-code": async () => (await import("./claude-code.ts")).main,
  test: async () => (await import("./test-executor.ts")).main,
};

/** Runs the named built-in executor; returns its exit code. */
export async function runBuiltinExecutor(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name === undefined ? undefined : BUILTIN_EXECUTOR_MAINS[name];
  if (!load) {
    process.stderr.write(
      `agent-runner ${EXECUTOR_ENTRY}: ${name === undefined ? "missing executor name" : `unknown built-in executor '${name}'`} (known: ${Object.keys(BUILTIN_EXECUTOR_MAINS).join(", ")})\n`,
    );
    return 1;
  }
  return (await load())(rest);
}
