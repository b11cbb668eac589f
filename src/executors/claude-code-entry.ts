/**
 * The Claude Code executor's entry (`ao-claude-code-exec`, `agent-runner __executor claude-code`):
 * watches for stops, reads the invocation, starts Claude Code early when it can, and only then
 * loads the executor itself (the Agent SDK, the validator) and runs it. Loads in a few ms.
 */
import { type Lifecycle, lifecycleFrom } from "../protocol/lifecycle.ts";
import type { Env } from "../shared/env.ts";
import { EarlyClaudeCode, plannedSpawn } from "./claude-code-early.ts";
import { CLAUDE_CODE_EXECUTOR_NAME } from "./claude-code-settings.ts";
import { ExecutorLog, isDebugEnabled } from "./kit/executor-log.ts";
import { StdinReader } from "./kit/stdin-reader.ts";
import { StopWatch } from "./kit/stop-watch.ts";

/** The lifecycle asked for; undefined when the variable holds something else (the kit says so). */
function lifecycleOrNone(env: Env): Lifecycle | undefined {
  try {
    return lifecycleFrom(env);
  } catch {
    return undefined;
  }
}
/** Entry point: returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // --help, --schema, or a wrong argument: nothing to start.
  if (argv.length > 0) return (await import("./claude-code.ts")).main(argv);
  const env = process.env;
  const log = new ExecutorLog(CLAUDE_CODE_EXECUTOR_NAME, isDebugEnabled(env));
  const stop = new StopWatch(env, log);
  const stdin = StdinReader.standard();
  const lifecycle = lifecycleOrNone(env);
  const invocationText = lifecycle && (await stdin.readInvocation(lifecycle));
  const plan = stop.signal.aborted || !invocationText ? undefined : plannedSpawn(invocationText, env);
  const early = plan && EarlyClaudeCode.start(plan, log);
  // Stopped before the SDK has it: it goes at once (once the SDK has it, the run's stop ends it).
  const onStop = () => void early?.discard();
  stop.signal.addEventListener("abort", onStop, { once: true });
  try {
    const executor = await import("./claude-code.ts");
    return await executor.main(argv, undefined, { watch: stop, stdin, invocationText, early });
  } finally {
    stop.signal.removeEventListener("abort", onStop);
    // Never handed to the SDK (the run failed or stopped before): it must not outlive the executor.
    await early?.discard();
  }
}
