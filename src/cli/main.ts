/** The command line's entry: dispatches to the runner, `exec`, `doctor`, or a built-in executor. */
import { stripVTControlCharacters } from "node:util";
import { type ArgsDef, type CommandDef, renderUsage, runMain } from "citty";
import { EXECUTOR_ENTRY, runBuiltinExecutor } from "../executors/builtin.ts";
import { runnerCommand } from "./runner-command.ts";

/**
 * Entry point: `agent-runner [flags]` runs the runner, `agent-runner exec …` one local invocation,
 * `agent-runner doctor [flags]` checks a runner's setup, `agent-runner __executor <name>` a
 * built-in executor. Dispatched here on the first argument:
 * citty would also run the runner's `run` after a subcommand. exec and the executors are imported
 * only when used, so the runner does not load them (nor the Agent SDK).
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  const [first, ...rest] = argv;
  if (first === "exec") {
    const { execCommand } = await import("./exec-command.ts");
    await runMain(execCommand, { rawArgs: rest, showUsage });
    return;
  }
  if (first === "doctor") {
    const { doctorCommand } = await import("./doctor-command.ts");
    await runMain(doctorCommand, { rawArgs: rest, showUsage });
    return;
  }
  if (first === EXECUTOR_ENTRY) {
    process.exit(await runBuiltinExecutor(rest));
  }
  await runMain(runnerCommand, { rawArgs: argv, showUsage });
}

/** `--help`, with citty's colours only on a terminal: piped into a file or a pager it stays plain. */
async function showUsage<T extends ArgsDef = ArgsDef>(command: CommandDef<T>, parent?: CommandDef<T>): Promise<void> {
  const usage = await renderUsage(command, parent);
  console.log(`${process.stdout.isTTY ? usage : stripVTControlCharacters(usage)}\n`);
}
