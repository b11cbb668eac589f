/**
 * `agent-runner exec`: runs one invocation locally, without a coordinator (like `gitlab-runner exec`).
 * The executor is started exactly as the runner starts it, against a local gateway that records
 * what it reports; the events are shown as they arrive and the result is printed at the end.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { directory, resolveProfilesDir } from "../config.ts";
import { ConfigError } from "../errors.ts";
import { formatRecordLine } from "../exec/event-lines.ts";
import type { GatewayRecord, LocalSession } from "../exec/local-gateway.ts";
import { runLocal } from "../exec/run-local.ts";
import { assertSessionId, defaultExecStateDir, ExecSessionStore } from "../exec/session-store.ts";
import { JsonObject } from "../json-object.ts";
import { log, setVerbose } from "../log.ts";
import { defaultProfile, loadProfile } from "../profiles.ts";
import { exitOnConfigError } from "./exit.ts";
import { assertKnownFlags } from "./flags.ts";

const execArgs = {
  profile: {
    type: "string",
    valueHint: "name",
    description: "Executor profile (see agent-runner --profile-list). Default: the Claude Code executor with no config",
  },
  prompt: { type: "string", valueHint: "text", description: "The prompt (required)" },
  "project-dir": {
    type: "string",
    alias: "p",
    valueHint: "dir",
    description: "Project directory of the run (env PROJECT_DIR, default: current directory)",
  },
  "session-id": {
    type: "string",
    valueHint: "id",
    description: "Session id (default: a new ses_… id); with --resume, the session to continue",
  },
  blueprint: {
    type: "string",
    valueHint: "file.json",
    description: "Agent blueprint (JSON: name, system_prompt, mcp_servers) handed to the executor as agent_blueprint",
  },
  resume: { type: "boolean", description: "Resume the session named by --session-id (recorded by an earlier exec)" },
  "profiles-dir": {
    type: "string",
    valueHint: "dir",
    description: "Directory of your own profile files (env AGENT_RUNNER_PROFILES_DIR)",
  },
  "state-dir": {
    type: "string",
    valueHint: "dir",
    description: "Where exec keeps recorded sessions for --resume (env AGENT_RUNNER_EXEC_STATE_DIR, default ~/.local/state/agent-runner/exec-sessions)",
  },
  json: { type: "boolean", description: "One JSON object per line on stdout: each gateway request, then the result" },
  verbose: { type: "boolean", alias: "v", description: "Debug logging, for exec and the executor (AGENT_RUNNER_DEBUG=1)" },
} as const;

function newSessionId(): string {
  return `ses_${randomBytes(6).toString("hex")}`;
}

/** On resume the project directory is the recorded session's, as the coordinator would have it. */
function projectDirectory(flag: string | undefined, recorded: LocalSession | undefined): string {
  if (flag !== undefined) return directory({ value: flag, from: "--project-dir" });
  if (recorded?.project_dir) {
    return directory({ value: recorded.project_dir, from: `project_dir of recorded session ${recorded.session_id}` });
  }
  if (process.env.PROJECT_DIR) return directory({ value: process.env.PROJECT_DIR, from: "PROJECT_DIR" });
  return process.cwd();
}

