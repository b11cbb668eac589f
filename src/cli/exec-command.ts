/**
 * `agent-runner exec`: runs one invocation locally, without a coordinator (like `gitlab-runner exec`).
 * The executor is started exactly as the runner starts it, against a local gateway that records
 * what it reports; the events are shown as they arrive and the result is printed at the end. With
 * `--interactive`, a conversation: one persistent executor, a turn per line typed.
 */
import { randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { defineCommand } from "citty";
import { execFlags, type FlagValues } from "../config/flags.ts";
import { defaultProfile, type ExecutorProfile, loadProfile } from "../config/profiles.ts";
import {
  directory,
  flagReader,
  hideClientSecret,
  resolveProfilesDir,
  stopGraceSeconds,
} from "../config/runner-config.ts";
import { formatRecordLine } from "../exec/event-lines.ts";
import {
  type InteractiveOptions,
  type InteractiveOutcome,
  InteractiveSession,
  TerminalLines,
  type TurnAnswer,
} from "../exec/interactive.ts";
import type { GatewayRecord, LocalSession } from "../exec/local-gateway.ts";
import { type LocalExecutorOptions, runLocal } from "../exec/run-local.ts";
import { assertSessionId, defaultExecStateDir, ExecSessionStore } from "../exec/session-store.ts";
import { builtinExecutorName } from "../executors/builtin.ts";
import { real } from "../process/sandbox-mounts.ts";
import { AGENT_BLUEPRINT_SCHEMA, type AgentBlueprint as AgentBlueprintShape } from "../protocol/invocation.ts";
import { type } from "../shared/arktype.ts";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { type JsonObject, parseJson, validate } from "../shared/json.ts";
import { logDescriptorLimits } from "../shared/local-server.ts";
import { log, setVerbose } from "../shared/log.ts";
import { seconds } from "../shared/retry.ts";
import { readSmallFile } from "../shared/small-file.ts";
import { assertKnownFlags, commandArgs } from "./args.ts";
import { exitOnConfigError } from "./exit.ts";
import { STOP_SIGNALS, withSignals } from "./signals.ts";

const execArgs = commandArgs(execFlags);
type ExecArgs = FlagValues<typeof execFlags>;

function newSessionId(): string {
  return `ses_${randomBytes(6).toString("hex")}`;
}

/**
 * The run's project directory: --project-dir, else on resume the recorded session's (as the
 * coordinator would have it), else PROJECT_DIR, else the current directory. A sandboxed profile
 * never takes it from the record, because it becomes writable: a record is a file any process of
 * the user can write, and an unsandboxed executor's bind chose what it says. Its resume runs in
 * the directory given, and a record that names another one is refused (the session's agent would
 * not find its work there, or the record was changed).
 */
function projectDirectory(
  flag: string | undefined,
  recorded: { session: LocalSession; file: string } | undefined,
  sandboxed: boolean,
): string {
  if (flag !== undefined) return directory({ value: flag, from: "--project-dir" });
  const { session, file } = recorded ?? {};
  if (session?.project_dir && !sandboxed) {
    return directory({ value: session.project_dir, from: `project_dir of recorded session ${session.session_id}` });
  }
  const given = process.env.PROJECT_DIR
    ? directory({ value: process.env.PROJECT_DIR, from: "PROJECT_DIR" })
    : process.cwd();
  if (session?.project_dir && !sameDirectory(session.project_dir, given)) {
    throw new ConfigError(
      `Session ${session.session_id} is recorded in ${session.project_dir}, not in ${given}: a sandboxed profile gets as writable only the directory this exec is given (--project-dir, else the current directory), never one read from ${file}. If the session belongs in ${session.project_dir}, resume it there (cd to it, or --project-dir)`,
    );
  }
  return given;
}

function sameDirectory(a: string, b: string): boolean {
  return (real(a) ?? resolve(a)) === (real(b) ?? resolve(b));
}

const AgentBlueprint = type.schema(AGENT_BLUEPRINT_SCHEMA).as<AgentBlueprintShape>();
/** A blueprint file may wrap the blueprint as `{"agent": {…}}`, like `GET /agents/{name}`. */
const WrappedBlueprint = type({ agent: AgentBlueprint });

function readBlueprint(file: string): JsonObject {
  let text: string;
  try {
    text = readSmallFile(file);
  } catch (error) {
    throw new ConfigError(`--blueprint ${file}: cannot read it: ${messageOf(error)}`);
  }
  const blueprint = parseJson(text, AgentBlueprint, `--blueprint ${file}`, ConfigError);
  return WrappedBlueprint.allows(blueprint)
    ? validate(blueprint, WrappedBlueprint, `--blueprint ${file}`).agent
    : blueprint;
}

function writeStdout(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** What one `exec` is asked to do, read from its flags and the session store; checked. */
interface ExecInputs {
  args: ExecArgs;
  mode: "start" | "resume";
  sessionId: string;
  /** The (first turn's) prompt; with --interactive it may come from the first line typed instead. */
  prompt?: string;
  profile: ExecutorProfile;
  profilesDir?: string;
  store: ExecSessionStore;
  /** The recorded session, when there is one. */
  known?: LocalSession;
  projectDir: string;
  agentBlueprint?: JsonObject;
  graceSeconds: number;
}

async function readExecInputs(args: ExecArgs): Promise<ExecInputs> {
  const { prompt } = args;
  if (prompt === undefined && !args.interactive) {
    throw new ConfigError("--prompt is required (the text to send to the agent), unless --interactive");
  }
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
  if (args.interactive && profile.lifecycle !== "persistent" && builtinExecutorName(profile.command) === undefined) {
    log.warn(
      `Profile '${profile.name}' does not say "lifecycle": "persistent": --interactive needs an executor that reads a turn line after its invocation; one that reads all of its stdin never ends its first turn (Ctrl+C twice stops it)`,
    );
  }
  if (profile.sandbox) (await import("../process/sandbox-check.ts")).requireSandbox(profile.name);
  const store = new ExecSessionStore(args["state-dir"] ? resolve(args["state-dir"]) : defaultExecStateDir());
  store.assertWritable();
  let known = store.load(sessionId);
  if (mode === "resume" && !known) {
    log.warn(`No session '${sessionId}' recorded in ${store.dir}; the executor will not find it`);
  }
  const sandboxed = Boolean(profile.sandbox);
  const recorded = mode === "resume" && known ? { session: known, file: store.pathOf(sessionId) } : undefined;
  const projectDir = projectDirectory(args["project-dir"], recorded, sandboxed);
  // A sandboxed executor is told the directory it can write, not the record's (an agent works
  // where the session says it is).
  if (sandboxed && known) known = { ...known, project_dir: projectDir };
  return {
    args,
    mode,
    sessionId,
    prompt,
    profile,
    profilesDir,
    store,
    known,
    projectDir,
    agentBlueprint: args.blueprint === undefined ? undefined : readBlueprint(args.blueprint),
    graceSeconds,
  };
}

/**
 * Runs `work` with Ctrl+C, SIGTERM and SIGHUP wired to it: the first stops the executor (SIGTERM,
 * SIGKILL after the grace), the second kills it at once.
 */
async function stopOnSignals<T>(
  graceSeconds: number,
  work: (signals: { stop: AbortSignal; kill: AbortSignal }) => Promise<T>,
): Promise<T> {
  const stopping = new AbortController();
  const killing = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stopping.signal.aborted) {
      log.warn(`${signal}: stopping the executor (SIGTERM, SIGKILL in ${graceSeconds} s); Ctrl+C again to kill it now`);
      stopping.abort();
    } else if (!killing.signal.aborted) {
      log.warn(`${signal} again: killing the executor now (SIGKILL)`);
      killing.abort();
    }
  };
  return withSignals(STOP_SIGNALS, onSignal, () => work({ stop: stopping.signal, kill: killing.signal }));
}

