/**
 * Section `sessions`: what a persistent session buys and costs.
 * - A second turn through a persistent Claude Code executor (a `turn` line to the process that
 *   served the first) against a one-shot resume (a new executor, which starts Claude Code again
 *   with the session's transcript): turn line, or spawn, → that turn's first `POST /v1/messages`
 *   at the bench's fake Messages API. N repetitions each, alternating.
 * - Memory per idle session: a real runner against the lean coordinator at protocol 2.2 with a
 *   persistent test-executor profile, K sessions opened and left idle, then K more; the runner's
 *   own RSS growth per idle session, and what each idle executor holds (its RSS, as
 *   `agent_runner_idle_session_memory_bytes` counts it, and its PSS, which shares the pages of
 *   the executable it runs with the other executors).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { LocalGateway } from "../src/exec/local-gateway.ts";
import { ExecutorProcess } from "../src/process/executor-process.ts";
import { PersistentExecutor } from "../src/process/persistent-executor.ts";
import { messageOf } from "../src/shared/errors.ts";
import { descendantsOf, residentBytes } from "../src/shared/process-group.ts";
import { monoNs, nsToMs } from "./clock.ts";
import { codingConfig, executorArgv, fakeClaudeEnv, type Variant } from "./executor-overhead.ts";
import { FakeMessagesApi } from "./fake-messages-api.ts";
import { LeanCoordinator } from "./lean-coordinator.ts";
import { percentiles, round } from "./stats.ts";

const REPO = resolve(import.meta.dir, "..");
const TURN_TIMEOUT_MS = 60_000;

export interface SessionsMeasures {
  persistent_second_turn_ms: { p50: number; p95: number };
  one_shot_resume_ms: { p50: number; p95: number };
  /** one-shot resume p50 ÷ persistent second turn p50 */
  resume_vs_persistent_p50: number;
  idle_sessions: IdleSessionMemory;
}

export interface IdleSessionMemory {
  sessions: number;
  runner_rss_mb: { registered: number; at_k: number; at_2k: number };
  /** (runner RSS at 2K − at K) ÷ K */
  runner_kb_per_idle_session: number;
  /** agent_runner_idle_session_memory_bytes ÷ idle sessions, at 2K */
  executor_rss_mb_per_idle_session: number;
  /** the executors' summed PSS ÷ idle sessions, at 2K */
  executor_pss_mb_per_idle_session: number;
}

/** Rejects after `ms` with what was awaited. */
function bounded<T>(promise: Promise<T>, what: string, ms = TURN_TIMEOUT_MS): Promise<T> {
  let timer: Timer | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    }),
  ]);
}

