/** The runner's configuration: flags over environment over defaults, each value checked. */
import { statSync } from "node:fs";
import { isIPv4, isIPv6 } from "node:net";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { PROTOCOL_GENERATIONS, type ProtocolGeneration } from "../protocol/generation.ts";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import {
  addSecret,
  DEFAULT_LOG_LEVEL,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  type LogLevel,
  log,
} from "../shared/log.ts";
import { removeFromEnvironment } from "../shared/proc-environ.ts";
import {
  DEFAULT_COORDINATOR_URL,
  DEFAULT_IDLE_SESSION_TIMEOUT_SECONDS,
  DEFAULT_MAX_IDLE_SESSIONS,
  DEFAULT_STOP_GRACE_SECONDS,
  MAX_DURATION_SECONDS,
  MAX_HEARTBEAT_INTERVAL_SECONDS,
  MAX_POLL_TIMEOUT_SECONDS,
  MAX_STOP_GRACE_SECONDS,
  MIN_HEARTBEAT_INTERVAL_SECONDS,
  MIN_POLL_TIMEOUT_SECONDS,
} from "./defaults.ts";
import { type FlagDefs, type FlagValues, runnerFlags } from "./flags.ts";

/** The host `--health-addr :PORT` binds: local only unless the operator names another. */
const DEFAULT_HEALTH_HOST = "127.0.0.1";

/** A listening address. */
export interface HostPort {
  host: string;
  /** 0: any free port. */
  port: number;
}

/** OAuth2 client-credentials settings; present only when all four AUTH0_* variables are set. */
export interface ClientCredentials {
  domain: string;
  clientId: string;
  clientSecret: string;
  audience: string;
}

export interface RunnerConfig {
  coordinatorUrl: string;
  projectDir: string;
  tags: string[];
  requireMatchingTags: boolean;
  profile?: string;
  profilesDir?: string;
  mcpPort?: number;
  /** Overrides of what the coordinator says at registration; unset means use its values. */
  pollTimeoutSeconds?: number;
  heartbeatIntervalSeconds?: number;
  stopGraceSeconds: number;
  /** Where the run journal is kept. */
  stateDir: string;
  /** At most this many runs active at once; unset: no limit. */
  maxConcurrentRuns?: number;
  /** A run active longer is stopped and reported failed; unset: no timeout. */
  runTimeoutSeconds?: number;
  /** Ephemeral runner: deregister and exit 0 once this many runs were taken and have ended. */
  maxRuns?: number;
  /** Deregister and exit 0 once the runs' agents have cost this much in all (USD). */
  maxCostUsd?: number;
  /** Ephemeral runner: deregister and exit 0 after this long without an active run. */
  exitAfterIdleSeconds?: number;
  /** The coordinator's protocol generation, or `auto`: asked of it before registering. */
  coordinatorProtocol: "auto" | ProtocolGeneration;
  /** Persistent profiles: how many sessions may wait idle for their next turn, and for how long. */
  maxIdleSessions: number;
  idleSessionTimeoutSeconds: number;
  /** Where /healthz, /readyz and /metrics are served; unset: not served. */
  healthAddr?: HostPort;
  logFormat: LogFormat;
  /** `--log-level`, or `debug` with `-v`. */
  logLevel: LogLevel;
  auth?: ClientCredentials;
}

/** A value with the name of the flag or variable it came from, for error messages. */
export interface Sourced {
  value: string;
  from: string;
}

/** Reads one flag's value, else its environment variable's; undefined when neither is set. */
export function flagReader<F extends FlagDefs>(defs: F, values: FlagValues<F>, env: Env) {
  return (name: keyof F & string): Sourced | undefined => {
    const given = values[name];
    if (typeof given === "string") return { value: given, from: `--${name}` };
    const variable = defs[name]?.env;
    const fromEnv = variable === undefined ? undefined : env[variable];
    if (variable !== undefined && fromEnv !== undefined && fromEnv !== "") return { value: fromEnv, from: variable };
    return undefined;
  };
}

const UNBOUNDED = Number.MAX_SAFE_INTEGER;

/** A number within bounds (`minExclusive`: strictly above `min`), else a ConfigError naming its source. */
export function number(
  input: Sourced | undefined,
  expected: { min: number; max: number; integer?: boolean; minExclusive?: boolean },
): number | undefined {
  if (!input) return undefined;
  const value = Number(input.value.trim());
  const ok =
    input.value.trim() !== "" &&
    Number.isFinite(value) &&
    (expected.minExclusive ? value > expected.min : value >= expected.min) &&
    value <= expected.max &&
    (!expected.integer || Number.isInteger(value));
  if (!ok) {
    const kind = expected.integer ? "a whole number" : "a number";
    const above = `${expected.minExclusive ? ">" : ">="} ${expected.min}`;
    let range = expected.minExclusive ? `${above} and <= ${expected.max}` : `from ${expected.min} to ${expected.max}`;
    if (expected.max === UNBOUNDED) range = above;
    throw new ConfigError(`${input.from} '${input.value}' is not valid: expected ${kind} ${range}`);
  }
  return value;
}