/**
 * Runs an interactive session with the terminal's lines and signals wired to it: Ctrl+C
 * interrupts a turn or, at the prompt, ends the session; SIGTERM and SIGHUP (the terminal gone)
 * end it too (see exec/interactive.ts).
 */
async function converse(options: Omit<InteractiveOptions, "lines">): Promise<InteractiveOutcome> {
  const lines = new TerminalLines();
  const session = new InteractiveSession({ ...options, lines });
  const onSignal = (signal: NodeJS.Signals) =>
    signal === "SIGINT" ? session.interrupt(signal) : session.terminate(signal);
  try {
    return await withSignals(STOP_SIGNALS, onSignal, () => session.run());
  } finally {
    lines.close();
  }
}

/** Keeps the session the executor bound in exec's store, so that `--resume` finds it. */
class SessionRecorder {
  /** Set once a save failed: the run goes on (the executor is not to blame), only the resume is lost. */
  unsaved = false;

  constructor(private readonly inputs: ExecInputs) {}

  save(session: LocalSession): void {
    const { profile, projectDir, store, sessionId } = this.inputs;
    try {
      // A sandboxed executor's bind must not choose what the resume makes writable: the
      // directory exec gave it is recorded instead.
      store.save(profile.sandbox ? { ...session, project_dir: projectDir } : session);
    } catch (error) {
      if (!this.unsaved) log.warn(`Cannot save session ${sessionId} in ${store.dir}: ${messageOf(error)}`);
      this.unsaved = true;
    }
  }
}

