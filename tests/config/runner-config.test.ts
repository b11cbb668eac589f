import { beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, realpathSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import {
  DEFAULT_COORDINATOR_URL,
  DEFAULT_STOP_GRACE_SECONDS,
  MAX_DURATION_SECONDS,
} from "../../src/config/defaults.ts";
import type { FlagValues, runnerFlags } from "../../src/config/flags.ts";
import { parseTags, resolveConfig, resolveProfilesDir } from "../../src/config/runner-config.ts";
import type { Env } from "../../src/shared/env.ts";
import { ConfigError } from "../../src/shared/errors.ts";
import { configError } from "../support/config-error.ts";
import { tempDir } from "../support/processes.ts";

/** resolveConfig never reads process.env here: every test passes its own environment. */
const resolve = (flags: FlagValues<typeof runnerFlags> = {}, env: Env = {}) => resolveConfig(flags, env);

const AUTH: Env = {
  AUTH0_DOMAIN: "tenant.example.com",
  AUTH0_RUNNER_CLIENT_ID: "client-id",
  AUTH0_RUNNER_CLIENT_SECRET: "client-secret",
  AUTH0_AUDIENCE: "https://coordinator",
};

let tmp: string;
let dirA: string;
let dirB: string;

beforeEach(() => {
  tmp = realpathSync(tempDir("ar-config-"));
  dirA = join(tmp, "a");
  dirB = join(tmp, "b");
  mkdirSync(dirA);
  mkdirSync(dirB);
});

describe("defaults", () => {
  test("with no flags and an empty environment", () => {
    expect(resolve()).toEqual({
      coordinatorUrl: DEFAULT_COORDINATOR_URL,
      projectDir: process.cwd(),
      tags: [],
      requireMatchingTags: false,
      profile: undefined,
      profilesDir: undefined,
      mcpPort: undefined,
      pollTimeoutSeconds: undefined,
      heartbeatIntervalSeconds: undefined,
      stopGraceSeconds: DEFAULT_STOP_GRACE_SECONDS,
      stateDir: join(homedir(), ".local", "state", "agent-runner"),
      maxConcurrentRuns: undefined,
      runTimeoutSeconds: undefined,
      maxRuns: undefined,
      exitAfterIdleSeconds: undefined,
      coordinatorProtocol: "auto",
      maxIdleSessions: 8,
      idleSessionTimeoutSeconds: 1800,
      healthAddr: undefined,
      logFormat: "auto",
      logLevel: "info",
      auth: undefined,
    });
    expect(DEFAULT_COORDINATOR_URL).toBe("http://localhost:8765");
    expect(DEFAULT_STOP_GRACE_SECONDS).toBe(5);
  });

  test("an empty environment variable counts as unset", () => {
    const config = resolve({}, { AGENT_ORCHESTRATOR_API_URL: "", PROJECT_DIR: "", RUNNER_TAGS: "", POLL_TIMEOUT: "" });
    expect(config.coordinatorUrl).toBe(DEFAULT_COORDINATOR_URL);
    expect(config.projectDir).toBe(process.cwd());
    expect(config.tags).toEqual([]);
    expect(config.pollTimeoutSeconds).toBeUndefined();
  });
});

describe("flags over environment over defaults", () => {
  const env = (): Env => ({
    AGENT_ORCHESTRATOR_API_URL: "http://env-host:1111",
    PROJECT_DIR: dirB,
    RUNNER_TAGS: "env1,env2",
    POLL_TIMEOUT: "11",
    HEARTBEAT_INTERVAL: "22",
  });

  test("the environment is used when there is no flag", () => {
    const config = resolve({}, env());
    expect(config.coordinatorUrl).toBe("http://env-host:1111");
    expect(config.projectDir).toBe(dirB);
    expect(config.tags).toEqual(["env1", "env2"]);
    expect(config.pollTimeoutSeconds).toBe(11);
    expect(config.heartbeatIntervalSeconds).toBe(22);
  });

  test("a flag wins over the environment", () => {
    const config = resolve(
      {
        "coordinator-url": "https://flag-host:2222/",
        "project-dir": dirA,
        tags: "f1",
        "poll-timeout": "1.5",
        "heartbeat-interval": "3",
      },
      env(),
    );
    expect(config.coordinatorUrl).toBe("https://flag-host:2222");
    expect(config.projectDir).toBe(dirA);
    expect(config.tags).toEqual(["f1"]);
    expect(config.pollTimeoutSeconds).toBe(1.5);
    expect(config.heartbeatIntervalSeconds).toBe(3);
  });

  test("a relative project dir is made absolute", () => {
    const config = resolve({ "project-dir": "." });
    expect(config.projectDir).toBe(process.cwd());
  });

  test("other flags pass through", () => {
    const config = resolve({
      profile: "coding",
      "profiles-dir": dirA,
      "mcp-port": "8123",
      "stop-grace-seconds": "0",
      "require-matching-tags": true,
      tags: "gpu",
    });
    expect(config).toMatchObject({
      profile: "coding",
      profilesDir: dirA,
      mcpPort: 8123,
      stopGraceSeconds: 0,
      requireMatchingTags: true,
      tags: ["gpu"],
    });
  });
});

describe("log level", () => {
  test("--log-level over LOG_LEVEL over info; -v is debug", () => {
    expect(resolve({}, { LOG_LEVEL: "warn" }).logLevel).toBe("warn");
    expect(resolve({ "log-level": "error" }, { LOG_LEVEL: "warn" }).logLevel).toBe("error");
    expect(resolve({ "log-level": "DEBUG" }).logLevel).toBe("debug");
    expect(resolve({ verbose: true }).logLevel).toBe("debug");
    // A flag wins over the variable: -v over LOG_LEVEL.
    expect(resolve({ verbose: true }, { LOG_LEVEL: "error" }).logLevel).toBe("debug");
    expect(resolve({ verbose: true, "log-level": "debug" }).logLevel).toBe("debug");
  });

  test.each([
    [{ "log-level": "verbose" }, {}, "--log-level 'verbose' is not valid: expected one of error, warn, info, debug"],
    [{}, { LOG_LEVEL: "trace" }, "LOG_LEVEL 'trace' is not valid: expected one of error, warn, info, debug"],
    [
      { verbose: true, "log-level": "warn" },
      {},
      "-v/--verbose means --log-level debug, but --log-level is 'warn': give one of them",
    ],
  ])("%j %j is refused, naming the flag or variable", (flags, env, message) => {
    expect(configError(() => resolve(flags, env)).message).toBe(message);
  });
});

describe("numbers", () => {
  // (An empty POLL_TIMEOUT is unset: see "an empty environment variable counts as unset".)
  test.each(["abc", " ", "0", "-5", "0.5", "Infinity", "1e999", "30s"])(
    "POLL_TIMEOUT %j is refused, naming POLL_TIMEOUT",
    (value) => {
      const error = configError(() => resolve({}, { POLL_TIMEOUT: value }));
      expect(error.message).toBe(`POLL_TIMEOUT '${value}' is not valid: expected a number from 1 to 600`);
    },
  );

  test("--poll-timeout is named when the flag is bad", () => {
    const error = configError(() => resolve({ "poll-timeout": "soon" }, { POLL_TIMEOUT: "30" }));
    expect(error.message).toBe("--poll-timeout 'soon' is not valid: expected a number from 1 to 600");
  });

  test("HEARTBEAT_INTERVAL is named when it is bad", () => {
    const error = configError(() => resolve({}, { HEARTBEAT_INTERVAL: "1m" }));
    expect(error.message).toContain("HEARTBEAT_INTERVAL '1m'");
  });

  test.each(["0", "65536", "80.5", "http"])("--mcp-port %j is refused", (value) => {
    const error = configError(() => resolve({ "mcp-port": value }));
    expect(error.message).toBe(`--mcp-port '${value}' is not valid: expected a whole number from 1 to 65535`);
  });

  test("--stop-grace-seconds must not be negative", () => {
    expect(configError(() => resolve({ "stop-grace-seconds": "-1" })).message).toContain("--stop-grace-seconds '-1'");
  });
});

describe("fleet controls", () => {
  test("each is read from its flag, else its variable", () => {
    const env: Env = {
      MAX_CONCURRENT_RUNS: "4",
      RUN_TIMEOUT: "600",
      MAX_RUNS: "1",
      MAX_COST_USD: "25",
      EXIT_AFTER_IDLE: "300",
      HEALTH_ADDR: ":9464",
      LOG_FORMAT: "json",
    };
    expect(resolve({}, env)).toMatchObject({
      maxConcurrentRuns: 4,
      runTimeoutSeconds: 600,
      maxRuns: 1,
      maxCostUsd: 25,
      exitAfterIdleSeconds: 300,
      healthAddr: { host: "127.0.0.1", port: 9464 },
      logFormat: "json",
    });
    const flags = {
      "max-concurrent-runs": "2",
      "run-timeout": "0.5",
      "max-runs": "3",
      "max-cost-usd": "0.5",
      "exit-after-idle": "1.5",
      "health-addr": "0.0.0.0:9000",
      "log-format": "text",
    };
    expect(resolve(flags, env)).toMatchObject({
      maxConcurrentRuns: 2,
      runTimeoutSeconds: 0.5,
      maxRuns: 3,
      maxCostUsd: 0.5,
      exitAfterIdleSeconds: 1.5,
      healthAddr: { host: "0.0.0.0", port: 9000 },
      logFormat: "text",
    });
  });

  test.each([
    ["max-concurrent-runs", "0", "expected a whole number >= 1"],
    ["max-concurrent-runs", "1.5", "expected a whole number >= 1"],
    ["max-concurrent-runs", "many", "expected a whole number >= 1"],
    ["max-runs", "0", "expected a whole number >= 1"],
    ["max-runs", "-1", "expected a whole number >= 1"],
    ["max-cost-usd", "0", "expected a number > 0"],
    ["max-cost-usd", "-5", "expected a number > 0"],
    ["max-cost-usd", "$5", "expected a number > 0"],
    ["max-cost-usd", "Infinity", "expected a number > 0"],
    ["run-timeout", "-1", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    ["run-timeout", "0", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    ["run-timeout", "10m", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    // Past what a timer can hold (2^31-1 ms): refused rather than firing at once.
    ["run-timeout", "3000000", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    ["exit-after-idle", "0", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    ["exit-after-idle", "1e9", `expected a number > 0 and <= ${MAX_DURATION_SECONDS}`],
    ["log-format", "xml", "expected one of auto, text, json"],
    ["log-format", "JSON", "expected one of auto, text, json"],
  ])("--%s %j is refused naming the flag", (flag, value, expected) => {
    expect(configError(() => resolve({ [flag]: value })).message).toBe(
      `--${flag} '${value}' is not valid: ${expected}`,
    );
  });

  test.each([
    ["MAX_CONCURRENT_RUNS", "0"],
    ["RUN_TIMEOUT", "-1"],
    ["MAX_RUNS", "none"],
    ["MAX_COST_USD", "lots"],
    ["EXIT_AFTER_IDLE", "forever"],
    ["HEALTH_ADDR", "nonsense"],
    ["LOG_FORMAT", "pretty"],
  ])("%s %j is refused naming the variable", (variable, value) => {
    expect(configError(() => resolve({}, { [variable]: value })).message).toStartWith(
      `${variable} '${value}' is not valid: `,
    );
  });

  test("the longest duration fits a timer", () => {
    expect(MAX_DURATION_SECONDS * 1000).toBeLessThan(2 ** 31 - 1);
    expect(resolve({ "run-timeout": String(MAX_DURATION_SECONDS) }).runTimeoutSeconds).toBe(MAX_DURATION_SECONDS);
  });
});

describe("--health-addr", () => {
  test.each([
    [":9464", "127.0.0.1", 9464],
    ["0.0.0.0:9464", "0.0.0.0", 9464],
    ["127.0.0.1:0", "127.0.0.1", 0],
    ["localhost:8080", "localhost", 8080],
    ["metrics.internal.example:9100", "metrics.internal.example", 9100],
    ["[::1]:9464", "::1", 9464],
    ["[::]:9464", "::", 9464],
    [" :9464 ", "127.0.0.1", 9464],
  ])("%j binds %s port %d", (value, host, port) => {
    expect(resolve({ "health-addr": value }).healthAddr).toEqual({ host, port });
  });

  test.each([
    ["nonsense", "no host:port"],
    ["9464", "no host:port"],
    ["127.0.0.1", "no host:port"],
    [":", "no host:port"],
    [":http", "no host:port"],
    [":-1", "no host:port"],
    [":65536", "port 65536 is above 65535"],
    ["::1:9464", "no host:port"],
    ["[nonsense]:9464", "'nonsense' is not an IPv6 address"],
    ["256.1.1.1:9464", "'256.1.1.1' is not an IP address or host name"],
    ["bad_host:9464", "'bad_host' is not an IP address or host name"],
    ["http://127.0.0.1:9464", "no host:port"],
  ])("%j is refused: %s", (value, problem) => {
    const message = configError(() => resolve({ "health-addr": value })).message;
    expect(message).toStartWith(`--health-addr '${value}' is not valid: ${problem} (expected host:port, e.g. :9464`);
  });
});

describe("coordinator URL", () => {
  test.each([
    ["not a url", "is not a valid URL"],
    ["localhost:8765", "must be an http:// or https:// URL"],
    ["ftp://host/", "must be an http:// or https:// URL"],
  ])("flag %j is refused, naming --coordinator-url", (value, problem) => {
    const error = configError(() => resolve({ "coordinator-url": value }));
    expect(error.message).toStartWith(`--coordinator-url '${value}' `);
    expect(error.message).toContain(problem);
  });

  test("a bad AGENT_ORCHESTRATOR_API_URL is named", () => {
    const error = configError(() => resolve({}, { AGENT_ORCHESTRATOR_API_URL: "ws://host" }));
    expect(error.message).toBe("AGENT_ORCHESTRATOR_API_URL 'ws://host' must be an http:// or https:// URL");
  });

  test("trailing slashes are dropped so paths can be appended", () => {
    expect(resolve({ "coordinator-url": "http://host:1/base//" }).coordinatorUrl).toBe("http://host:1/base");
  });
});

describe("project directory", () => {
  test("a nonexistent --project-dir is named with its resolved path", () => {
    const missing = join(tmp, "missing");
    const error = configError(() => resolve({ "project-dir": missing }));
    expect(error.message).toBe(`--project-dir '${missing}': directory ${missing} does not exist`);
  });

  test("a nonexistent PROJECT_DIR is named", () => {
    const missing = join(tmp, "missing");
    const error = configError(() => resolve({}, { PROJECT_DIR: missing }));
    expect(error.message).toStartWith(`PROJECT_DIR '${missing}'`);
  });

  test("a file is not a project directory", () => {
    const file = join(tmp, "file");
    writeFileSync(file, "");
    const error = configError(() => resolve({ "project-dir": file }));
    expect(error.message).toBe(`--project-dir '${file}': ${file} is not a directory`);
  });
});

describe("authentication", () => {
  test("no AUTH0_* variables: no authentication", () => {
    expect(resolve({}, {}).auth).toBeUndefined();
  });

  test("all four: client credentials", () => {
    expect(resolve({}, AUTH).auth).toEqual({
      domain: "tenant.example.com",
      clientId: "client-id",
      clientSecret: "client-secret",
      audience: "https://coordinator",
    });
  });

  test("a partial set names the missing variables", () => {
    const error = configError(() =>
      resolve({}, { AUTH0_DOMAIN: AUTH.AUTH0_DOMAIN, AUTH0_RUNNER_CLIENT_SECRET: AUTH.AUTH0_RUNNER_CLIENT_SECRET }),
    );
    expect(error.message).toContain("AUTH0_DOMAIN, AUTH0_RUNNER_CLIENT_SECRET set");
    expect(error.message).toContain("AUTH0_RUNNER_CLIENT_ID, AUTH0_AUDIENCE missing");
  });

  test("an empty variable counts as missing", () => {
    const error = configError(() => resolve({}, { ...AUTH, AUTH0_AUDIENCE: "" }));
    expect(error.message).toContain("AUTH0_AUDIENCE missing");
  });

  test("the secret's value never appears in the error", () => {
    const error = configError(() => resolve({}, { AUTH0_RUNNER_CLIENT_SECRET: "s3cr3t-value" }));
    expect(error.message).not.toContain("s3cr3t-value");
  });
});

describe("tags", () => {
  test("--require-matching-tags without tags is refused", () => {
    const error = configError(() => resolve({ "require-matching-tags": true }));
    expect(error.message).toBe("--require-matching-tags needs tags to match: set --tags or RUNNER_TAGS");
  });

  test("--require-matching-tags with RUNNER_TAGS is accepted", () => {
    const config = resolve({ "require-matching-tags": true }, { RUNNER_TAGS: "python" });
    expect(config.requireMatchingTags).toBe(true);
    expect(config.tags).toEqual(["python"]);
  });

  test("--require-matching-tags with tags that are all blank is refused", () => {
    expect(() => resolve({ "require-matching-tags": true, tags: " , ," })).toThrow(ConfigError);
  });

  test.each([
    [undefined, []],
    ["", []],
    ["python", ["python"]],
    [" python , gpu ,", ["python", "gpu"]],
    ["a,,b,a, a", ["a", "b"]],
    [",", []],
  ] as const)("parseTags(%j)", (text, expected) => {
    expect(parseTags(text)).toEqual([...expected]);
  });
});

describe("resolveProfilesDir", () => {
  test("flag over AGENT_RUNNER_PROFILES_DIR, unset means none", () => {
    expect(resolveProfilesDir({}, {})).toBeUndefined();
    expect(resolveProfilesDir({}, { AGENT_RUNNER_PROFILES_DIR: dirB })).toBe(dirB);
    expect(resolveProfilesDir({ "profiles-dir": dirA }, { AGENT_RUNNER_PROFILES_DIR: dirB })).toBe(dirA);
  });

  test("a missing profiles directory is named", () => {
    const missing = join(tmp, "nope");
    const error = configError(() => resolveProfilesDir({}, { AGENT_RUNNER_PROFILES_DIR: missing }));
    expect(error.message).toStartWith(`AGENT_RUNNER_PROFILES_DIR '${missing}'`);
  });
});

describe("durations are bounded, so no timer can overflow", () => {
  test.each([
    [{ "heartbeat-interval": "3000000" }, "--heartbeat-interval '3000000'"],
    [{ "stop-grace-seconds": "3000000" }, "--stop-grace-seconds '3000000'"],
    [{ "poll-timeout": "3000000" }, "--poll-timeout '3000000'"],
  ] as const)("%j is refused", (flags, named) => {
    const error = configError(() => resolve(flags));
    expect(error.message).toStartWith(named);
    expect(error.message).toMatch(/expected a number from \d+ to \d+/);
  });

  test("the same from the environment names the variable", () => {
    expect(configError(() => resolve({}, { HEARTBEAT_INTERVAL: "3000000" })).message).toStartWith(
      "HEARTBEAT_INTERVAL '3000000'",
    );
  });
});

describe("state directory", () => {
  test("--state-dir over AGENT_RUNNER_STATE_DIR over XDG_STATE_HOME over ~/.local/state", () => {
    expect(resolve({}, { HOME: "/home/u" }).stateDir).toBe("/home/u/.local/state/agent-runner");
    expect(resolve({}, { XDG_STATE_HOME: "/xdg" }).stateDir).toBe("/xdg/agent-runner");
    expect(resolve({}, { AGENT_RUNNER_STATE_DIR: dirA, XDG_STATE_HOME: "/xdg" }).stateDir).toBe(dirA);
    expect(resolve({ "state-dir": dirB }, { AGENT_RUNNER_STATE_DIR: dirA }).stateDir).toBe(dirB);
  });
});

describe("protocol generation and persistent sessions", () => {
  test("--coordinator-protocol / COORDINATOR_PROTOCOL: auto, 2.1 or 2.2; anything else names the source", () => {
    expect(resolve({ "coordinator-protocol": "2.1" }).coordinatorProtocol).toBe("2.1");
    expect(resolve({}, { COORDINATOR_PROTOCOL: "2.2" }).coordinatorProtocol).toBe("2.2");
    expect(resolve({ "coordinator-protocol": "auto" }, { COORDINATOR_PROTOCOL: "2.2" }).coordinatorProtocol).toBe(
      "auto",
    );
    expect(configError(() => resolve({ "coordinator-protocol": "3" })).message).toBe(
      "--coordinator-protocol '3' is not one of auto, 2.1, 2.2",
    );
    expect(configError(() => resolve({}, { COORDINATOR_PROTOCOL: "v2" })).message).toBe(
      "COORDINATOR_PROTOCOL 'v2' is not one of auto, 2.1, 2.2",
    );
  });

  test("--max-idle-sessions (0 keeps none) and --idle-session-timeout (at most a week)", () => {
    const config = resolve({ "max-idle-sessions": "0", "idle-session-timeout": "60" });
    expect(config.maxIdleSessions).toBe(0);
    expect(config.idleSessionTimeoutSeconds).toBe(60);
    expect(resolve({}, { MAX_IDLE_SESSIONS: "3", IDLE_SESSION_TIMEOUT: "2.5" })).toMatchObject({
      maxIdleSessions: 3,
      idleSessionTimeoutSeconds: 2.5,
    });
    expect(configError(() => resolve({ "max-idle-sessions": "1.5" })).message).toContain("--max-idle-sessions");
    expect(configError(() => resolve({ "idle-session-timeout": "0" })).message).toContain("--idle-session-timeout");
    expect(configError(() => resolve({ "idle-session-timeout": String(8 * 24 * 3600) })).message).toContain(
      "--idle-session-timeout",
    );
  });
});
