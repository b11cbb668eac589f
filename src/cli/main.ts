import { runMain } from "citty";
import { runnerCommand } from "./runner-command.ts";

/** Entry point: `agent-runner [flags]` runs the runner. */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runMain(runnerCommand, { rawArgs: argv });
}