/** Each gateway request as it arrives: a JSON line on stdout with --json, else a readable line on stderr. */
function showRecord(json: boolean): (record: GatewayRecord) => void {
  return (record) => {
    if (json) {
      const { kind, at, method, path, status, body } = record;
      writeStdout(JSON.stringify({ kind, at, method, path, status, body }));
    } else process.stderr.write(`${formatRecordLine(record)}\n`);
  };
}

/** A turn's answer as it completes (--interactive): on stdout, or as a JSON line with --json. */
function printAnswer(inputs: ExecInputs, answer: TurnAnswer): void {
  if (inputs.args.json) {
    const { turn, result, data, interrupted } = answer;
    const line = { kind: "turn", session_id: inputs.sessionId, turn, result };
    writeStdout(
      JSON.stringify({ ...line, ...(data ? { result_data: data } : {}), ...(interrupted ? { interrupted } : {}) }),
    );
    return;
  }
  if (answer.result !== "") writeStdout(answer.result);
  if (answer.interrupted) log.info(`Turn ${answer.turn} was interrupted`);
}

/** The result on stdout, and what happened: how to continue the session, or how the executor ended. */
function printOutcome(inputs: ExecInputs, outcome: InteractiveOutcome, unsaved: boolean): void {
  const { args, sessionId, store } = inputs;
  if ("nothingStarted" in outcome) {
    log.info(`${outcome.signal ?? "End of input"} before the first prompt: no session was started`);
    return;
  }
  const { result } = outcome;
  const usage = outcome.usage.reportFields();
  if (args.json) {
    const line: Record<string, unknown> = {
      kind: "result",
      session_id: sessionId,
      exit_code: outcome.exitCode,
      result,
      duration_s: Math.round(outcome.durationMs) / 1000,
    };
    if (outcome.resultData) line.result_data = outcome.resultData;
    if (outcome.signal) line.signal = outcome.signal;
    if (usage) line.usage = usage;
    writeStdout(JSON.stringify(line));
    return;
  }
  // An interactive session printed each answer as its turn completed.
  if (result !== "" && !args.interactive) writeStdout(result);
  // `12.3 s, 8 turns, 41,200 tokens, $0.18`: how long it took, and what it used when the executor said.
  const spent = [seconds(outcome.durationMs), outcome.usage.describe()].filter(Boolean).join(", ");
  if (outcome.exitCode !== 0) {
    const how = outcome.signal ? `ended by ${outcome.signal}` : `exited with code ${outcome.exitCode}`;
    log.error(`Executor ${how}${outcome.endedWhen ? ` ${outcome.endedWhen}` : ""} after ${spent}`);
  } else if (unsaved) {
    log.warn(`Session ${sessionId} done in ${spent}, but it was not saved in ${store.dir}: it cannot be resumed`);
  } else {
    // The flags that find this profile and this session again.
    const again = [
      args.profile !== undefined && `--profile ${shellWord(args.profile)}`,
      inputs.profilesDir !== undefined && `--profiles-dir ${shellWord(inputs.profilesDir)}`,
      args["state-dir"] && `--state-dir ${shellWord(store.dir)}`,
    ].filter(Boolean);
    const resume = args.interactive ? "--interactive --resume" : "--resume";
    log.info(
      `Session ${sessionId} done in ${spent}. Continue it with: agent-runner exec ${[...again, ""].join(" ")}${resume} --session-id ${sessionId}${args.interactive ? "" : " --prompt '…'"}`,
    );
  }
}

