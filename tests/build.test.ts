import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { buildExecutable, SCRIPT_OUTFILE } from "./support/build.ts";
import { startFakeCoordinator } from "./support/fake-coordinator.ts";
import { cleanEnv } from "./support/processes.ts";
import { parsePrometheusText, sampleValue } from "./support/prometheus-text.ts";

let tmp: string;
let buildDir: string;
let runDir: string;

async function run(argv: string[], cwd: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  // Only the profiles/ beside the executable may count here.
  delete env.AGENT_RUNNER_PROFILES_DIR;
  const proc = Bun.spawn(argv, {
    cwd,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "ar-build-"));
  buildDir = join(tmp, "build");
  runDir = join(tmp, "run");
  mkdirSync(runDir);
  await buildExecutable(join(buildDir, "agent-runner"));
  // The executable alone, in a directory with nothing else: no profiles/, no executors/, no node_modules.
  copyFileSync(join(buildDir, "agent-runner"), join(runDir, "agent-runner"));
  chmodSync(join(runDir, "agent-runner"), 0o755);
}, 120_000);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe("the compiled single executable", () => {
  test("the build script writes dist/agent-runner", () => {
    expect(pkg.scripts.build).toContain(`--outfile ${SCRIPT_OUTFILE}`);
  });

  test("run alone, it lists the four built-in profiles, all usable", async () => {
    expect(readdirSync(runDir)).toEqual(["agent-runner"]);
    const { exitCode, stdout, stderr } = await run(["./agent-runner", "--profile-list"], runDir);
    expect({ exitCode, stderr }).toEqual({ exitCode: 0, stderr: "" });
    const lines = stdout.trimEnd().split("\n");
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual([
      "coding",
      "coding-sandboxed",
      "research",
      "supervised",
      "test",
    ]);
    for (const line of lines) {
      expect(line).toContain("built-in");
      // The built-in executors travel inside the executable.
      expect(line).not.toContain("unusable");
    }
  });

  test("run alone, --profile-list shows what runs: the executable itself as the built-in executor", async () => {
    const { stdout } = await run(["./agent-runner", "--profile-list"], runDir);
    const commands = Object.fromEntries(
      stdout
        .trimEnd()
        .split("\n")
        .map((line) => line.split(/\s{2,}/))
        .map(([name, , , command]) => [name, command]),
    );
    const self = join(runDir, "agent-runner");
    expect(commands).toEqual({
      coding: `${self} __executor claude-code`,
      "coding-sandboxed": `${self} __executor claude-code`,
      research: `${self} __executor claude-code`,
      supervised: `${self} __executor claude-code`,
      test: `${self} __executor test`,
    });
    // And it is a command that runs.
    const [program, ...args] = commands.test!.split(" ");
    const help = await run([program!, ...args, "--help"], runDir);
    expect(help.exitCode).toBe(0);
  });

  test("a profiles/ directory beside it overrides and adds profiles", async () => {
    const dir = mkdtempSync(join(tmp, "beside-"));
    copyFileSync(join(buildDir, "agent-runner"), join(dir, "agent-runner"));
    chmodSync(join(dir, "agent-runner"), 0o755);
    mkdirSync(join(dir, "profiles"));
    writeFileSync(join(dir, "profiles", "coding.json"), JSON.stringify({ type: "custom", command: "/bin/true" }));
    writeFileSync(join(dir, "profiles", "local.json"), JSON.stringify({ type: "custom", command: "/bin/true" }));
    const { exitCode, stdout } = await run(["./agent-runner", "--profile-list"], dir);
    expect(exitCode).toBe(0);
    const lines = stdout.trimEnd().split("\n");
    expect(lines.map((line) => line.split(/\s+/)[0])).toEqual([
      "coding",
      "coding-sandboxed",
      "local",
      "research",
      "supervised",
      "test",
    ]);
    expect(lines[0]).toContain(join(dir, "profiles", "coding.json"));
    expect(lines[1]).toContain("built-in");
    expect(lines[2]).toContain(join(dir, "profiles", "local.json"));
    expect(lines[3]).toContain("built-in");
  });

  test("--profile nonexistent exits 1 listing the profiles", async () => {
    const { exitCode, stderr } = await run(["./agent-runner", "--profile", "nonexistent"], runDir);
    expect(exitCode).toBe(1);
    expect(stderr).toContain(
      "Profile 'nonexistent' not found. Available: coding, coding-sandboxed, research, supervised, test",
    );
  });

  test("with --health-addr it serves /metrics: prom-client works inside the executable", async () => {
    const fake = startFakeCoordinator({ pollTimeoutSeconds: 30 });
    const runner = Bun.spawn(
      ["./agent-runner", "--profile", "test", "-c", fake.url, "-p", runDir, "--health-addr", "127.0.0.1:0"],
      { cwd: runDir, env: cleanEnv(), stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    try {
      let stderr = "";
      const decoder = new TextDecoder();
      for await (const chunk of runner.stderr) {
        stderr += decoder.decode(chunk, { stream: true });
        if (/Registered with/.test(stderr)) break;
      }
      const url = /Health and metrics at (\S+)/.exec(stderr)?.[1];
      expect(url, stderr).toBeDefined();
      const response = await fetch(`${url}/metrics`);
      expect(response.status).toBe(200);
      const families = parsePrometheusText(await response.text());
      expect(
        sampleValue(families, "agent_runner_build_info", {
          version: pkg.version,
          profile: "test",
          runner_id: "lnch_test",
        }),
      ).toBe(1);
      expect(sampleValue(families, "agent_runner_runs_started_total", { profile: "test" })).toBe(0);
      // The process's own figures work inside the executable too: its memory, descriptors, CPU.
      const rss = sampleValue(families, "process_resident_memory_bytes")!;
      expect(rss).toBeGreaterThan(10 * 1024 * 1024);
      expect(rss).toBeLessThan(1024 * 1024 * 1024);
      expect(sampleValue(families, "process_open_fds")).toBeGreaterThan(3);
      expect(sampleValue(families, "process_cpu_seconds_total")).toBeGreaterThan(0);
      expect(sampleValue(families, "process_start_time_seconds")).toBeGreaterThan(Date.now() / 1000 - 120);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    } finally {
      runner.kill("SIGKILL");
      await runner.exited;
      await fake.stop();
    }
  });

  test("--version prints the package version", async () => {
    const { exitCode, stdout } = await run(["./agent-runner", "--version"], runDir);
    expect(exitCode).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });

  test("as a runner, it removes the client secret from its own /proc/<pid>/environ once read", async () => {
    const secret = "client-secret-c0mp1led-42";
    const tokenServer = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => Response.json({ access_token: "access-token-compiled", expires_in: 3600 }),
    });
    const fake = startFakeCoordinator();
    const runner = Bun.spawn(["./agent-runner", "--profile", "test", "-c", fake.url], {
      cwd: runDir,
      env: cleanEnv({
        AUTH0_DOMAIN: `http://127.0.0.1:${tokenServer.port}`,
        AUTH0_RUNNER_CLIENT_ID: "runner-client",
        AUTH0_RUNNER_CLIENT_SECRET: secret,
        AUTH0_AUDIENCE: "agent-coordinator",
      }),
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
    try {
      const poll = await fake.waitForRequest("GET", "/runner/runs");
      expect(poll.headers.get("authorization")).toBe("Bearer access-token-compiled");
      const environ = readFileSync(`/proc/${runner.pid}/environ`, "utf8");
      expect(environ).toContain("\0AUTH0_RUNNER_CLIENT_ID=runner-client\0");
      expect(environ.includes(secret), "the secret is in /proc/<runner>/environ").toBe(false);
    } finally {
      runner.kill("SIGKILL");
      await runner.exited;
      await fake.stop();
      await tokenServer.stop(true);
    }
  }, 30_000);
});
