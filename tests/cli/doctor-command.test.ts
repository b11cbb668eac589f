import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "bun";
import { type FakeCoordinator, startFakeCoordinator } from "../support/fake-coordinator.ts";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
let fake: FakeCoordinator;
let tokenEndpoint: Server<undefined>;
/** What the token endpoint answers next; tests change it to break the token. */
let tokenReply: () => Response;
const TOKEN = "doctor-test-token";

beforeAll(() => {
  tokenEndpoint = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (request) =>
      new URL(request.url).pathname === "/oauth/token" ? tokenReply() : new Response("no", { status: 404 }),
  });
});

afterAll(async () => {
  await tokenEndpoint.stop(true);
  temp.cleanup();
});

/** A coordinator that answers GET /agents, only with the test token when `requireToken`. */
function coordinator(options: { requireToken?: boolean; protocol?: "2.1" | "2.2" } = {}): FakeCoordinator {
  fake = startFakeCoordinator({ protocol: options.protocol });
  fake.on("GET", /^\/agents$/, (request) => {
    if (options.requireToken && request.headers.get("authorization") !== `Bearer ${TOKEN}`) {
      return Response.json({ detail: "Invalid token" }, { status: 401 });
    }
    return Response.json([]);
  });
  return fake;
}

const AUTH = () => ({
  AUTH0_DOMAIN: `http://127.0.0.1:${tokenEndpoint.port}`,
  AUTH0_RUNNER_CLIENT_ID: "doctor-client",
  AUTH0_RUNNER_CLIENT_SECRET: "doctor-secret-value",
  AUTH0_AUDIENCE: "https://coordinator",
});

interface Doctor {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** check name → its line, without the mark. */
  passed: Map<string, string>;
  failed: Map<string, string>;
}

async function doctor(args: string[], env: Record<string, string> = {}): Promise<Doctor> {
  const outcome = await runProcess([process.execPath, join(REPO_ROOT, "index.ts"), "doctor", ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv({ AGENT_RUNNER_EXEC_STATE_DIR: temp.make("ar-doctor-state-"), ...env }),
    timeoutMs: 30_000,
  });
  const passed = new Map<string, string>();
  const failed = new Map<string, string>();
  const lines = outcome.stdout.trimEnd().split("\n");
  for (const line of lines.slice(0, -1)) {
    const match = /^([✓✗]) ([a-z ]+): (.*)$/.exec(line);
    if (!match) throw new Error(`not a check line: ${line}\n${outcome.stdout}${outcome.stderr}`);
    (match[1] === "✓" ? passed : failed).set(match[2]!, match[3]!);
  }
  return { ...outcome, passed, failed };
}

/** Flags of a runner that works: the test profile, the fake coordinator, a temp project dir. */
const base = () => ["--profile", "test", "-c", fake.url, "-p", temp.make("ar-doctor-project-")];

function expectOnlyFailure(result: Doctor, check: string, detail: string | RegExp): void {
  expect([...result.failed.keys()], result.stdout).toEqual([check]);
  if (typeof detail === "string") expect(result.failed.get(check)).toContain(detail);
  else expect(result.failed.get(check)).toMatch(detail);
  expect(result.exitCode).toBe(1);
  expect(result.stdout).toEndWith(`1 of ${result.passed.size + 1} checks failed\n`);
}