export async function measurePersistentTurn(
  variant: Variant,
  options: { runs: number; tmp: string; claudeBinary: string },
): Promise<Pick<SessionsMeasures, "persistent_second_turn_ms" | "one_shot_resume_ms" | "resume_vs_persistent_p50">> {
  const dir = join(options.tmp, `sessions-${variant}`);
  const home = join(dir, "home");
  const project = join(dir, "project");
  mkdirSync(join(home, ".claude"), { recursive: true });
  mkdirSync(project, { recursive: true });
  const api = new FakeMessagesApi();
  // exec's gateway: it keeps the sessions it saw bound, so a resume finds its executor session.
  const gateway = new LocalGateway({ hostname: "bench", executorProfile: "coding" }).start();
  const coding = codingConfig();
  const env = (sessionId: string, lifecycle: "one_shot" | "persistent"): Record<string, string> => ({
    ...fakeClaudeEnv(home, api.url, options.claudeBinary),
    AGENT_ORCHESTRATOR_API_URL: gateway.urlFor(sessionId),
    AGENT_SESSION_ID: sessionId,
    AGENT_RUNNER_LIFECYCLE: lifecycle,
  });
  const invocation = (mode: "start" | "resume", sessionId: string, prompt: string) =>
    JSON.stringify({
      schema_version: "2.2",
      mode,
      session_id: sessionId,
      parameters: { prompt },
      ...(mode === "start" ? { project_dir: project } : {}),
      executor_config: coding,
    });
  const argv = executorArgv(variant, "claude-code");

  /** One-shot, to its exit; `onSpawn` right after the spawn. */
  async function oneShot(mode: "start" | "resume", sessionId: string, prompt: string, onSpawn?: () => void) {
    const spawnedAt = monoNs();
    const executor = new ExecutorProcess({
      argv,
      input: invocation(mode, sessionId, prompt),
      env: env(sessionId, "one_shot"),
      cwd: project,
      stdout: "capture",
      stderr: "tail",
    });
    onSpawn?.();
    const timer = setTimeout(() => executor.kill(), TURN_TIMEOUT_MS);
    const status = await executor.exited;
    clearTimeout(timer);
    if (status.code !== 0) {
      throw new Error(`one-shot ${mode} (${variant}) failed: ${JSON.stringify(status)}\n${executor.stderrTail()}`);
    }
    return spawnedAt;
  }

  /** A persistent session: its first turn, then the second one timed; ended with the shutdown line. */
  async function persistentSecondTurn(sessionId: string): Promise<number> {
    const executor = new PersistentExecutor({
      argv,
      input: invocation("start", sessionId, "hi"),
      env: env(sessionId, "persistent"),
      cwd: project,
      stderr: "tail",
    });
    try {
      const first = await bounded(executor.turnEnded(), "first turn");
      if (first.kind !== "completed") throw new Error(`first turn: ${JSON.stringify(first)}`);
      const sentAt = monoNs();
      if (!executor.startTurn({ prompt: "again" })) throw new Error("the executor took no second turn");
      const arrival = api.arrivalAfter(sentAt);
      const second = await bounded(executor.turnEnded(), "second turn");
      if (second.kind !== "completed") throw new Error(`second turn: ${JSON.stringify(second)}`);
      return nsToMs((await arrival) - sentAt);
    } catch (error) {
      throw new Error(`persistent session (${variant}): ${messageOf(error)}\n${executor.process.stderrTail()}`);
    } finally {
      await executor.shutdown(5_000);
    }
  }

  /** A one-shot start, then the resume timed: spawn → its first Messages request. */
  async function oneShotResume(sessionId: string): Promise<number> {
    await oneShot("start", sessionId, "hi");
    let arrival: Promise<bigint> | undefined;
    const spawnedAt = await oneShot("resume", sessionId, "again", () => {
      arrival = api.arrivalAfter(monoNs());
    });
    return nsToMs((await arrival!) - spawnedAt);
  }

  try {
    // Warm-up of both (page cache, Claude Code's config directory).
    await persistentSecondTurn(`ses_${variant}_warm_p`);
    await oneShotResume(`ses_${variant}_warm_r`);
    const persistent: number[] = [];
    const resumed: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      persistent.push(await persistentSecondTurn(`ses_${variant}_p${i}`));
      resumed.push(await oneShotResume(`ses_${variant}_r${i}`));
    }
    const pick = (values: number[]) => {
      const { p50, p95 } = percentiles(values);
      return { p50: round(p50, 1), p95: round(p95, 1) };
    };
    const p = pick(persistent);
    const r = pick(resumed);
    return {
      persistent_second_turn_ms: p,
      one_shot_resume_ms: r,
      resume_vs_persistent_p50: round(r.p50 / p.p50, 1),
    };
  } finally {
    await Promise.all([api.stop(), gateway.stop()]);
  }
}

/** Proportional set size of one process, in kB: its private pages plus its share of pages others map too. */
function pssKb(pid: number): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** A free port on 127.0.0.1 (taken, then given back). */
function freePort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = server.port!;
  server.stop(true);
  return port;
}

