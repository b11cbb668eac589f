/** The command line's entry: dispatches to the runner, `exec` or `doctor` (index.ts runs `__executor`). */
import { stripVTControlCharacters } from "node:util";
import { type ArgsDef, type CommandDef, renderUsage, runMain } from "citty";
import { runnerCommand } from "./runner-command.ts";

/**
 * Entry point: `agent-runner [flags]` runs the runner, `agent-runner exec …` one local invocation,
 * `agent-runner doctor [flags]` checks a runner's setup (`agent-runner __executor <name>` is
 * dispatched by index.ts, before this module loads). Dispatched here on the first argument:
 * citty would also run the runner's `run` after a subcommand. exec is imported only when used, so
 * the runner does not load it (nor the executors and the Agent SDK).
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
  await runMain(runnerCommand, { rawArgs: argv, showUsage });
}

/** `--help`, with citty's colours only on a terminal: piped into a file or a pager it stays plain. */
async function showUsage<T extends ArgsDef = ArgsDef>(command: CommandDef<T>, parent?: CommandDef<T>): Promise<void> {
  const usage = await renderUsage(command, parent);
  console.log(`${process.stdout.isTTY ? usage : stripVTControlCharacters(usage)}\n`);
}
