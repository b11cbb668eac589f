/** Executor profiles: the built-ins and the operator's files, validated, with the command to run. */
import { accessSync, constants, existsSync, readdirSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import coding from "../../profiles/coding.json" with { type: "json" };
import codingSandboxed from "../../profiles/coding-sandboxed.json" with { type: "json" };
import research from "../../profiles/research.json" with { type: "json" };
import supervised from "../../profiles/supervised.json" with { type: "json" };
import test from "../../profiles/test.json" with { type: "json" };
import { builtinExecutorArgv } from "../executors/builtin.ts";
import { sandboxNeedsOf } from "../executors/sandbox-needs.ts";
import type { SandboxOptions, SandboxSettings } from "../process/sandbox.ts";
import { LIFECYCLES, type Lifecycle } from "../protocol/lifecycle.ts";
import { type } from "../shared/arktype.ts";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { JsonObject, parseJson, validate } from "../shared/json.ts";
import { readSmallFile } from "../shared/small-file.ts";
import { INSTALL_DIR, isCompiled } from "./install-dir.ts";

export const DEFAULT_EXECUTOR_PATH = "executors/claude-code/ao-claude-code-exec";
export const DEFAULT_EXECUTOR_TYPE = "claude-code";

/** A path of a profile's sandbox option: absolute, or in the runner's home (`~/…`). */
const SandboxPath = type("string").narrow(
  (path, ctx) => isAbsolute(path) || path.startsWith("~/") || ctx.mustBe("an absolute path or one starting with ~/"),
);

/** A profile's `sandbox` as an object: the paths to open up or hide beyond the defaults. */
const SandboxObject = type({
  "+": "reject",
  "extra_writable?": SandboxPath.array(),
  "extra_hidden?": SandboxPath.array(),
});
/** A profile's `sandbox`: `true`, or the object form. */
export type ProfileSandbox = true | typeof SandboxObject.infer;

/** The executor types of the coordinator's protocol 2.2 (a run demands one of them). */
const PROTOCOL_TYPES = ["autonomous", "procedural"];

/** A named executor configuration; a runner runs exactly one. */
export interface ExecutorProfile {
  name: string;
  /** The executor's kind as the profile names it: `autonomous`/`procedural`, or a kind such as `claude-code`. */
  type: string;
  command: string;
  /** Executor-specific settings, passed through to the executor untouched. */
  config: JsonObject;
  /** `persistent`: the executor stays alive between the turns of its session (protocol 2.2). */
  lifecycle: Lifecycle;
  /** Runner-owned agents of a procedural profile (accepted so such files load; not run). */
  agents_dir?: string;
  /** Its executors run in a bubblewrap sandbox (as written in the profile; absent: no sandbox). */
  sandbox?: ProfileSandbox;
  /** `built-in`, `default`, or the file the profile was read from. */
  source: string;
  /** How to start the executor: the command resolved against the runner's directory. */
  argv: string[];
}

export interface ProfileSources {
  /** An operator's own profile directory (`--profiles-dir`); its files override all others. */
  profilesDir?: string;
}

export interface ProfileListing {
  name: string;
  source: string;
  /** The profile's content, when its file is valid. */
  profile?: Omit<ExecutorProfile, "argv">;
  /** What runs for it (its command resolved; the runner's own executable for a built-in executor), when it can run. */
  argv?: string[];
  /** Why the profile cannot be used (invalid file, or a command that cannot be run). */
  error?: string;
}

/** A profile file's content; any other field is a typo worth refusing (`confg`). */
const ProfileFile = type({
  "+": "reject",
  type: "string > 0",
  command: "string > 0",
  "config?": JsonObject,
  "lifecycle?": type.enumerated(...LIFECYCLES),
  "agents_dir?": "string",
  // The object form is checked on its own: a union's message would list both forms' complaints.
  "sandbox?": type("boolean").or(JsonObject),
});

// Imported at build time so the single executable carries them.
const BUILTIN_PROFILES: Record<string, unknown> = {
  coding,
  "coding-sandboxed": codingSandboxed,
  research,
  supervised,
  test,
};
const BUILTIN_DIR = join(INSTALL_DIR, "profiles");
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

type ProfileOrigin = { name: string; source: string; read: () => unknown };

function assertProfileName(name: string): void {
  if (!PROFILE_NAME.test(name) || name.includes("..")) {
    throw new ConfigError(
      `Invalid profile name '${name}': use letters, digits, '-', '_' and '.', without '/' or '..' (a profile is a file in a profiles directory, named by its file name without .json)`,
    );
  }
}

function profileFilesIn(dir: string): ProfileOrigin[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new ConfigError(`Cannot read profiles directory ${dir}: ${messageOf(error)}`);
  }
  return names
    .filter((file) => file.endsWith(".json") && PROFILE_NAME.test(file.slice(0, -5)))
    .map((file) => {
      const path = join(dir, file);
      return { name: file.slice(0, -5), source: path, read: () => readProfileFile(path) };
    });
}

