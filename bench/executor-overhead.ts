import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { ExecutorProcess } from "../src/process/executor-process.ts";
import { monoNs, nsToMs } from "./clock.ts";
import { FakeMessagesApi } from "./fake-messages-api.ts";
import { PeakRssSampler } from "./peak-rss.ts";
import { RecordingGateway } from "./recording-gateway.ts";
import { type ClaudeSpawn, SdkSpawnRecorder } from "./sdk-spawn-recorder.ts";
import { median, percentiles, round } from "./stats.ts";

/**
 * What a user pays per agent run for going through our Claude Code executor rather than running
 * Claude Code directly: spawn → first `POST /v1/messages` at a fake Messages API, N
 * times each way (alternating, so both see the machine in the same state); the executor's own
 * peak RSS; and the test executor's spawn → exit.
 */
const REPO = resolve(import.meta.dir, "..");
const RUN_TIMEOUT_MS = 60_000;

/** The Claude Code binary the Agent SDK would pick: the one in the SDK's platform package. */
export function claudeCodeBinary(): string | undefined {
  const path = join(
    REPO,
    "node_modules",
    "@anthropic-ai",
    `claude-agent-sdk-${process.platform}-${process.arch}`,
    "claude",
  );
  return existsSync(path) ? path : undefined;
}

export interface ExecutorOverhead {
  executor_first_request_ms: { p50: number; p95: number };
  direct_first_request_ms: { p50: number; p95: number };
  wrapper_peak_rss_mb: number;
  test_executor_ms: { p50: number };
}

export type Variant = "compiled" | "source";

/** A built-in executor's program, as the compiled runner or the source tree has it. */
export function executorArgv(variant: Variant, name: "claude-code" | "test"): string[] {
  if (variant === "compiled") return [join(REPO, "dist", "agent-runner"), "__executor", name];
  return [
    join(
      REPO,
      name === "claude-code" ? "executors/claude-code/ao-claude-code-exec" : "executors/test-executor/ao-test-exec",
    ),
  ];
}

/** The `coding` profile's settings (bypassPermissions, project+local settings, opus). */
export function codingConfig(): Record<string, unknown> {
  return (
    JSON.parse(readFileSync(join(REPO, "profiles", "coding.json"), "utf8")) as { config: Record<string, unknown> }
  ).config;
}

/**
 * Only what Claude Code and the executor need, pointed at the fakes: nothing of the real user
 * leaks in. The caller adds the gateway and the session.
 */
export function fakeClaudeEnv(home: string, apiUrl: string, claudeExecutable: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, ".claude"),
    ANTHROPIC_BASE_URL: apiUrl,
    ANTHROPIC_API_KEY: "x",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
    IS_SANDBOX: "1",
    NO_COLOR: "1",
    CLAUDE_CODE_EXECUTABLE: claudeExecutable,
  };
}

