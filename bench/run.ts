#!/usr/bin/env bun
/**
 * `bun run bench [--runs N] [--variants compiled,source] [--startups K] [--no-build]
 *                [--overhead-runs M] [--session-runs S] [--idle-sessions K]
 *                [--sections runner,executor_overhead,sessions]`
 *
 * Section `runner`: the runner's overhead against the floor (the same minimal executor spawned
 * directly with Bun.spawn): dispatch and report latency, throughput at 1 and 16 runs in flight,
 * the runner's memory and its start-up time. The runner runs as a separate process (the compiled
 * binary and `bun index.ts`) against a lean coordinator in this process.
 * Section `executor_overhead` (bench/executor-overhead.ts): the Claude Code executor against
 * Claude Code run directly, M runs each, and the test executor's start → exit.
 * Section `sessions` (bench/sessions.ts): a persistent Claude Code executor's second turn against a
 * one-shot resume, S each; the memory of 2K idle persistent sessions under a real runner.
 * All traffic stays on 127.0.0.1. Prints a table and writes bench/results.json.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { monoNs, nsToMs } from "./clock.ts";
import { claudeCodeBinary, type ExecutorOverhead, measureExecutorOverhead } from "./executor-overhead.ts";
import { type BenchRun, LeanCoordinator } from "./lean-coordinator.ts";
import {
  type IdleSessionMemory,
  measureIdleSessions,
  measurePersistentTurn,
  type SessionsMeasures,
} from "./sessions.ts";
import { type Percentiles, percentiles, round } from "./stats.ts";

const REPO = resolve(import.meta.dir, "..");

// ---------- options ----------
function option(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  if (at >= 0) return process.argv[at + 1];
  const inline = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return inline?.slice(name.length + 3);
}
const RUNS = Number(option("runs") ?? 500);
const STARTUPS = Number(option("startups") ?? 5);
const VARIANTS = (option("variants") ?? "compiled,source").split(",") as Array<"compiled" | "source">;
const BUILD = !process.argv.includes("--no-build");
const WARMUP = Math.min(50, RUNS);
// Each Claude Code run takes ~0.5-1 s and two CPU-heavy processes: a handful gives a stable median.
const OVERHEAD_RUNS = Number(option("overhead-runs") ?? 10);
const SESSION_RUNS = Number(option("session-runs") ?? 10);
const IDLE_SESSIONS = Number(option("idle-sessions") ?? 8);
const KNOWN_SECTIONS = ["runner", "executor_overhead", "sessions"];
const SECTIONS = (option("sections") ?? KNOWN_SECTIONS.join(",")).split(",");
if (!Number.isInteger(RUNS) || RUNS < 1)
  throw new Error(`--runs must be a positive whole number, got ${option("runs")}`);
for (const [name, value] of [
  ["overhead-runs", OVERHEAD_RUNS],
  ["session-runs", SESSION_RUNS],
  ["idle-sessions", IDLE_SESSIONS],
] as const) {
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`--${name} must be a positive whole number, got ${option(name)}`);
}
for (const section of SECTIONS) {
  if (!KNOWN_SECTIONS.includes(section))
    throw new Error(`--sections: unknown section '${section}' (known: ${KNOWN_SECTIONS.join(", ")})`);
}

// ---------- helpers ----------
/** VmRSS and VmHWM (peak) of one process, in MB. */
function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rss: round(kb("VmRSS") / 1024, 1), hwm: round(kb("VmHWM") / 1024, 1) };
}

/** CPU time (user + system) a process has used so far, in ms (/proc/<pid>/stat, 100 Hz ticks). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
const ownCpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/** Lines "<session> <t_stdin> <t_exit> <bytes>" written by the stamp executor. */
function readStamps(file: string): Map<string, { stdin: bigint; exit: bigint }> {
  const stamps = new Map<string, { stdin: bigint; exit: bigint }>();
  if (!existsSync(file)) return stamps;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [session, stdin, exit] = line.split(" ");
    if (session && stdin && exit) stamps.set(session, { stdin: BigInt(stdin), exit: BigInt(exit) });
  }
  return stamps;
}