describe("agent-runner doctor", () => {
  test("a working setup: every line ✓, exit 0, and nothing registered or polled", async () => {
    coordinator();
    const result = await doctor(base());
    expect(result.failed.size, result.stdout).toBe(0);
    expect([...result.passed.keys()]).toEqual([
      "config",
      "profile",
      "executor",
      "containment",
      "token",
      "coordinator",
      "project dir",
      "state dir",
    ]);
    // Which mechanism holds depends on the host: a cgroup per run where cgroups are delegated.
    expect(result.passed.get("containment")).toMatch(
      /^(cgroup v2 per run \(delegated at \/\S+; .+\); child subreaper as a second net|child subreaper \(.+\))$/,
    );
    expect(result.passed.get("profile")).toBe("'test' (built-in), type test-executor");
    expect(result.passed.get("executor")).toBe(`runs ${join(REPO_ROOT, "executors/test-executor/ao-test-exec")}`);
    expect(result.passed.get("coordinator")).toBe(
      `${fake.url} answers GET /agents (HTTP 200); speaks protocol 2.1 (detected)`,
    );
    expect(result.stdout).toEndWith("All 8 checks passed\n");
    expect(result.exitCode).toBe(0);
    // The generation is asked with a request the coordinator refuses before acting on it.
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "GET /agents",
      "POST /runner/sessions/protocol-probe/status",
    ]);
  });

  test("the coordinator line says which protocol generation the runner will speak: detected, or pinned", async () => {
    coordinator({ protocol: "2.2" });
    const detected = await doctor(base());
    expect(detected.passed.get("coordinator")).toBe(
      `${fake.url} answers GET /agents (HTTP 200); speaks protocol 2.2 (detected)`,
    );
    const pinned = await doctor([...base(), "--coordinator-protocol", "2.1"]);
    expect(pinned.passed.get("coordinator")).toBe(
      `${fake.url} answers GET /agents (HTTP 200); protocol 2.1 (pinned by --coordinator-protocol)`,
    );
    expect(fake.find("POST", "/runner/register")).toHaveLength(0);
  });

  test("with auth: a token is fetched and the coordinator accepts it; the secret is never printed", async () => {
    coordinator({ requireToken: true });
    tokenReply = () => Response.json({ access_token: TOKEN, expires_in: 3600 });
    const result = await doctor(base(), AUTH());
    expect(result.failed.size, result.stdout).toBe(0);
    expect(result.passed.get("token")).toBe(`obtained from http://127.0.0.1:${tokenEndpoint.port}/oauth/token`);
    expect(result.exitCode).toBe(0);
    expect(result.stdout + result.stderr).not.toContain("doctor-secret-value");
    expect(result.stdout + result.stderr).not.toContain(TOKEN);
  });

  test("the --health-addr port is checked when given", async () => {
    coordinator();
    const result = await doctor([...base(), "--health-addr", "127.0.0.1:0"]);
    expect(result.passed.get("health address")).toMatch(/^http:\/\/127\.0\.0\.1:\d+ can be served$/);
    expect(result.exitCode).toBe(0);
  });

  describe("one broken piece at a time, each a clear ✗ line", () => {
    test("config: a bad value names the flag, and nothing else is checked", async () => {
      coordinator();
      const result = await doctor([...base(), "--max-concurrent-runs", "0"]);
      expect(result.stdout).toBe("✗ config: --max-concurrent-runs '0' is not valid: expected a whole number >= 1\n");
      expect(result.exitCode).toBe(1);
    });

    test("config: an unknown flag", async () => {
      coordinator();
      const result = await doctor([...base(), "--profle", "x"]);
      expect(result.stdout).toBe("✗ config: Unknown option --profle (see --help)\n");
    });

    test("profile: not found", async () => {
      coordinator();
      const result = await doctor(["--profile", "nope", "-c", fake.url]);
      expectOnlyFailure(
        result,
        "profile",
        "Profile 'nope' not found. Available: coding, coding-sandboxed, research, supervised, test",
      );
    });

    test("profile: an invalid file", async () => {
      coordinator();
      const dir = temp.make();
      writeFileSync(join(dir, "broken.json"), '{"type": "x"');
      const result = await doctor(["--profile", "broken", "--profiles-dir", dir, "-c", fake.url]);
      expectOnlyFailure(result, "profile", `Profile file ${join(dir, "broken.json")}`);
    });

    test("executor: the command is not executable", async () => {
      coordinator();
      const dir = temp.make();
      const command = join(dir, "my-exec");
      writeFileSync(command, "#!/bin/sh\n");
      chmodSync(command, 0o644);
      writeFileSync(join(dir, "mine.json"), JSON.stringify({ type: "custom", command }));
      const result = await doctor(["--profile", "mine", "--profiles-dir", dir, "-c", fake.url]);
      expectOnlyFailure(result, "executor", `${command} cannot be run: ${command} is not executable (chmod +x it)`);
    });

    describe("the sandbox, for sandboxed profiles", () => {
      const claude = () => {
        const path = join(temp.make(), "claude");
        writeFileSync(path, '#!/bin/sh\necho "9.9.9 (Claude Code)"\n');
        chmodSync(path, 0o755);
        return path;
      };
      const sandboxed = (project: string, env: Record<string, string> = {}) =>
        doctor(["--profile", "coding-sandboxed", "-c", fake.url, "-p", project], {
          HOME: temp.make("ar-doctor-home-"),
          CLAUDE_CODE_EXECUTABLE: claude(),
          ...env,
        });

      test("the sandbox of a run in the project directory is created", async () => {
        coordinator();
        const project = temp.make("ar-doctor-project-");
        const result = await sandboxed(project);
        expect(result.failed.size, result.stdout).toBe(0);
        expect([...result.passed.keys()].slice(0, 4)).toEqual(["config", "profile", "executor", "sandbox"]);
        expect(result.passed.has("containment")).toBe(true);
        expect(result.passed.get("profile")).toBe("'coding-sandboxed' (built-in), type claude-code, sandboxed");
        expect(result.passed.get("sandbox")).toBe(
          `${Bun.which("bwrap")} runs executors in a sandbox; a run in ${project} can write it`,
        );
      });

      test("no bubblewrap: names the package", async () => {
        coordinator();
        const result = await sandboxed(temp.make("ar-doctor-project-"), { PATH: temp.make("ar-doctor-path-") });
        expectOnlyFailure(
          result,
          "sandbox",
          "The sandbox needs bubblewrap, but `bwrap` is not on PATH. Install the Debian/Ubuntu package `bubblewrap`",
        );
      });

      test("a project directory the sandbox refuses (it contains the home)", async () => {
        coordinator();
        const home = temp.make("ar-doctor-home-");
        const result = await sandboxed(home, { HOME: home });
        expectOnlyFailure(result, "sandbox", `Sandbox: project directory ${home} contains the home directory ${home}`);
      });
    });

    describe("Claude Code, for claude-code profiles", () => {
      const fakeClaude = (script: string) => {
        const path = join(temp.make(), "claude");
        writeFileSync(path, `#!/bin/sh\n${script}\n`);
        chmodSync(path, 0o755);
        return path;
      };

      test("says which binary is used, and its version", async () => {
        coordinator();
        const claude = fakeClaude('echo "9.9.9 (Claude Code)"');
        const result = await doctor(["--profile", "coding", "-c", fake.url], { CLAUDE_CODE_EXECUTABLE: claude });
        expect(result.failed.size, result.stdout).toBe(0);
        expect(result.passed.get("claude code")).toBe(`${claude} (CLAUDE_CODE_EXECUTABLE): 9.9.9 (Claude Code)`);
      });

      test("a CLAUDE_CODE_EXECUTABLE that does not exist", async () => {
        coordinator();
        const result = await doctor(["--profile", "coding", "-c", fake.url], {
          CLAUDE_CODE_EXECUTABLE: "/nonexistent/claude",
        });
        expectOnlyFailure(
          result,
          "claude code",
          "No Claude Code binary found. Tried: CLAUDE_CODE_EXECUTABLE=/nonexistent/claude: /nonexistent/claude does not exist.",
        );
      });

      test("a binary that does not run (e.g. built for another libc)", async () => {
        coordinator();
        const claude = fakeClaude('echo "cannot execute: required file not found" >&2; exit 127');
        const result = await doctor(["--profile", "coding", "-c", fake.url], { CLAUDE_CODE_EXECUTABLE: claude });
        expectOnlyFailure(
          result,
          "claude code",
          `${claude} (CLAUDE_CODE_EXECUTABLE) does not run: --version exited with code 127: cannot execute: required file not found`,
        );
      });

      test("not asked for profiles of other types", async () => {
        coordinator();
        const result = await doctor(base(), { CLAUDE_CODE_EXECUTABLE: "/nonexistent/claude" });
        expect(result.passed.has("claude code") || result.failed.has("claude code")).toBe(false);
      });
    });

    test("token: the token endpoint refuses the credentials", async () => {
      coordinator({ requireToken: true });
      tokenReply = () => Response.json({ error: "access_denied" }, { status: 401 });
      const result = await doctor(base(), AUTH());
      expectOnlyFailure(result, "token", "was refused (HTTP 401)");
      // The coordinator is still found reachable, the token being the problem.
      expect(result.passed.get("coordinator")).toContain("is reachable (HTTP 401 to GET /agents without a token");
      expect(result.stdout).not.toContain("doctor-secret-value");
    });

    test("token: the token endpoint cannot be reached", async () => {
      coordinator();
      const result = await doctor(base(), { ...AUTH(), AUTH0_DOMAIN: "http://127.0.0.1:9" });
      expectOnlyFailure(result, "token", "Token request to http://127.0.0.1:9/oauth/token failed");
    });

    test("coordinator: unreachable", async () => {
      coordinator();
      const result = await doctor(["--profile", "test", "-c", "http://127.0.0.1:9"]);
      expectOnlyFailure(result, "coordinator", "cannot reach http://127.0.0.1:9: ");
    });

    test("coordinator: the URL answers, but not as a coordinator", async () => {
      fake = startFakeCoordinator();
      const result = await doctor(["--profile", "test", "-c", `${fake.url}/wrong-prefix`]);
      expectOnlyFailure(
        result,
        "coordinator",
        `${fake.url}/wrong-prefix answered HTTP 404 to GET /agents: fake coordinator: no route for GET /wrong-prefix/agents (is this the coordinator's URL?)`,
      );
    });

    test("coordinator: refuses requests without a token", async () => {
      coordinator({ requireToken: true });
      const result = await doctor(base());
      expectOnlyFailure(
        result,
        "coordinator",
        `${fake.url} refuses requests without a token (set the four AUTH0_* variables): HTTP 401 to GET /agents: Invalid token`,
      );
    });

    test("coordinator: refuses the runner's token", async () => {
      coordinator({ requireToken: true });
      tokenReply = () => Response.json({ access_token: "some-other-token", expires_in: 3600 });
      const result = await doctor(base(), AUTH());
      expectOnlyFailure(result, "coordinator", "refuses this runner's token: HTTP 401 to GET /agents: Invalid token");
    });

    test("project dir: not writable", async () => {
      coordinator();
      // Even root cannot create a directory in /proc.
      const result = await doctor(["--profile", "test", "-c", fake.url, "-p", "/proc"]);
      expectOnlyFailure(result, "project dir", "/proc is not writable: ");
    });

    test("state dir: cannot be created", async () => {
      coordinator();
      const file = join(temp.make(), "a-file");
      writeFileSync(file, "");
      const result = await doctor(base(), { AGENT_RUNNER_STATE_DIR: join(file, "state") });
      expectOnlyFailure(result, "state dir", `${join(file, "state")}: ${file} is not a directory`);
    });

    test("health address: the port is taken", async () => {
      coordinator();
      const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
      try {
        const result = await doctor([...base(), "--health-addr", `:${taken.port}`]);
        expectOnlyFailure(
          result,
          "health address",
          `Cannot serve --health-addr 127.0.0.1:${taken.port}: port ${taken.port} is already in use`,
        );
      } finally {
        await taken.stop(true);
      }
    });

    test("mcp port: taken", async () => {
      coordinator();
      const taken = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
      try {
        const result = await doctor([...base(), "--mcp-port", String(taken.port)]);
        expectOnlyFailure(result, "mcp port", `--mcp-port ${taken.port} is already in use`);
      } finally {
        await taken.stop(true);
      }
    });
  });
});