/** One process to completion: its exit code, output, and its PID while it lives (for sampling). */
async function runToExit(argv: string[], options: { stdin: string; env: Record<string, string>; cwd?: string }) {
  const proc = Bun.spawn(argv, {
    stdin: new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
    env: options.env,
    cwd: options.cwd,
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), RUN_TIMEOUT_MS);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * An executor started the way the runner starts it (src/process/executor-process.ts: own process
 * group, lifeline on fd 3, the run's project directory), run to the end of its group.
 */
async function runExecutorToExit(
  argv: string[],
  options: { stdin: string; env: Record<string, string>; cwd: string; onSpawn?: (pid: number) => void },
) {
  const proc = new ExecutorProcess({
    argv,
    input: options.stdin,
    env: options.env,
    cwd: options.cwd,
    stdout: "capture",
    stderr: "tail",
  });
  options.onSpawn?.(proc.pid);
  const timer = setTimeout(() => proc.kill(), RUN_TIMEOUT_MS);
  const status = await proc.exited;
  clearTimeout(timer);
  return { code: status.code, stdout: proc.stdout(), stderr: proc.stderrTail() };
}

export async function measureExecutorOverhead(
  variant: Variant,
  options: { runs: number; testRuns: number; tmp: string; claudeBinary: string },
): Promise<ExecutorOverhead> {
  const dir = join(options.tmp, `overhead-${variant}`);
  const home = join(dir, "home");
  const project = join(dir, "project");
  mkdirSync(join(home, ".claude"), { recursive: true });
  mkdirSync(project, { recursive: true });
  const api = new FakeMessagesApi();
  const gateway = new RecordingGateway();
  const recorder = new SdkSpawnRecorder(dir, options.claudeBinary);
  const coding = codingConfig();
  const executorEnv = (claudeExecutable: string): Record<string, string> => ({
    ...fakeClaudeEnv(home, api.url, claudeExecutable),
    AGENT_ORCHESTRATOR_API_URL: gateway.url,
    AGENT_SESSION_ID: "ses_overhead",
  });
  const invocation = (sessionId: string, config?: Record<string, unknown>) =>
    JSON.stringify({
      schema_version: "2.1",
      mode: "start",
      session_id: sessionId,
      prompt: "hi",
      project_dir: project,
      ...(config ? { executor_config: config } : {}),
    });

  /** Through the executor: spawn → first Messages request, and the executor's own peak RSS. */
  async function viaExecutor(claudeExecutable: string) {
    gateway.reset();
    const before = api.messageArrivals.length;
    let sampler: PeakRssSampler | undefined;
    const spawnedAt = monoNs();
    const out = await runExecutorToExit(executorArgv(variant, "claude-code"), {
      stdin: invocation("ses_overhead", coding),
      env: executorEnv(claudeExecutable),
      cwd: project,
      onSpawn: (pid) => (sampler = new PeakRssSampler(pid)),
    });
    const peakMb = sampler!.stop();
    const arrival = api.messageArrivals[before];
    if (out.code !== 0 || arrival === undefined || !gateway.requests.includes("POST /bind")) {
      throw new Error(
        `Claude Code executor (${variant}) run failed: exit ${out.code}, gateway saw [${gateway.requests.join(", ")}]\n${out.stderr.slice(-3000)}`,
      );
    }
    return { firstRequestMs: nsToMs(arrival - spawnedAt), peakMb };
  }

  /** Directly: the same binary with exactly the argv, environment, cwd and stdin the SDK gave it. */
  async function direct(spawn: ClaudeSpawn) {
    const before = api.messageArrivals.length;
    const spawnedAt = monoNs();
    const out = await runToExit([options.claudeBinary, ...spawn.args], {
      stdin: spawn.stdin,
      env: spawn.env,
      cwd: project,
    });
    const arrival = api.messageArrivals[before];
    if (out.code !== 0 || arrival === undefined)
      throw new Error(`direct Claude Code run failed: exit ${out.code}\n${out.stderr.slice(-3000)}`);
    return nsToMs(arrival - spawnedAt);
  }

  try {
    // One run through the recording wrapper (also the executor's warm-up: page cache, Claude Code's config dir).
    await viaExecutor(recorder.wrapper);
    const spawn = recorder.recorded();
    spawn.env.CLAUDE_CODE_EXECUTABLE = options.claudeBinary;
    await direct(spawn);

    const viaMs: number[] = [];
    const directMs: number[] = [];
    const peaks: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      const via = await viaExecutor(options.claudeBinary);
      viaMs.push(via.firstRequestMs);
      peaks.push(via.peakMb);
      directMs.push(await direct(spawn));
    }

    // The test executor: an echo run, spawn → exit, the gateway answering at once.
    const testMs: number[] = [];
    for (let i = -2; i < options.testRuns; i++) {
      gateway.reset();
      const spawnedAt = monoNs();
      const out = await runExecutorToExit(executorArgv(variant, "test"), {
        stdin: invocation(`ses_test_${i}`),
        env: executorEnv(options.claudeBinary),
        cwd: project,
      });
      const ms = nsToMs(monoNs() - spawnedAt);
      if (out.code !== 0 || !out.stdout.includes("[TEST-EXECUTOR] Received: hi")) {
        throw new Error(`test executor (${variant}) run failed: exit ${out.code}\n${out.stderr.slice(-3000)}`);
      }
      if (i >= 0) testMs.push(ms); // the first two are warm-up
    }

    const pick = (values: number[]) => {
      const { p50, p95 } = percentiles(values);
      return { p50: round(p50, 1), p95: round(p95, 1) };
    };
    return {
      executor_first_request_ms: pick(viaMs),
      direct_first_request_ms: pick(directMs),
      wrapper_peak_rss_mb: round(median(peaks), 1),
      test_executor_ms: { p50: round(median(testMs), 1) },
    };
  } finally {
    await Promise.all([api.stop(), gateway.stop()]);
  }
}
