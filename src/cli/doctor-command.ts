/**
 * `agent-runner doctor`: with the runner's own flags and environment, checks what a runner needs
 * (config, profile, executor, Claude Code, containment, token, coordinator, directories, ports) and prints one
 * ✓/✗ line each. Takes no run and registers nothing; exits 0 only if every check passes.
 */
import { defineCommand } from "citty";
import { runnerFlags } from "../config/flags.ts";
import {
  DEFAULT_EXECUTOR_PATH,
  DEFAULT_EXECUTOR_TYPE,
  describeProfiles,
  type ExecutorProfile,
} from "../config/profiles.ts";
import { type RunnerConfig, resolveConfig } from "../config/runner-config.ts";
import { messageOf } from "../shared/errors.ts";
import { setLogLevel } from "../shared/log.ts";
import { assertKnownFlags, commandArgs } from "./args.ts";
import { checkContainment, checkCoordinator, checkDirectory, checkPorts, checkToken } from "./doctor-checks.ts";
import { type CheckResult, executorChecks } from "./executor-checks.ts";

const doctorArgs = commandArgs(runnerFlags);

function print(name: string, result: CheckResult): boolean {
  process.stdout.write(`${result.ok ? "✓" : "✗"} ${name}: ${result.detail}\n`);
  return result.ok;
}

function configSummary(config: RunnerConfig): string {
  const parts = [`coordinator ${config.coordinatorUrl}`, `project dir ${config.projectDir}`];
  if (config.tags.length) parts.push(`tags ${config.tags.join(",")}`);
  if (config.maxConcurrentRuns) parts.push(`at most ${config.maxConcurrentRuns} runs at once`);
  if (config.runTimeoutSeconds) parts.push(`run timeout ${config.runTimeoutSeconds} s`);
  if (config.maxRuns) parts.push(`exits after ${config.maxRuns} run(s)`);
  if (config.exitAfterIdleSeconds) parts.push(`exits after ${config.exitAfterIdleSeconds} s idle`);
  return parts.join(", ");
}

/** The profile as the runner would load it: its line, and what its executor needs (the runner's start-up checks). */
async function profileChecks(config: RunnerConfig): Promise<boolean[]> {
  const name = config.profile;
  const fail = (detail: string) => [print("profile", { ok: false, detail })];
  let profile: Pick<ExecutorProfile, "type" | "command" | "source" | "sandbox"> = {
    type: DEFAULT_EXECUTOR_TYPE,
    command: DEFAULT_EXECUTOR_PATH,
    source: "default, no --profile",
  };
  if (name !== undefined) {
    let listing: ReturnType<typeof describeProfiles>;
    try {
      listing = describeProfiles({ profilesDir: config.profilesDir });
    } catch (error) {
      return fail(messageOf(error));
    }
    const entry = listing.find((candidate) => candidate.name === name);
    if (!entry) return fail(`Profile '${name}' not found. Available: ${listing.map((p) => p.name).join(", ")}`);
    if (!entry.profile) return fail(entry.error ?? "invalid");
    profile = entry.profile;
  }
  const results = [
    print("profile", {
      ok: true,
      detail: `'${name ?? DEFAULT_EXECUTOR_TYPE}' (${profile.source}), type ${profile.type}${profile.sandbox ? ", sandboxed" : ""}`,
    }),
  ];
  for (const check of executorChecks(profile, config, process.env)) results.push(print(check.name, await check.result));
  return results;
}

export const doctorCommand = defineCommand({
  meta: {
    name: "agent-runner doctor",
    description:
      "Checks, with the runner's flags and environment, what a runner needs: config, profile, executor, Claude Code " +
      "binary, containment, token, coordinator, directories and ports; one ✓/✗ line each. Takes no run and registers nothing. " +
      "Exits 0 only if every check passes.",
  },
  args: doctorArgs,
  async run({ rawArgs, args }) {
    let config: RunnerConfig;
    try {
      assertKnownFlags(rawArgs, doctorArgs);
      config = resolveConfig(args);
    } catch (error) {
      print("config", { ok: false, detail: messageOf(error) });
      process.exit(1);
    }
    setLogLevel(config.logLevel);
    const results = [print("config", { ok: true, detail: configSummary(config) })];

    results.push(...(await profileChecks(config)));
    results.push(print("containment", checkContainment()));

    const token = await checkToken(config);
    results.push(print("token", token.result));
    results.push(print("coordinator", await checkCoordinator(config, token.source)));
    results.push(print("project dir", checkDirectory(config.projectDir)));
    // The run journal, kept so that a restart after a crash can clean up after it.
    results.push(print("state dir", checkDirectory(config.stateDir)));
    for (const [name, result] of await checkPorts(config)) results.push(print(name, result));

    const failed = results.filter((ok) => !ok).length;
    process.stdout.write(
      failed === 0 ? `All ${results.length} checks passed\n` : `${failed} of ${results.length} checks failed\n`,
    );
    process.exit(failed === 0 ? 0 : 1);
  },
});