/** A duration in seconds: above 0, at most a week. */
function duration(input: Sourced | undefined): number | undefined {
  return number(input, { min: 0, max: MAX_DURATION_SECONDS, minExclusive: true });
}

const HOST_PORT = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/;
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** `host:port`, `:port` (host 127.0.0.1) or `[ipv6]:port`; otherwise a ConfigError naming its source. */
function hostPort(input: Sourced): HostPort {
  const problem = (what: string) =>
    new ConfigError(
      `${input.from} '${input.value}' is not valid: ${what} (expected host:port, e.g. :9464 for 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464)`,
    );
  const match = HOST_PORT.exec(input.value.trim());
  if (!match) throw problem("no host:port");
  const [, ipv6, name, portText] = match;
  const port = Number(portText);
  if (port > 65535) throw problem(`port ${port} is above 65535`);
  if (ipv6 !== undefined) {
    if (!isIPv6(ipv6)) throw problem(`'${ipv6}' is not an IPv6 address`);
    return { host: ipv6, port };
  }
  const host = name || DEFAULT_HEALTH_HOST;
  // Digits and dots only: meant as an IPv4 address, so it must be one.
  const valid = /^[\d.]+$/.test(host) ? isIPv4(host) : HOST_NAME.test(host);
  if (!valid) throw problem(`'${host}' is not an IP address or host name`);
  return { host, port };
}

/** The log format, read on its own so that it applies before the rest of the config is checked. */
export function resolveLogFormat(values: FlagValues<typeof runnerFlags>, env: Env = process.env): LogFormat {
  const input = flagReader(runnerFlags, values, env)("log-format");
  if (!input) return "auto";
  const format = LOG_FORMATS.find((known) => known === input.value.trim());
  if (!format) {
    throw new ConfigError(`${input.from} '${input.value}' is not valid: expected one of ${LOG_FORMATS.join(", ")}`);
  }
  return format;
}

/** `--log-level`, else LOG_LEVEL, else info; `-v` is `--log-level debug` and contradicts any other level given as a flag. */
function resolveLogLevel(values: FlagValues<typeof runnerFlags>, env: Env = process.env): LogLevel {
  const input = flagReader(runnerFlags, values, env)("log-level");
  const level = input && LOG_LEVELS.find((known) => known === input.value.trim().toLowerCase());
  if (input && !level) {
    throw new ConfigError(`${input.from} '${input.value}' is not valid: expected one of ${LOG_LEVELS.join(", ")}`);
  }
  if (!values.verbose) return level ?? DEFAULT_LOG_LEVEL;
  if (level && level !== "debug" && input?.from === "--log-level") {
    throw new ConfigError(
      `-v/--verbose means --log-level debug, but --log-level is '${input.value}': give one of them`,
    );
  }
  return "debug";
}

function httpUrl(input: Sourced): string {
  let url: URL;
  try {
    url = new URL(input.value);
  } catch {
    throw new ConfigError(
      `${input.from} '${input.value}' is not a valid URL: expected e.g. ${DEFAULT_COORDINATOR_URL}`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${input.from} '${input.value}' must be an http:// or https:// URL`);
  }
  // Log lines show such URLs with the password cut out; the password alone is cut out too.
  addSecret(url.password);
  return url.href.replace(/\/+$/, "");
}

/** An existing directory, resolved to an absolute path; otherwise a ConfigError naming its source. */
/**
 * A path from a flag, made absolute. An empty one is refused: resolved, it would be the current
 * directory, which nobody said (an empty variable is unset instead, see flagReader).
 */
function absolutePath(input: Sourced): string {
  if (input.value.trim() === "") throw new ConfigError(`${input.from} is empty: expected a directory`);
  return resolve(input.value);
}

export function directory(input: Sourced): string {
  const path = absolutePath(input);
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    throw new ConfigError(`${input.from} '${input.value}': directory ${path} does not exist`);
  }
  if (!isDirectory) throw new ConfigError(`${input.from} '${input.value}': ${path} is not a directory`);
  return path;
}

export function parseTags(text: string | undefined): string[] {
  if (!text) return [];
  return [
    ...new Set(
      text
        .split(",")
        .map((tag) => tag.trim())
        .filter(Boolean),
    ),
  ];
}

const AUTH_VARIABLES = [
  "AUTH0_DOMAIN",
  "AUTH0_RUNNER_CLIENT_ID",
  "AUTH0_RUNNER_CLIENT_SECRET",
  "AUTH0_AUDIENCE",
] as const;

function clientCredentials(env: Env): ClientCredentials | undefined {
  const present = AUTH_VARIABLES.filter((name) => env[name]);
  if (present.length === 0) return undefined;
  if (present.length < AUTH_VARIABLES.length) {
    const missing = AUTH_VARIABLES.filter((name) => !env[name]);
    throw new ConfigError(
      `Authentication is half configured: ${present.join(", ")} set but ${missing.join(", ")} missing (set all four to authenticate, or none)`,
    );
  }
  return {
    domain: env.AUTH0_DOMAIN!,
    clientId: env.AUTH0_RUNNER_CLIENT_ID!,
    clientSecret: env.AUTH0_RUNNER_CLIENT_SECRET!,
    audience: env.AUTH0_AUDIENCE!,
  };
}

