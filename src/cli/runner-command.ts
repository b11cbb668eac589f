import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { resolveConfig, resolveProfilesDir } from "../config.ts";
import { setVerbose } from "../log.ts";
import { assertKnownFlags } from "./flags.ts";
import { exitOnConfigError } from "./exit.ts";

export const runnerArgs = {
  profile: {
    type: "string",
    valueHint: "name",
    description: "Executor profile to run (see --profile-list). Default: the Claude Code executor with no config",
  },
  "profile-list": { type: "boolean", description: "List the available profiles and exit" },
  "profiles-dir": {
    type: "string",
    valueHint: "dir",
    description: "Directory of your own profile files; they override built-ins of the same name (env AGENT_RUNNER_PROFILES_DIR)",
  },
  "require-matching-tags": {
    type: "boolean",
    description: "Accept only runs that share at least one tag with this runner",
  },
  "coordinator-url": {
    type: "string",
    alias: "c",
    valueHint: "url",
    description: "Coordinator URL (env AGENT_ORCHESTRATOR_API_URL, default http://localhost:8765)",
  },
  "project-dir": {
    type: "string",
    alias: "p",
    valueHint: "dir",
    description: "Default project directory for runs (env PROJECT_DIR, default: current directory)",
  },
  tags: { type: "string", alias: "t", valueHint: "a,b", description: "Comma-separated capability tags (env RUNNER_TAGS)" },
  "mcp-port": {
    type: "string",
    alias: "m",
    valueHint: "port",
    description: "Fixed port for the embedded MCP server (default: any free port)",
  },
  "poll-timeout": {
    type: "string",
    valueHint: "seconds",
    description: "Long-poll duration (env POLL_TIMEOUT, default: what the coordinator says, else 30)",
  },
  "heartbeat-interval": {
    type: "string",
    valueHint: "seconds",
    description: "Heartbeat interval (env HEARTBEAT_INTERVAL, default: what the coordinator says, else 60)",
  },
  "stop-grace-seconds": {
    type: "string",
    valueHint: "seconds",
    description: "How long a stopped executor gets between SIGTERM and SIGKILL (default 5)",
  },
  verbose: { type: "boolean", alias: "v", description: "Debug logging" },
} as const;

async function printProfileList(profilesDir: string | undefined): Promise<void> {
  const { describeProfiles } = await import("../profiles.ts");
  const entries = describeProfiles({ profilesDir });
  const rows = entries.map((entry) => [
    entry.name,
    entry.profile?.type ?? "-",
    entry.profile?.command ?? "-",
    entry.source,
    entry.error ? `(unusable: ${entry.error})` : "",
  ]);
  const widths = [0, 1, 2, 3].map((column) => Math.max(...rows.map((row) => row[column]!.length)));
  for (const row of rows) {
    console.log(row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join("  ").trimEnd());
  }
}

export const runnerCommand = defineCommand({
  meta: {
    name: "agent-runner",
    version: pkg.version,
    description:
      "Registers with the agent coordinator, long-polls it for runs and executes each with the profile's executor.\n" +
      "Also: `agent-runner exec --help` runs one invocation locally, without a coordinator.",
  },
  args: runnerArgs,
  run: ({ rawArgs, args }) =>
    exitOnConfigError(async () => {
      assertKnownFlags(rawArgs, runnerArgs);
      if (args["profile-list"]) {
        await printProfileList(resolveProfilesDir({ profilesDir: args["profiles-dir"] }));
        return;
      }
      const config = resolveConfig({
        profile: args.profile,
        profilesDir: args["profiles-dir"],
        requireMatchingTags: args["require-matching-tags"],
        coordinatorUrl: args["coordinator-url"],
        projectDir: args["project-dir"],
        tags: args.tags,
        mcpPort: args["mcp-port"],
        pollTimeout: args["poll-timeout"],
        heartbeatInterval: args["heartbeat-interval"],
        stopGraceSeconds: args["stop-grace-seconds"],
        verbose: args.verbose,
      });
      setVerbose(config.verbose);
      // Profiles bring the validator; loaded here so that --help and --version stay instant.
      const { defaultProfile, loadProfile } = await import("../profiles.ts");
      const profile =
        config.profile === undefined ? defaultProfile() : loadProfile(config.profile, { profilesDir: config.profilesDir });
      const { runRunner } = await import("../runner-service.ts");
      await runRunner(config, profile);
    }),
});
