/**
 * `agent-runner exec`: runs one invocation locally, without a coordinator (like `gitlab-runner exec`).
 * The executor is started exactly as the runner starts it, against a local gateway that records
 * what it reports; the events are shown as they arrive and the result is printed at the end.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { execFlags } from "../config/flags.ts";
import { defaultProfile, loadProfile } from "../config/profiles.ts";
import {
  directory,
  flagReader,
  hideClientSecret,
  resolveProfilesDir,
  stopGraceSeconds,
} from "../config/runner-config.ts";
import { formatRecordLine } from "../exec/event-lines.ts";
import type { GatewayRecord, LocalSession } from "../exec/local-gateway.ts";
import { runLocal } from "../exec/run-local.ts";
import { assertSessionId, defaultExecStateDir, ExecSessionStore } from "../exec/session-store.ts";
import { AGENT_BLUEPRINT_SCHEMA, type AgentBlueprint as AgentBlueprintShape } from "../protocol/invocation.ts";
import { type } from "../shared/arktype.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { type JsonObject, parseJson, validate } from "../shared/json.ts";
import { log, setVerbose } from "../shared/log.ts";
import { readSmallFile } from "../shared/small-file.ts";
import { assertKnownFlags, commandArgs } from "./args.ts";
import { exitOnConfigError } from "./exit.ts";

const execArgs = commandArgs(execFlags);

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

const AgentBlueprint = type.schema(AGENT_BLUEPRINT_SCHEMA).as<AgentBlueprintShape>();
/** A blueprint file may wrap the blueprint as `{"agent": {…}}`, like `GET /agents/{name}`. */
const WrappedBlueprint = type({ agent: AgentBlueprint });

function readBlueprint(file: string): JsonObject {
  let text: string;
  try {
    text = readSmallFile(file);
  } catch (error) {
    throw new ConfigError(`--blueprint ${file}: cannot read it: ${(error as Error).message}`);
  }
  const blueprint = parseJson(text, AgentBlueprint, `--blueprint ${file}`, ConfigError);
  return WrappedBlueprint.allows(blueprint)
    ? validate(blueprint, WrappedBlueprint, `--blueprint ${file}`).agent
    : blueprint;
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
      hideClientSecret();
      if (args.prompt === undefined) throw new ConfigError("--prompt is required (the text to send to the agent)");
      const mode = args.resume ? "resume" : "start";
      if (mode === "resume" && !args["session-id"]) {
        throw new ConfigError(
          "--resume needs --session-id <id>: the session to continue (printed by the exec that started it)",
        );
      }
      const sessionId = args["session-id"] ?? newSessionId();
      assertSessionId(sessionId);
      const graceSeconds = stopGraceSeconds(flagReader(execFlags, args, process.env)("stop-grace-seconds"));

      const profilesDir = resolveProfilesDir({ "profiles-dir": args["profiles-dir"] });
      const profile = args.profile === undefined ? defaultProfile() : loadProfile(args.profile, { profilesDir });
      if (profile.sandbox) (await import("../process/sandbox-check.ts")).requireSandbox(profile.name);
      const store = new ExecSessionStore(args["state-dir"] ? resolve(args["state-dir"]) : defaultExecStateDir());
      store.assertWritable();
      const known = store.load(sessionId);
      if (mode === "resume" && !known) {
        log.warn(`No session '${sessionId}' recorded in ${store.dir}; the executor will not find it`);
      }
      const projectDir = projectDirectory(args["project-dir"], mode === "resume" ? known : undefined);
      const agentBlueprint = args.blueprint === undefined ? undefined : readBlueprint(args.blueprint);

      log.debug(`Profile '${profile.name}' (${profile.source}): ${profile.argv.join(" ")}`);
      if (!args.json) {
        const doing = mode === "start" ? "Starting" : "Resuming";
        log.info(`${doing} session ${sessionId} with profile '${profile.name}' in ${projectDir}`);
      }

      const show = (record: GatewayRecord) => {
        if (args.json) {
          const { kind, at, method, path, status, body } = record;
          writeStdout(JSON.stringify({ kind, at, method, path, status, body }));
        } else process.stderr.write(`${formatRecordLine(record)}\n`);
      };
      const env: Record<string, string | undefined> = { ...process.env };
      if (args.verbose) env.AGENT_RUNNER_DEBUG = "1";
      // First Ctrl+C (or SIGTERM): SIGTERM to the executor, SIGKILL after the grace; second: SIGKILL now.
      const stopping = new AbortController();
      const killing = new AbortController();
      const stop = (signal: NodeJS.Signals) => {
        if (!stopping.signal.aborted) {
          log.warn(
            `${signal}: stopping the executor (SIGTERM, SIGKILL in ${graceSeconds} s); Ctrl+C again to kill it now`,
          );
          stopping.abort();
        } else if (!killing.signal.aborted) {
          log.warn(`${signal} again: killing the executor now (SIGKILL)`);
          killing.abort();
        }
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      let outcome: Awaited<ReturnType<typeof runLocal>>;
      let unsaved = false;
      try {
        outcome = await runLocal({
          profile,
          mode,
          sessionId,
          prompt: args.prompt,
          projectDir,
          stateDirs: [store.dir],
          agentBlueprint,
          knownSessions: known ? [known] : [],
          onRecord: show,
          onSessionChange: (session) => {
            try {
              // A sandboxed executor's bind must not choose what the resume makes writable: the
              // directory exec gave it is recorded instead.
              store.save(profile.sandbox ? { ...session, project_dir: projectDir } : session);
            } catch (error) {
              // The run goes on (the executor is not to blame); only the resume is lost.
              if (!unsaved) log.warn(`Cannot save session ${sessionId} in ${store.dir}: ${messageOf(error)}`);
              unsaved = true;
            }
          },
          env,
          signal: stopping.signal,
          stopGraceMs: graceSeconds * 1000,
          kill: killing.signal,
        });
      } finally {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
      }

      const result = outcome.stdout.replace(/\n$/, "");
      if (args.json) {
        const line: Record<string, unknown> = {
          kind: "result",
          session_id: sessionId,
          exit_code: outcome.exitCode,
          result,
        };
        if (outcome.signal) line.signal = outcome.signal;
        writeStdout(JSON.stringify(line));
      } else {
        if (result !== "") writeStdout(result);
        if (outcome.exitCode === 0 && unsaved) {
          log.warn(`Session ${sessionId} done, but it was not saved in ${store.dir}: it cannot be resumed`);
        } else if (outcome.exitCode === 0) {
          // The flags that find this profile and this session again.
          const again = [
            args.profile !== undefined && `--profile ${shellWord(args.profile)}`,
            profilesDir !== undefined && `--profiles-dir ${shellWord(profilesDir)}`,
            args["state-dir"] && `--state-dir ${shellWord(store.dir)}`,
          ].filter(Boolean);
          log.info(
            `Session ${sessionId} done. Continue it with: agent-runner exec ${[...again, ""].join(" ")}--resume --session-id ${sessionId} --prompt '…'`,
          );
        } else {
          log.error(
            `Executor ${outcome.signal ? `ended by ${outcome.signal}` : `exited with code ${outcome.exitCode}`}`,
          );
        }
      }
      process.exitCode = outcome.exitCode;
    }),
});

/** `word` as one shell word: as is when plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