function readProfileFile(path: string): unknown {
  let text: string;
  try {
    text = readSmallFile(path);
  } catch (error) {
    throw new ConfigError(`Cannot read profile file ${path}: ${messageOf(error)}`);
  }
  return parseJson(text, type("unknown"), `Profile file ${path}`, ConfigError);
}

/** Every known profile by name, later sources overriding earlier ones. */
function profileOrigins(sources: ProfileSources): Map<string, ProfileOrigin> {
  const origins = new Map<string, ProfileOrigin>();
  for (const [name, content] of Object.entries(BUILTIN_PROFILES)) {
    origins.set(name, { name, source: "built-in", read: () => content });
  }
  for (const origin of profileFilesIn(BUILTIN_DIR)) {
    // Run from source, the built-ins are these very files: keep calling them built-in.
    if (!isCompiled && origin.name in BUILTIN_PROFILES) continue;
    origins.set(origin.name, origin);
  }
  if (sources.profilesDir) {
    for (const origin of profileFilesIn(resolve(sources.profilesDir))) origins.set(origin.name, origin);
  }
  return origins;
}

/**
 * Resolves an executor command against the runner's directory. A built-in executor that has no
 * file beside the compiled runner is run by the runner's own executable.
 */
export function resolveExecutorCommand(command: string): string[] | { error: string } {
  const path = isAbsolute(command) ? command : resolve(INSTALL_DIR, command);
  if (existsSync(path)) {
    if (!statSync(path).isFile()) return { error: `${path} is not a file` };
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return { error: `${path} is not executable (chmod +x it)` };
    }
    return [path];
  }
  return builtinExecutorArgv(command) ?? { error: `${path} does not exist` };
}

/** A profile as written, before its command is resolved. */
export type ProfileContent = Omit<ExecutorProfile, "argv">;

function parseProfile(origin: ProfileOrigin): ProfileContent {
  const where = origin.source === "built-in" ? `built-in profile '${origin.name}'` : `profile file ${origin.source}`;
  const parsed = validate(origin.read(), ProfileFile, `Invalid ${where}`, ConfigError);
  const sandbox =
    typeof parsed.sandbox === "object"
      ? validate(parsed.sandbox, SandboxObject, `Invalid ${where}: sandbox`, ConfigError)
      : parsed.sandbox || undefined;
  return {
    name: origin.name,
    type: parsed.type,
    command: parsed.command,
    config: parsed.config ?? {},
    lifecycle: parsed.lifecycle ?? "one_shot",
    ...(parsed.agents_dir === undefined ? {} : { agents_dir: parsed.agents_dir }),
    ...(sandbox ? { sandbox } : {}),
    source: origin.source,
  };
}

/**
 * The executor type a profile registers with under protocol 2.2, where a run demands one:
 * `autonomous` or `procedural` as written, and `autonomous` for any other kind (the built-ins'
 * `claude-code` and `test-executor` are agents that run a prompt).
 */
export function protocolExecutorType(profile: Pick<ExecutorProfile, "type">): string {
  return PROTOCOL_TYPES.includes(profile.type) ? profile.type : "autonomous";
}