export const execCommand = defineCommand({
  meta: {
    name: "agent-runner exec",
    description:
      "Runs one invocation locally, without a coordinator: builds it from the profile as the runner would, " +
      "starts the profile's executor against a local gateway that records bind/events/metadata, " +
      "shows the events as they arrive, prints the result and exits with the executor's exit code. " +
      "With --interactive: a conversation with one persistent executor, each line typed a turn.",
  },
  args: execArgs,
  run: ({ rawArgs, args }) =>
    exitOnConfigError(async () => {
      assertKnownFlags(rawArgs, execArgs);
      setVerbose(Boolean(args.verbose));
      hideClientSecret();
      const inputs = await readExecInputs(args);
      const { profile, sessionId, store, projectDir } = inputs;
      // What the executor leaves behind (a daemon in its own session, a double fork) ends with it.
      const { describeContainment, setUpContainment } = await import("../process/containment.ts");
      log.debug(`Executors are contained by ${describeContainment(setUpContainment())}`);
      log.debug(`Profile '${profile.name}' (${profile.source}): ${profile.argv.join(" ")}`);
      logDescriptorLimits();
      if (!args.json) {
        log.info(
          `${inputs.mode === "start" ? "Starting" : "Resuming"} ${args.interactive ? "interactive " : ""}session ${sessionId} with profile '${profile.name}' in ${projectDir}${args.interactive ? ": each line is a turn; Ctrl+C interrupts a turn, Ctrl+C or Ctrl+D at the prompt ends the session" : ""}`,
        );
      }
      const env: Env = { ...process.env };
      if (args.verbose) env.AGENT_RUNNER_DEBUG = "1";
      const recorder = new SessionRecorder(inputs);
      const local: Omit<LocalExecutorOptions, "prompt"> = {
        profile,
        mode: inputs.mode,
        sessionId,
        projectDir,
        stateDirs: [store.dir],
        agentBlueprint: inputs.agentBlueprint,
        knownSessions: inputs.known ? [inputs.known] : [],
        onRecord: showRecord(Boolean(args.json)),
        onSessionChange: (session) => recorder.save(session),
        env,
      };
      const stopGraceMs = inputs.graceSeconds * 1000;
      const outcome = args.interactive
        ? await converse({ ...local, prompt: inputs.prompt, stopGraceMs, onAnswer: (a) => printAnswer(inputs, a) })
        : await stopOnSignals(inputs.graceSeconds, ({ stop, kill }) =>
            runLocal({ ...local, prompt: inputs.prompt!, signal: stop, stopGraceMs, kill }),
          );
      printOutcome(inputs, outcome, recorder.unsaved);
      process.exitCode = outcome.exitCode;
    }),
});

/** `word` as one shell word: as is when plain, else single-quoted. */
function shellWord(word: string): string {
  return /^[\w./:@%+=,-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