/** A blueprint file: one JSON object, either the blueprint itself or wrapped as `{"agent": {…}}` like `GET /agents/{name}`. */
function readBlueprint(file: string): JsonObject {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`--blueprint ${file}: cannot read it: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`--blueprint ${file} is not valid JSON: ${(error as Error).message}`);
  }
  const isObject = (value: unknown) => JsonObject.allows(value);
  if (isObject(data) && isObject((data as JsonObject).agent)) data = (data as JsonObject).agent;
  if (!isObject(data)) throw new ConfigError(`--blueprint ${file}: expected a JSON object (name, system_prompt, mcp_servers)`);
  const blueprint = data as JsonObject;
  if (blueprint.system_prompt !== undefined && typeof blueprint.system_prompt !== "string") {
    throw new ConfigError(`--blueprint ${file}: system_prompt must be a string`);
  }
  if (blueprint.mcp_servers !== undefined && !isObject(blueprint.mcp_servers)) {
    throw new ConfigError(`--blueprint ${file}: mcp_servers must be an object of server configs`);
  }
  return blueprint;
}

function writeStdout(line: string): void {
  process.stdout.write(`${line}\n`);
}

export const execCommand = defineCommand({
  meta: {
    name: "agent-runner exec",
    description:
      "Runs one invocation locally, without a coordinator: builds it from the profile as the runner would, " +
      "starts the profile's executor against a local gateway that records bind/events/metadata, " +
      "shows the events as they arrive, prints the result and exits with the executor's exit code.",
  },
  args: execArgs,
  run: ({ rawArgs, args }) =>
    exitOnConfigError(async () => {
      assertKnownFlags(rawArgs, execArgs);
      setVerbose(Boolean(args.verbose));
      if (args.prompt === undefined) throw new ConfigError("--prompt is required (the text to send to the agent)");
      const mode = args.resume ? "resume" : "start";
      if (mode === "resume" && !args["session-id"]) {
        throw new ConfigError("--resume needs --session-id <id>: the session to continue (printed by the exec that started it)");
      }
      const sessionId = args["session-id"] ?? newSessionId();
      assertSessionId(sessionId);

      const profilesDir = resolveProfilesDir({ profilesDir: args["profiles-dir"] });
      const profile = args.profile === undefined ? defaultProfile() : loadProfile(args.profile, { profilesDir });
      const store = new ExecSessionStore(args["state-dir"] ? resolve(args["state-dir"]) : defaultExecStateDir());
      const known = store.load(sessionId);
      if (mode === "resume" && !known) {
        log.warn(`No session '${sessionId}' recorded in ${store.dir}; the executor will not find it`);
      }
      const projectDir = projectDirectory(args["project-dir"], mode === "resume" ? known : undefined);
      const agentBlueprint = args.blueprint === undefined ? undefined : readBlueprint(args.blueprint);

      log.debug(`Profile '${profile.name}' (${profile.source}): ${profile.argv.join(" ")}`);
      if (!args.json) log.info(`${mode === "start" ? "Starting" : "Resuming"} session ${sessionId} with profile '${profile.name}' in ${projectDir}`);

      const show = (record: GatewayRecord) => {
        if (args.json) writeStdout(JSON.stringify({ kind: record.kind, at: record.at, method: record.method, path: record.path, status: record.status, body: record.body }));
        else process.stderr.write(`${formatRecordLine(record)}\n`);
      };
      const env: Record<string, string | undefined> = { ...process.env };
      if (args.verbose) env.AGENT_RUNNER_DEBUG = "1";
      const stopping = new AbortController();
      const stop = () => stopping.abort();
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      let outcome;
      try {
        outcome = await runLocal({
          profile,
          mode,
          sessionId,
          prompt: args.prompt,
          projectDir,
          agentBlueprint,
          knownSessions: known ? [known] : [],
          onRecord: show,
          onSessionChange: (session) => store.save(session),
          env,
          signal: stopping.signal,
        });
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }

      const result = outcome.stdout.replace(/\n$/, "");
      if (args.json) {
        const line: Record<string, unknown> = { kind: "result", session_id: sessionId, exit_code: outcome.exitCode, result };
        if (outcome.signal) line.signal = outcome.signal;
        writeStdout(JSON.stringify(line));
      } else {
        if (result !== "") writeStdout(result);
        if (outcome.exitCode === 0) {
          const profileFlag = args.profile === undefined ? "" : ` --profile ${args.profile}`;
          log.info(`Session ${sessionId} done. Continue it with: agent-runner exec${profileFlag} --resume --session-id ${sessionId} --prompt '…'`);
        } else {
          log.error(`Executor ${outcome.signal ? `ended by ${outcome.signal}` : `exited with code ${outcome.exitCode}`}`);
        }
      }
      process.exitCode = outcome.exitCode;
    }),
});