/** Why this runner cannot run a profile's executors at all, or undefined. */
function unsupportedProfile(profile: Pick<ExecutorProfile, "name" | "type" | "agents_dir">): string | undefined {
  if (profile.type === "procedural") {
    return `Profile '${profile.name}' is procedural: this runner runs autonomous executors (agents that take a prompt) only; procedural executors, their runner-owned agents and script sync are not supported`;
  }
  if (profile.agents_dir !== undefined) {
    return `Profile '${profile.name}' names runner-owned agents (agents_dir ${profile.agents_dir}): this runner does not register runner-owned agents; remove agents_dir`;
  }
  return undefined;
}

/** A profile's sandbox as the process module takes it, or undefined when it has none. */
export function sandboxSettings(sandbox: ProfileSandbox | undefined): SandboxSettings | undefined {
  if (!sandbox) return undefined;
  if (sandbox === true) return { extraWritable: [], extraHidden: [] };
  return { extraWritable: sandbox.extra_writable ?? [], extraHidden: sandbox.extra_hidden ?? [] };
}

/**
 * How a profile's executors are sandboxed, or undefined without a sandbox: its settings, what its
 * executor declares it needs (read from the environment it gets), the runner's directory, and the
 * state directories it must not see.
 */
export function sandboxOptions(
  profile: Pick<ExecutorProfile, "command" | "sandbox">,
  stateDirs: string[],
  env: Env,
): SandboxOptions | undefined {
  const settings = sandboxSettings(profile.sandbox);
  if (!settings) return undefined;
  return { settings, stateDirs, runnerDir: INSTALL_DIR, needs: sandboxNeedsOf(profile.command, env) };
}

function withArgv(profile: ProfileContent): ExecutorProfile {
  const argv = resolveExecutorCommand(profile.command);
  if ("error" in argv) {
    throw new ConfigError(
      `Profile '${profile.name}': executor command ${profile.command} cannot be run: ${argv.error}`,
    );
  }
  return { ...profile, argv };
}

/** Sorted names of every available profile (built-in and runtime files). */
export function listProfiles(sources: ProfileSources = {}): string[] {
  return [...profileOrigins(sources).keys()].sort();
}

/** Every available profile with where it comes from; an invalid one carries its error. */
export function describeProfiles(sources: ProfileSources = {}): ProfileListing[] {
  const origins = profileOrigins(sources);
  return [...origins.keys()].sort().map((name) => {
    const origin = origins.get(name)!;
    let profile: ProfileContent;
    try {
      profile = parseProfile(origin);
    } catch (error) {
      return { name, source: origin.source, error: messageOf(error) };
    }
    const unsupported = unsupportedProfile(profile);
    if (unsupported) return { name, source: origin.source, profile, error: unsupported };
    const argv = resolveExecutorCommand(profile.command);
    return "error" in argv
      ? { name, source: origin.source, profile, error: argv.error }
      : { name, source: origin.source, profile, argv };
  });
}

/** Reads and validates one profile, its command not yet resolved; a missing, invalid or unsupported one is a ConfigError. */
export function readProfile(name: string, sources: ProfileSources = {}): ProfileContent {
  assertProfileName(name);
  const origins = profileOrigins(sources);
  const origin = origins.get(name);
  if (!origin) {
    throw new ConfigError(`Profile '${name}' not found. Available: ${[...origins.keys()].sort().join(", ")}`);
  }
  const profile = parseProfile(origin);
  const unsupported = unsupportedProfile(profile);
  if (unsupported) throw new ConfigError(unsupported);
  return profile;
}

/** Loads and validates one profile; a missing or invalid one, or a command that cannot run, is a ConfigError. */
export function loadProfile(name: string, sources: ProfileSources = {}): ExecutorProfile {
  return withArgv(readProfile(name, sources));
}

/** The profile used without `--profile`, as written: the Claude Code executor with no config at all. */
export function defaultProfileContent(): ProfileContent {
  return {
    name: DEFAULT_EXECUTOR_TYPE,
    type: DEFAULT_EXECUTOR_TYPE,
    command: DEFAULT_EXECUTOR_PATH,
    config: {},
    lifecycle: "one_shot",
    source: "default",
  };
}

/** The profile used without `--profile`, its command resolved. */
export function defaultProfile(): ExecutorProfile {
  return withArgv(defaultProfileContent());
}
