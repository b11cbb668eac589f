/**
 * Every command-line flag, defined once: its type, alias, help text and the environment variable
 * that sets it when the flag is absent. Commands take their citty arguments from here, and the
 * config is read from these definitions, so a flag's name is written in one place only.
 */
import type { ArgDef } from "citty";
import { DEFAULT_LOG_LEVEL, LOG_LEVELS } from "../shared/log.ts";
import {
  DEFAULT_COORDINATOR_URL,
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_IDLE_SESSION_TIMEOUT_SECONDS,
  DEFAULT_MAX_IDLE_SESSIONS,
  DEFAULT_POLL_TIMEOUT_SECONDS,
  DEFAULT_STOP_GRACE_SECONDS,
} from "./defaults.ts";

/** A citty flag definition, plus the environment variable that can set it. */
export type FlagDef = ArgDef & { env?: string };
export type FlagDefs = Record<string, FlagDef>;

/** What citty parsed for a set of flags: strings and booleans, by flag name. */
export type FlagValues<F extends FlagDefs> = {
  [K in keyof F]?: F[K]["type"] extends "boolean" ? boolean : string;
};

const profileFlags = {
  profile: {
    type: "string",
    valueHint: "name",
    description: "Executor profile (see --profile-list). Default: the Claude Code executor with no config",
  },
  "profiles-dir": {
    type: "string",
    valueHint: "dir",
    env: "AGENT_RUNNER_PROFILES_DIR",
    description: "Directory of your own profile files; they override built-ins of the same name",
  },
} as const satisfies FlagDefs;

const commonFlags = {
  "project-dir": {
    type: "string",
    alias: "p",
    valueHint: "dir",
    env: "PROJECT_DIR",
    description: "Project directory of runs that name none (default: current directory)",
  },
  "stop-grace-seconds": {
    type: "string",
    valueHint: "seconds",
    description: `How long a stopped executor gets between SIGTERM and SIGKILL (default ${DEFAULT_STOP_GRACE_SECONDS})`,
  },
  verbose: {
    type: "boolean",
    alias: "v",
    description: "Debug logging, in this process and the executor (AGENT_RUNNER_DEBUG=1)",
  },
} as const satisfies FlagDefs;