export async function measureIdleSessions(
  variant: Variant,
  options: { sessions: number; tmp: string; baseEnv: Record<string, string> },
): Promise<IdleSessionMemory> {
  const k = options.sessions;
  const dir = join(options.tmp, `idle-${variant}`);
  const profiles = join(dir, "profiles");
  mkdirSync(profiles, { recursive: true });
  mkdirSync(join(dir, "project"), { recursive: true });
  // The test executor, kept alive between turns; relative, so the compiled runner runs its own.
  writeFileSync(
    join(profiles, "persist.json"),
    JSON.stringify({ type: "test-executor", command: "executors/test-executor/ao-test-exec", lifecycle: "persistent" }),
  );
  const coordinator = new LeanCoordinator(30, "2.2");
  const port = freePort();
  const argv =
    variant === "compiled" ? [join(REPO, "dist", "agent-runner")] : [process.execPath, join(REPO, "index.ts")];
  const runner = Bun.spawn(
    [
      ...argv,
      ...["--profile", "persist", "--profiles-dir", profiles, "-c", coordinator.url, "-p", join(dir, "project")],
      ...["--coordinator-protocol", "2.2", "--max-idle-sessions", String(2 * k + 1), "--state-dir", join(dir, "state")],
      ...["--health-addr", `127.0.0.1:${port}`],
    ],
    { cwd: dir, env: options.baseEnv, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  let log = "";
  const { promise: stopping, resolve: stopSeen } = Promise.withResolvers<void>();
  for (const stream of [runner.stdout, runner.stderr]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        log = (log + decoder.decode(chunk, { stream: true })).slice(-20_000);
        if (log.includes("shutting down")) stopSeen();
      }
      stopSeen();
    })();
  }
  const exited = runner.exited.then((code) => {
    throw new Error(`runner (${variant}) exited ${code}:\n${log}`);
  });
  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1];
    if (value === undefined) throw new Error(`/metrics has no ${name}:\n${text.slice(0, 2000)}`);
    return Number(value);
  };
  let handed = 0;
  /** Hands out `count` session starts and waits until each is reported completed (its session idle). */
  const open = async (count: number) => {
    const ids: string[] = [];
    for (let i = 0; i < count; i++, handed++) {
      const id = `run_${variant}_${handed}`;
      ids.push(id);
      coordinator.hand({
        run_id: id,
        type: "start_session",
        session_id: `ses_${variant}_${handed}`,
        parameters: { prompt: "idle" },
      });
    }
    const done = () => ids.every((id) => coordinator.reports.get(id)?.some((r) => r.kind !== "started"));
    await Promise.race([coordinator.until(done), exited]);
    const failed = ids.filter((id) => !coordinator.reports.get(id)?.some((r) => r.kind === "completed"));
    if (failed.length) throw new Error(`runs not completed: ${failed.join(", ")}\n${log}`);
  };
  /** Once the runner and its executors are settled: the runner's RSS and the executors' memory. */
  const sample = async () => {
    // Like the runner section's idle reading: a second for start-up work and GC to settle.
    await Bun.sleep(1000);
    const executors = descendantsOf(runner.pid);
    return {
      runnerKb: (residentBytes(runner.pid) ?? 0) / 1024,
      idle: await metric("agent_runner_idle_sessions"),
      idleBytes: await metric("agent_runner_idle_session_memory_bytes"),
      pssKb: executors.reduce((sum, pid) => sum + pssKb(pid), 0),
    };
  };
  try {
    await Promise.race([
      coordinator.until(() => coordinator.registrations.length > 0 && coordinator.polls > 0),
      exited,
    ]);
    const registered = await sample();
    await open(k);
    const atK = await sample();
    await open(k);
    const at2k = await sample();
    if (at2k.idle !== 2 * k) throw new Error(`expected ${2 * k} idle sessions, the runner says ${at2k.idle}`);
    runner.kill("SIGTERM");
    await stopping;
    coordinator.releasePoll();
    const code = await runner.exited;
    if (code !== 0) throw new Error(`runner (${variant}) exited ${code} at the end:\n${log}`);
    const mb = (kb: number) => round(kb / 1024, 1);
    return {
      sessions: 2 * k,
      runner_rss_mb: { registered: mb(registered.runnerKb), at_k: mb(atK.runnerKb), at_2k: mb(at2k.runnerKb) },
      runner_kb_per_idle_session: round((at2k.runnerKb - atK.runnerKb) / k, 0),
      executor_rss_mb_per_idle_session: round(at2k.idleBytes / at2k.idle / 1024 / 1024, 1),
      executor_pss_mb_per_idle_session: round(at2k.pssKb / at2k.idle / 1024, 1),
    };
  } finally {
    // Whatever a failed measurement left: the runner and its executors (found before it goes).
    const left = descendantsOf(runner.pid);
    runner.kill("SIGKILL");
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await coordinator.stop();
  }
}