/** How long a stopped executor gets between SIGTERM and SIGKILL (runner and exec alike). */
export function stopGraceSeconds(input: Sourced | undefined): number {
  return number(input, { min: 0, max: MAX_STOP_GRACE_SECONDS }) ?? DEFAULT_STOP_GRACE_SECONDS;
}

/** `$XDG_STATE_HOME/agent-runner`, else `~/.local/state/agent-runner`. */
function defaultStateDir(env: Env = process.env): string {
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(stateHome, "agent-runner");
}

/**
 * Executors run as this user and may read /proc/<runner pid>/environ: once the configuration holds
 * the client secret, the process environment must not (also for exec, which never needs it).
 */
export function hideClientSecret(): void {
  const name = "AUTH0_RUNNER_CLIENT_SECRET";
  if (!process.env[name]) return;
  try {
    removeFromEnvironment([name]);
  } catch (error) {
    log.warn(
      `Could not remove ${name} from /proc/${process.pid}/environ, where this user's processes can read it: ${messageOf(error)}`,
    );
  }
}

function coordinatorProtocol(input: Sourced | undefined): "auto" | ProtocolGeneration {
  const value = input?.value ?? "auto";
  if (value === "auto" || (PROTOCOL_GENERATIONS as readonly string[]).includes(value)) {
    return value as "auto" | ProtocolGeneration;
  }
  throw new ConfigError(`${input?.from} '${value}' is not one of auto, ${PROTOCOL_GENERATIONS.join(", ")}`);
}

/** The operator's profile directory, if one is set (all `--profile-list` needs). */
export function resolveProfilesDir(values: FlagValues<typeof runnerFlags>, env: Env = process.env): string | undefined {
  const profilesDir = flagReader(runnerFlags, values, env)("profiles-dir");
  return profilesDir ? directory(profilesDir) : undefined;
}

/** Flags over environment over defaults; anything malformed is a ConfigError naming its source. */
export function resolveConfig(values: FlagValues<typeof runnerFlags>, env: Env = process.env): RunnerConfig {
  const input = flagReader(runnerFlags, values, env);
  const coordinator = input("coordinator-url");
  const projectDir = input("project-dir");
  const healthAddr = input("health-addr");
  const stateDir = input("state-dir");
  const tags = parseTags(input("tags")?.value);
  const requireMatchingTags = values["require-matching-tags"] ?? false;
  if (requireMatchingTags && tags.length === 0) {
    throw new ConfigError("--require-matching-tags needs tags to match: set --tags or RUNNER_TAGS");
  }
  return {
    coordinatorUrl: httpUrl(coordinator ?? { value: DEFAULT_COORDINATOR_URL, from: "default URL" }),
    projectDir: projectDir ? directory(projectDir) : process.cwd(),
    tags,
    requireMatchingTags,
    profile: values.profile,
    profilesDir: resolveProfilesDir(values, env),
    mcpPort: number(input("mcp-port"), { min: 1, max: 65535, integer: true }),
    pollTimeoutSeconds: number(input("poll-timeout"), {
      min: MIN_POLL_TIMEOUT_SECONDS,
      max: MAX_POLL_TIMEOUT_SECONDS,
    }),
    heartbeatIntervalSeconds: number(input("heartbeat-interval"), {
      min: MIN_HEARTBEAT_INTERVAL_SECONDS,
      max: MAX_HEARTBEAT_INTERVAL_SECONDS,
    }),
    stopGraceSeconds: stopGraceSeconds(input("stop-grace-seconds")),
    stateDir: stateDir ? absolutePath(stateDir) : resolve(defaultStateDir(env)),
    maxConcurrentRuns: number(input("max-concurrent-runs"), { min: 1, max: UNBOUNDED, integer: true }),
    runTimeoutSeconds: duration(input("run-timeout")),
    maxRuns: number(input("max-runs"), { min: 1, max: UNBOUNDED, integer: true }),
    maxCostUsd: number(input("max-cost-usd"), { min: 0, max: UNBOUNDED, minExclusive: true }),
    exitAfterIdleSeconds: duration(input("exit-after-idle")),
    coordinatorProtocol: coordinatorProtocol(input("coordinator-protocol")),
    maxIdleSessions:
      number(input("max-idle-sessions"), { min: 0, max: UNBOUNDED, integer: true }) ?? DEFAULT_MAX_IDLE_SESSIONS,
    idleSessionTimeoutSeconds: duration(input("idle-session-timeout")) ?? DEFAULT_IDLE_SESSION_TIMEOUT_SECONDS,
    healthAddr: healthAddr ? hostPort(healthAddr) : undefined,
    logFormat: resolveLogFormat(values, env),
    logLevel: resolveLogLevel(values, env),
    auth: clientCredentials(env),
  };
}