export const runnerFlags = {
  ...profileFlags,
  "profile-list": { type: "boolean", description: "List the available profiles and exit" },
  "require-matching-tags": {
    type: "boolean",
    description: "Accept only runs that share at least one tag with this runner",
  },
  "coordinator-url": {
    type: "string",
    alias: "c",
    valueHint: "url",
    env: "AGENT_ORCHESTRATOR_API_URL",
    description: `Coordinator URL (default ${DEFAULT_COORDINATOR_URL})`,
  },
  "coordinator-protocol": {
    type: "string",
    valueHint: "auto|2.1|2.2",
    env: "COORDINATOR_PROTOCOL",
    description:
      "The coordinator's protocol generation: 2.1 (runs carry a prompt, stops name runs), 2.2 (parameters, resolved blueprints, stops name sessions, persistent sessions), or auto: asked of the coordinator before registering (default auto)",
  },
  ...commonFlags,
  tags: {
    type: "string",
    alias: "t",
    valueHint: "a,b",
    env: "RUNNER_TAGS",
    description: "Comma-separated capability tags",
  },
  "mcp-port": {
    type: "string",
    alias: "m",
    valueHint: "port",
    description: "Fixed port for the embedded MCP server (default: any free port)",
  },
  "poll-timeout": {
    type: "string",
    valueHint: "seconds",
    env: "POLL_TIMEOUT",
    description: `Long-poll duration (default: what the coordinator says, else ${DEFAULT_POLL_TIMEOUT_SECONDS})`,
  },
  "heartbeat-interval": {
    type: "string",
    valueHint: "seconds",
    env: "HEARTBEAT_INTERVAL",
    description: `Heartbeat interval (default: what the coordinator says, else ${DEFAULT_HEARTBEAT_INTERVAL_SECONDS})`,
  },
  "state-dir": {
    type: "string",
    valueHint: "dir",
    env: "AGENT_RUNNER_STATE_DIR",
    description:
      "Where the runner journals its active runs, so a restart after a crash stops their executors and reports them (default ~/.local/state/agent-runner)",
  },
  "max-concurrent-runs": {
    type: "string",
    valueHint: "n",
    env: "MAX_CONCURRENT_RUNS",
    description: "Run at most n runs at once; ask for no new run while n are active (default: no limit)",
  },
  "run-timeout": {
    type: "string",
    valueHint: "seconds",
    env: "RUN_TIMEOUT",
    description: "Stop a run active longer than this (at most a week) and report it failed (default: no timeout)",
  },
  "max-runs": {
    type: "string",
    valueHint: "n",
    env: "MAX_RUNS",
    description: "Ephemeral runner: after n runs have been taken and have ended, deregister and exit 0",
  },
  "max-cost-usd": {
    type: "string",
    valueHint: "usd",
    env: "MAX_COST_USD",
    description:
      "Once the runs' agents have cost this much in all (USD, as the executors report it), take no more runs, let the active ones finish, deregister and exit 0",
  },
  "exit-after-idle": {
    type: "string",
    valueHint: "seconds",
    env: "EXIT_AFTER_IDLE",
    description:
      "Ephemeral runner: with no active run for this long (at most a week), deregister and exit 0 (checked between polls)",
  },
  "max-idle-sessions": {
    type: "string",
    valueHint: "n",
    env: "MAX_IDLE_SESSIONS",
    description: `Persistent profiles: keep at most n sessions alive between turns; the longest idle is ended first (default ${DEFAULT_MAX_IDLE_SESSIONS})`,
  },
  "idle-session-timeout": {
    type: "string",
    valueHint: "seconds",
    env: "IDLE_SESSION_TIMEOUT",
    description: `Persistent profiles: end a session idle this long (at most a week); a later turn resumes it in a new process (default ${DEFAULT_IDLE_SESSION_TIMEOUT_SECONDS})`,
  },
  "health-addr": {
    type: "string",
    valueHint: "host:port",
    env: "HEALTH_ADDR",
    description:
      "Serve /healthz, /readyz and /metrics (Prometheus) on this address; host defaults to 127.0.0.1 (':9464'), port 0 picks a free one (default: off)",
  },
  "log-level": {
    type: "string",
    valueHint: LOG_LEVELS.join("|"),
    env: "LOG_LEVEL",
    description: `Which lines are logged (default ${DEFAULT_LOG_LEVEL}); debug adds every line executors write, and asks them for their debug lines`,
  },
  verbose: { ...commonFlags.verbose, description: "Same as --log-level debug" },
  "log-format": {
    type: "string",
    valueHint: "auto|text|json",
    env: "LOG_FORMAT",
    description:
      "auto: interactive on a terminal, else timestamped text lines; text: always timestamped lines; json: one JSON object per line (default auto)",
  },
} as const satisfies FlagDefs;

export const execFlags = {
  ...profileFlags,
  prompt: {
    type: "string",
    valueHint: "text",
    description: "The prompt (required, except with --interactive: there it is the first turn's)",
  },
  interactive: {
    type: "boolean",
    description:
      "A conversation with one persistent executor: each line typed is a turn (the first, or --prompt, starts the session); Ctrl+C interrupts a turn, Ctrl+C or Ctrl+D at the prompt ends the session",
  },
  "project-dir": {
    ...commonFlags["project-dir"],
    description: "Project directory of the run (default: current directory)",
  },
  "session-id": {
    type: "string",
    valueHint: "id",
    description: "Session id (default: a new ses_… id); with --resume, the session to continue",
  },
  blueprint: {
    type: "string",
    valueHint: "file.json",
    description:
      "Agent blueprint (JSON: name, system_prompt, mcp_servers, parameters_schema, output_schema) handed to the executor as agent_blueprint",
  },
  resume: { type: "boolean", description: "Resume the session named by --session-id (recorded by an earlier exec)" },
  "state-dir": {
    type: "string",
    valueHint: "dir",
    env: "AGENT_RUNNER_EXEC_STATE_DIR",
    description: "Where exec keeps recorded sessions for --resume (default ~/.local/state/agent-runner/exec-sessions)",
  },
  json: { type: "boolean", description: "One JSON object per line on stdout: each gateway request, then the result" },
  "stop-grace-seconds": commonFlags["stop-grace-seconds"],
  verbose: commonFlags.verbose,
} as const satisfies FlagDefs;

/** Environment variables that configure the runner itself; executors never see them. */
export function runnerEnvironmentVariables(): string[] {
  const names = [runnerFlags, execFlags].flatMap((flags) => Object.values(flags).map((def: FlagDef) => def.env));
  return [...new Set(names.filter((name): name is string => name !== undefined))];
}