async function sh(argv: string[], cwd = REPO): Promise<void> {
  const proc = Bun.spawn(argv, { cwd, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${argv.join(" ")} failed (${code}):\n${out}\n${err}`);
}

// ---------- set-up: temp dir, stamp executor, profile ----------
const tmp = mkdtempSync(join(tmpdir(), "ar-bench-"));
const stampFile = join(tmp, "stamps");
let executor: { argv: string[]; kind: string };
if (Bun.which("cc")) {
  await sh(["cc", "-O2", "-o", join(tmp, "stamp-exec"), join(import.meta.dir, "stamp-exec.c")]);
  executor = { argv: [join(tmp, "stamp-exec")], kind: "C (bench/stamp-exec.c, cc -O2)" };
} else {
  executor = { argv: [join(import.meta.dir, "stamp-exec.ts")], kind: "Bun script (bench/stamp-exec.ts; no cc found)" };
}
const profilesDir = join(tmp, "profiles");
await sh(["mkdir", "-p", profilesDir]);
writeFileSync(join(profilesDir, "bench.json"), JSON.stringify({ type: "bench", command: executor.argv[0] }));

/** What the runner gives every executor: its own environment plus the gateway URL and session id. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      value === undefined ||
      /^(AUTH0_|AGENT_|RUNNER_TAGS$|PROJECT_DIR$|POLL_TIMEOUT$|HEARTBEAT_INTERVAL$)/.test(name)
    )
      continue;
    env[name] = value;
  }
  return { ...env, NO_COLOR: "1", BENCH_STAMP_FILE: stampFile };
}

// ---------- the floor: the executor spawned directly ----------
/** The same options the runner's ExecutorProcess uses: stdin bytes, stdout ignored, stderr drained, own process group. */
async function floorPhase(concurrency: number, count: number, tag: string) {
  truncateSync(stampFile, 0);
  const env = baseEnv();
  env.AGENT_ORCHESTRATOR_API_URL = "http://127.0.0.1:9";
  const spawnedAt = new Map<string, bigint>();
  const input = (session: string) =>
    new TextEncoder().encode(
      JSON.stringify({ schema_version: "2.1", mode: "start", session_id: session, prompt: "bench", project_dir: tmp }),
    );
  let next = 0;
  const started = monoNs();
  async function worker() {
    while (next < count) {
      const session = `ses_floor_${tag}_${next++}`;
      const bytes = input(session);
      const at = monoNs();
      const child = Bun.spawn(executor.argv, {
        stdin: bytes,
        stdout: "ignore",
        stderr: "pipe",
        env: { ...env, AGENT_SESSION_ID: session },
        detached: true,
      });
      spawnedAt.set(session, at);
      await Promise.all([new Response(child.stderr).arrayBuffer(), child.exited]);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = monoNs() - started;
  const stamps = readStamps(stampFile);
  const toStdin: number[] = [];
  for (const [session, at] of spawnedAt) {
    const stamp = stamps.get(session);
    if (!stamp) throw new Error(`floor: no stamp for ${session}`);
    toStdin.push(nsToMs(stamp.stdin - at));
  }
  return { spawnToStdin: percentiles(toStdin), rps: round(count / (Number(elapsed) / 1e9), 1) };
}

// ---------- the runner ----------
interface RunnerProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  output: () => string;
  spawnedAt: bigint;
  /** Resolves once the runner has logged that it is shutting down. */
  stopping: Promise<void>;
}

function startRunner(variant: "compiled" | "source", coordinator: LeanCoordinator): RunnerProcess {
  const argv =
    variant === "compiled" ? [join(REPO, "dist", "agent-runner")] : [process.execPath, join(REPO, "index.ts")];
  const args = ["--profile", "bench", "--profiles-dir", profilesDir, "-c", coordinator.url, "-p", tmp];
  let tail = "";
  const spawnedAt = monoNs();
  const proc = Bun.spawn([...argv, ...args], {
    cwd: tmp,
    env: baseEnv(),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const { promise: stopping, resolve: stopSeen } = Promise.withResolvers<void>();
  // Drain the runner's log (2 lines a run) so it never blocks; keep the end for error messages.
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-20_000);
        if (tail.includes("shutting down")) stopSeen();
      }
      stopSeen();
    })();
  }
  return { proc, output: () => tail, spawnedAt, stopping };
}

async function stopRunner(runner: RunnerProcess, coordinator: LeanCoordinator): Promise<void> {
  runner.proc.kill("SIGTERM");
  // Once the runner has seen the signal (it logs it), its poll in flight can end.
  await runner.stopping;
  coordinator.releasePoll();
  const code = await runner.proc.exited;
  if (code !== 0) throw new Error(`runner exited ${code}:\n${runner.output()}`);
}

/** Feeds `count` runs keeping `concurrency` in flight; resolves when every one is completed. */
async function runnerPhase(coordinator: LeanCoordinator, concurrency: number, count: number, tag: string) {
  truncateSync(stampFile, 0);
  const ids: string[] = [];
  let handed = 0;
  let done = 0;
  const failures: string[] = [];
  const handNext = () => {
    const i = handed++;
    const run: BenchRun = {
      run_id: `run_${tag}_${i}`,
      type: "start_session",
      session_id: `ses_${tag}_${i}`,
      prompt: "bench",
    };
    ids.push(run.run_id);
    coordinator.hand(run);
  };
  const finished = new Promise<void>((resolveAll) => {
    coordinator.onReport = (runId, kind) => {
      if (!runId.startsWith(`run_${tag}_`) || kind === "started") return;
      if (kind !== "completed") failures.push(`${runId} ${kind}`);
      done++;
      if (handed < count) handNext();
      if (done === count) resolveAll();
    };
  });
  const started = monoNs();
  for (let i = 0; i < Math.min(concurrency, count); i++) handNext();
  await finished;
  const elapsed = monoNs() - started;
  coordinator.onReport = undefined;
  if (failures.length) throw new Error(`runs did not complete: ${failures.slice(0, 5).join(", ")}`);

  const stamps = readStamps(stampFile);
  const dispatch: number[] = [];
  const report: number[] = [];
  let duplicates = 0;
  for (const runId of ids) {
    const session = runId.replace(/^run_/, "ses_");
    const stamp = stamps.get(session);
    const handedAt = coordinator.handedAt.get(runId);
    const reports = coordinator.reports.get(runId) ?? [];
    const completed = reports.find((r) => r.kind === "completed");
    if (!stamp || !handedAt || !completed) throw new Error(`${runId}: missing stamp, hand-out or report`);
    if (reports.length !== 2) duplicates++;
    dispatch.push(nsToMs(stamp.stdin - handedAt));
    report.push(nsToMs(completed.at - stamp.exit));
  }
  return {
    dispatch: percentiles(dispatch),
    report: percentiles(report),
    rps: round(count / (Number(elapsed) / 1e9), 1),
    duplicates,
  };
}

async function measureVariant(variant: "compiled" | "source") {
  const coordinator = new LeanCoordinator();
  try {
    // The floor right before this variant, so both see the machine in the same state; warmed up
    // first like the runner (the first spawns of a process pay for JIT and lazy set-up).
    await floorPhase(16, WARMUP, `${variant}_warm`);
    const floor1 = await floorPhase(1, RUNS, `${variant}_c1`);
    const floor16 = await floorPhase(16, RUNS, `${variant}_c16`);

    // Start-up: spawn → POST /runner/register arrives, K times; the last runner stays for the runs.
    const startups: number[] = [];
    let runner: RunnerProcess | undefined;
    for (let k = 0; k < STARTUPS; k++) {
      runner = startRunner(variant, coordinator);
      const registrations = coordinator.registrations.length;
      const polls = coordinator.polls;
      const exited = runner.proc.exited.then((code) => {
        throw new Error(`runner exited ${code} before registering:\n${runner!.output()}`);
      });
      await Promise.race([
        coordinator.until(() => coordinator.registrations.length > registrations && coordinator.polls > polls),
        exited,
      ]);
      startups.push(nsToMs(coordinator.registrations.at(-1)! - runner.spawnedAt));
      if (k < STARTUPS - 1) await stopRunner(runner, coordinator);
    }
    const live = runner!;
    // Idle: registered and holding its first poll; a second for start-up work and GC to settle.
    await Bun.sleep(1000);
    const idle = memory(live.proc.pid);

    await runnerPhase(coordinator, 1, WARMUP, `${variant}_warm`);
    const c1 = await runnerPhase(coordinator, 1, RUNS, `${variant}_c1`);
    // CPU per run at c16: the runner process, and this process (the coordinator's side of 3 HTTP requests a run).
    const [runnerCpu0, ownCpu0] = [cpuMs(live.proc.pid), ownCpuMs()];
    const c16 = await runnerPhase(coordinator, 16, RUNS, `${variant}_c16`);
    const runnerCpuPerRun = round((cpuMs(live.proc.pid) - runnerCpu0) / RUNS, 3);
    const coordinatorCpuPerRun = round((ownCpuMs() - ownCpu0) / RUNS, 3);
    const after = memory(live.proc.pid);
    await stopRunner(live, coordinator);

    const startSorted = [...startups].sort((a, b) => a - b);
    return {
      dispatch_latency_ms: c1.dispatch,
      floor_spawn_to_stdin_ms: floor1.spawnToStdin,
      report_latency_ms: c1.report,
      throughput_rps: { c1: c1.rps, c16: c16.rps },
      floor_throughput_rps: { c1: floor1.rps, c16: floor16.rps },
      rss_idle_mb: idle.rss,
      rss_peak_mb: after.hwm,
      rss_after_runs_mb: after.rss,
      start_to_registered_ms: round(startSorted[Math.floor(startSorted.length / 2)]!, 1),
      start_to_registered_all_ms: startups.map((ms) => round(ms, 1)),
      at_c16: {
        dispatch_latency_ms: c16.dispatch,
        floor_spawn_to_stdin_ms: floor16.spawnToStdin,
        report_latency_ms: c16.report,
      },
      ratios: {
        dispatch_p50_vs_floor: round(c1.dispatch.p50 / floor1.spawnToStdin.p50, 2),
        throughput_c1_vs_floor: round(c1.rps / floor1.rps, 2),
        throughput_c16_vs_floor: round(c16.rps / floor16.rps, 2),
      },
      cpu_ms_per_run_c16: { runner: runnerCpuPerRun, bench_coordinator: coordinatorCpuPerRun },
      duplicated_or_missing_reports: c1.duplicates + c16.duplicates,
    };
  } finally {
    await coordinator.stop();
  }
}

// ---------- main ----------
type RunnerMeasures = Awaited<ReturnType<typeof measureVariant>>;
type Skipped = { skipped: string };
type VariantResult = Partial<RunnerMeasures> & {
  executor_overhead?: ExecutorOverhead | Skipped;
  sessions?: Partial<SessionsMeasures> & { persistent_turn?: Skipped; idle_sessions?: IdleSessionMemory };
};
const isOverhead = (o: VariantResult["executor_overhead"]): o is ExecutorOverhead =>
  o !== undefined && !("skipped" in o);

try {
  if (VARIANTS.includes("compiled")) {
    if (BUILD) await sh(["bun", "run", "build"]);
    if (!existsSync(join(REPO, "dist", "agent-runner")))
      throw new Error("dist/agent-runner missing: run `bun run build`");
  }
  writeFileSync(stampFile, "");
  const claudeBinary = claudeCodeBinary();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    // The load average says how much other work shared the machine (numbers move with it).
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      kernel: release(),
      bun: Bun.version,
      loadavg_at_start: loadavg().map((l) => round(l, 2)),
    },
    sections: SECTIONS,
    runs: RUNS,
    warmup_runs: WARMUP,
    startups: STARTUPS,
    overhead_runs: OVERHEAD_RUNS,
    session_runs: SESSION_RUNS,
    idle_sessions: 2 * IDLE_SESSIONS,
    executor: executor.kind,
    coordinator: "bench/lean-coordinator.ts (in the bench process)",
    claude_code_binary: claudeBinary ?? "(not installed: executor_overhead skipped)",
    clock: "CLOCK_MONOTONIC: clock_gettime in the executor, libc clock_gettime via bun:ffi here",
    notes: {
      dispatch_latency_ms: "run handed out by the coordinator → executor has read all of its stdin (1 run in flight)",
      floor_spawn_to_stdin_ms: "Bun.spawn called → executor has read all of its stdin (1 in flight)",
      report_latency_ms: "executor about to exit → `completed` received by the coordinator (1 run in flight)",
      at_c16: "the same latencies with 16 runs in flight",
      executor_first_request_ms:
        "Claude Code executor spawned with a 2.1 start invocation (coding profile config, prompt 'hi') → its Claude Code child's first POST /v1/messages at the bench's fake API",
      direct_first_request_ms:
        "the same Claude Code binary spawned with the argv, env, cwd and stdin the Agent SDK gave it (recorded through a wrapper) → first POST /v1/messages",
      wrapper_peak_rss_mb:
        "median over the runs of the executor process's own VmHWM (its Claude Code child not included)",
      test_executor_ms: "test executor, echo start run, spawn → exit, gateway answering at once",
      persistent_second_turn_ms:
        "persistent Claude Code executor (2.2, coding config): its first turn done, the second turn's line written → that turn's first POST /v1/messages",
      one_shot_resume_ms:
        "one-shot Claude Code executor with a 2.2 resume invocation of a session an earlier one-shot run started: spawn → its first POST /v1/messages",
      idle_sessions:
        "a runner at protocol 2.2 (lean coordinator) with a persistent test-executor profile: K sessions started and left idle, then K more; runner_kb_per_idle_session = (runner RSS at 2K − at K) ÷ K; executor_rss_mb_per_idle_session = agent_runner_idle_session_memory_bytes ÷ idle sessions; executor_pss_mb_per_idle_session = the executors' PSS (/proc/<pid>/smaps_rollup) ÷ idle sessions",
    },
  };
  const measured: Record<string, VariantResult> = {};
  for (const variant of VARIANTS) {
    const result: VariantResult = {};
    if (SECTIONS.includes("runner")) {
      console.error(`measuring ${variant} (${RUNS} runs at c1 and at c16, ${STARTUPS} start-ups)…`);
      Object.assign(result, await measureVariant(variant));
    }
    if (SECTIONS.includes("executor_overhead")) {
      if (claudeBinary) {
        console.error(`measuring ${variant} executor overhead (${OVERHEAD_RUNS} Claude Code runs each way)…`);
        result.executor_overhead = await measureExecutorOverhead(variant, {
          runs: OVERHEAD_RUNS,
          testRuns: Math.max(20, OVERHEAD_RUNS),
          tmp,
          claudeBinary,
        });
      } else {
        result.executor_overhead = {
          skipped: `no Claude Code binary for ${process.platform}-${process.arch} in node_modules`,
        };
      }
    }
    if (SECTIONS.includes("sessions")) {
      const sessions: NonNullable<VariantResult["sessions"]> = {};
      if (claudeBinary) {
        console.error(`measuring ${variant} persistent second turns against one-shot resumes (${SESSION_RUNS} each)…`);
        Object.assign(sessions, await measurePersistentTurn(variant, { runs: SESSION_RUNS, tmp, claudeBinary }));
      } else {
        sessions.persistent_turn = { skipped: `no Claude Code binary for ${process.platform}-${process.arch}` };
      }
      console.error(`measuring ${variant} memory of ${2 * IDLE_SESSIONS} idle sessions…`);
      sessions.idle_sessions = await measureIdleSessions(variant, { sessions: IDLE_SESSIONS, tmp, baseEnv: baseEnv() });
      result.sessions = sessions;
    }
    measured[variant] = result;
    results[variant] = result;
  }

  type Target = [string, (m: VariantResult, variant: string) => number | undefined, string, (v: number) => boolean];
  const overhead = (m: VariantResult) => (isOverhead(m.executor_overhead) ? m.executor_overhead : undefined);
  const targets: Target[] = [
    ["report latency p99 (ms)", (m) => m.report_latency_ms?.p99, "< 10", (v) => v < 10],
    ["dispatch p50 / floor p50", (m) => m.ratios?.dispatch_p50_vs_floor, "≤ 1.5", (v) => v <= 1.5],
    // Throughput has no target (the coordinator hands out one run per poll); it is still reported.
    ["idle RSS (MB)", (m, variant) => (variant === "compiled" ? m.rss_idle_mb : undefined), "< 45", (v) => v < 45],
    ["start → registered (ms)", (m) => m.start_to_registered_ms, "< 150", (v) => v < 150],
    [
      "executor overhead p50 (ms)",
      (m) => {
        const o = overhead(m);
        return o && round(o.executor_first_request_ms.p50 - o.direct_first_request_ms.p50, 1);
      },
      "≤ 50",
      (v) => v <= 50,
    ],
    ["wrapper peak RSS (MB)", (m) => overhead(m)?.wrapper_peak_rss_mb, "< 50", (v) => v < 50],
    ["test executor p50 (ms)", (m) => overhead(m)?.test_executor_ms.p50, "< 60", (v) => v < 60],
    ["resume p50 ÷ persistent p50", (m) => m.sessions?.resume_vs_persistent_p50, "≥ 5", (v) => v >= 5],
  ];
  const applicable = (variant: string) =>
    targets.flatMap(([name, get, target, ok]) => {
      const value = get(measured[variant]!, variant);
      return value === undefined ? [] : [{ name, value, target, met: ok(value) }];
    });
  results.targets = Object.fromEntries(
    VARIANTS.map((variant) => [
      variant,
      Object.fromEntries(applicable(variant).map(({ name, ...rest }) => [name, rest])),
    ]),
  );
  (results.machine as Record<string, unknown>).loadavg_at_end = loadavg().map((l) => round(l, 2));
  writeFileSync(join(import.meta.dir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);

  // ---------- table ----------
  const fmt = (p: Percentiles) => `${p.p50} / ${p.p95} / ${p.p99}`;
  const runnerRows: Array<[string, (m: RunnerMeasures) => string]> = [
    ["dispatch latency ms p50/p95/p99", (m) => fmt(m.dispatch_latency_ms)],
    ["floor spawn→stdin ms p50/p95/p99", (m) => fmt(m.floor_spawn_to_stdin_ms)],
    ["dispatch p50 / floor p50", (m) => String(m.ratios.dispatch_p50_vs_floor)],
    ["report latency ms p50/p95/p99", (m) => fmt(m.report_latency_ms)],
    ["throughput c1 runs/s (floor)", (m) => `${m.throughput_rps.c1} (${m.floor_throughput_rps.c1})`],
    ["throughput c16 runs/s (floor)", (m) => `${m.throughput_rps.c16} (${m.floor_throughput_rps.c16})`],
    ["throughput ratio c1 / c16", (m) => `${m.ratios.throughput_c1_vs_floor} / ${m.ratios.throughput_c16_vs_floor}`],
    ["c16 dispatch ms p50/p95/p99", (m) => fmt(m.at_c16.dispatch_latency_ms)],
    ["c16 floor spawn→stdin ms", (m) => fmt(m.at_c16.floor_spawn_to_stdin_ms)],
    ["c16 report latency ms", (m) => fmt(m.at_c16.report_latency_ms)],
    [
      "CPU ms per run at c16: runner / coord.",
      (m) => `${m.cpu_ms_per_run_c16.runner} / ${m.cpu_ms_per_run_c16.bench_coordinator}`,
    ],
    ["RSS idle / peak MB", (m) => `${m.rss_idle_mb} / ${m.rss_peak_mb}`],
    [
      "start → registered ms (median)",
      (m) => `${m.start_to_registered_ms} [${m.start_to_registered_all_ms.join(", ")}]`,
    ],
  ];
  const overheadRows: Array<[string, (o: ExecutorOverhead) => string]> = [
    [
      "executor → 1st API request ms p50/p95",
      (o) => `${o.executor_first_request_ms.p50} / ${o.executor_first_request_ms.p95}`,
    ],
    [
      "direct → 1st API request ms p50/p95",
      (o) => `${o.direct_first_request_ms.p50} / ${o.direct_first_request_ms.p95}`,
    ],
    // p95 − p95 is left out: with ~10 runs each, the two tails are single runs and their difference is noise.
    [
      "executor − direct ms (p50 − p50)",
      (o) => String(round(o.executor_first_request_ms.p50 - o.direct_first_request_ms.p50, 1)),
    ],
    ["executor peak RSS MB (own, median)", (o) => String(o.wrapper_peak_rss_mb)],
    ["test executor spawn → exit ms p50", (o) => String(o.test_executor_ms.p50)],
  ];
  const sessionRows: Array<[string, (s: NonNullable<VariantResult["sessions"]>) => string]> = [
    [
      "persistent 2nd turn → 1st request ms p50/p95",
      (s) =>
        s.persistent_second_turn_ms
          ? `${s.persistent_second_turn_ms.p50} / ${s.persistent_second_turn_ms.p95}`
          : `skipped: ${s.persistent_turn?.skipped}`,
    ],
    [
      "one-shot resume → 1st request ms p50/p95",
      (s) => (s.one_shot_resume_ms ? `${s.one_shot_resume_ms.p50} / ${s.one_shot_resume_ms.p95}` : "skipped"),
    ],
    ["resume p50 ÷ persistent p50", (s) => String(s.resume_vs_persistent_p50 ?? "skipped")],
    [
      "runner RSS MB: registered / K / 2K idle",
      (s) => {
        const r = s.idle_sessions!.runner_rss_mb;
        return `${r.registered} / ${r.at_k} / ${r.at_2k}`;
      },
    ],
    ["runner KB per idle session", (s) => String(s.idle_sessions!.runner_kb_per_idle_session)],
    [
      "executor MB per idle session RSS / PSS",
      (s) =>
        `${s.idle_sessions!.executor_rss_mb_per_idle_session} / ${s.idle_sessions!.executor_pss_mb_per_idle_session}`,
    ],
  ];
  const body: string[][] = [];
  if (SECTIONS.includes("runner")) {
    for (const [name, get] of runnerRows) body.push([name, ...VARIANTS.map((v) => get(measured[v] as RunnerMeasures))]);
  }
  if (SECTIONS.includes("executor_overhead")) {
    for (const [name, get] of overheadRows) {
      body.push([
        name,
        ...VARIANTS.map((v) => {
          const o = measured[v]!.executor_overhead;
          return isOverhead(o) ? get(o) : `skipped: ${o?.skipped}`;
        }),
      ]);
    }
  }
  if (SECTIONS.includes("sessions")) {
    for (const [name, get] of sessionRows) body.push([name, ...VARIANTS.map((v) => get(measured[v]!.sessions!))]);
  }
  const header = ["metric", ...VARIANTS];
  const widths = header.map((_, i) => Math.max(...[header, ...body].map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ");
  const what = [
    SECTIONS.includes("runner") ? `${RUNS} runs per phase, executor: ${executor.kind}` : undefined,
    SECTIONS.includes("executor_overhead") ? `${OVERHEAD_RUNS} Claude Code runs each way` : undefined,
    SECTIONS.includes("sessions")
      ? `${SESSION_RUNS} second turns each way, ${2 * IDLE_SESSIONS} idle sessions`
      : undefined,
  ].filter(Boolean);
  console.log(`\n${what.join("; ")}, ${cpus().length} CPUs (load ${loadavg()[0]!.toFixed(2)}), Bun ${Bun.version}\n`);
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("-|-"));
  for (const row of body) console.log(line(row));
  console.log("\ntargets:");
  for (const variant of VARIANTS) {
    for (const { name, value, target, met } of applicable(variant)) {
      console.log(
        `  ${variant.padEnd(8)} ${name.padEnd(26)} ${String(value).padStart(8)}  target ${target.padEnd(16)} ${met ? "met" : "MISSED"}`,
      );
    }
  }
  console.log(`\nwritten: bench/results.json`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
