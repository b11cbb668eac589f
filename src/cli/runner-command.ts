/** `agent-runner [flags]`: runs the runner (or lists the profiles). */
import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { runnerFlags } from "../config/flags.ts";
import type { ProfileSandbox } from "../config/profiles.ts";
import { hideClientSecret, resolveConfig, resolveLogFormat, resolveProfilesDir } from "../config/runner-config.ts";
import type { JsonObject } from "../shared/json.ts";
import { setLogContext, setLogFormat, setLogLevel } from "../shared/log.ts";
import { assertKnownFlags, commandArgs } from "./args.ts";
import { exitOnConfigError } from "./exit.ts";

export const runnerArgs = commandArgs(runnerFlags);

/** The profile-list column of a profile's sandbox: `-`, `sandboxed`, or that with its extra paths. */
function sandboxColumn(sandbox: ProfileSandbox | undefined): string {
  if (!sandbox) return "-";
  if (sandbox === true) return "sandboxed";
  const extras = [];
  if (sandbox.extra_writable?.length) extras.push(`also writable: ${sandbox.extra_writable.join(", ")}`);
  if (sandbox.extra_hidden?.length) extras.push(`also hidden: ${sandbox.extra_hidden.join(", ")}`);
  return extras.length ? `sandboxed (${extras.join("; ")})` : "sandboxed";
}

/** The profile-list column of a profile's budget: its config's `max_budget_usd` and `max_turns`, or `-`. */
function limitsColumn(config: JsonObject | undefined): string {
  const limits = ["max_budget_usd", "max_turns"].flatMap((key) =>
    typeof config?.[key] === "number" ? [`${key} ${config[key]}`] : [],
  );
  return limits.length ? limits.join(", ") : "-";
}

async function printProfileList(profilesDir: string | undefined): Promise<void> {
  const { describeProfiles } = await import("../config/profiles.ts");
  const entries = describeProfiles({ profilesDir });
  const rows = entries.map((entry) => [
    entry.name,
    entry.profile?.type ?? "-",
    entry.profile?.lifecycle ?? "-",
    // What actually runs: in the single executable, a built-in executor is the executable itself.
    entry.argv?.join(" ") ?? entry.profile?.command ?? "-",
    entry.profile ? sandboxColumn(entry.profile.sandbox) : "-",
    limitsColumn(entry.profile?.config),
    entry.source,
    entry.error ? `(unusable: ${entry.error})` : "",
  ]);
  // Every column as wide as its widest cell (the last one's padding is trimmed).
  const width = (column: number) => Math.max(...rows.map((row) => row[column]!.length));
  const widths = rows[0]?.map((_, column) => width(column)) ?? [];
  for (const row of rows) {
    console.log(
      row
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join("  ")
        .trimEnd(),
    );
  }
}

export const runnerCommand = defineCommand({
  meta: {
    name: "agent-runner",
    version: pkg.version,
    description:
      "Registers with the agent coordinator, long-polls it for runs and executes each with the profile's executor.\n" +
      "Also: `agent-runner exec --help` runs one invocation locally, without a coordinator;\n" +
      "`agent-runner doctor [flags]` checks, with these flags, what a runner needs, without taking a run.",
  },
  args: runnerArgs,
  run: ({ rawArgs, args }) =>
    exitOnConfigError(async () => {
      assertKnownFlags(rawArgs, runnerArgs);
      // First, so that every line after it (a config error included) has the chosen format.
      setLogFormat(resolveLogFormat(args));
      if (args["profile-list"]) {
        await printProfileList(resolveProfilesDir(args));
        return;
      }
      const config = resolveConfig(args);
      hideClientSecret();
      setLogLevel(config.logLevel);
      // Profiles bring the validator; loaded here so that --help and --version stay instant.
      const { defaultProfileContent, readProfile } = await import("../config/profiles.ts");
      const profile =
        config.profile === undefined
          ? defaultProfileContent()
          : readProfile(config.profile, { profilesDir: config.profilesDir });
      setLogContext({ profile: profile.name });
      // doctor's executor checks (a Claude Code binary that runs, the sandbox, the command): a
      // runner that would fail every run must not register and drain the queue. Started now, they
      // run while the runner starts its servers, and are awaited before it registers.
      const { runnable } = await import("./executor-checks.ts");
      const executor = runnable(profile, config, process.env);
      const { startRunner } = await import("../runner/start-runner.ts");
      await startRunner(config, profile, executor);
    }),
});
