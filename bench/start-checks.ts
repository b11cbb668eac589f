#!/usr/bin/env bun
/**
 * `bun bench/start-checks.ts [--startups K] [--variants compiled,source] [--no-build]`
 *
 * Start → registered (spawn → `POST /runner/register` arrives) of a runner with the `test`
 * profile and with the `coding` profile (Claude Code: the start-up executor checks look for the
 * binary and run its `--version`), K times each, alternating, against the bench's lean
 * coordinator. CLAUDE_CODE_EXECUTABLE is the Agent SDK platform package's binary. Prints the
 * medians and every sample.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { monoNs, nsToMs } from "./clock.ts";
import { claudeCodeBinary } from "./executor-overhead.ts";
import { LeanCoordinator } from "./lean-coordinator.ts";
import { median, round } from "./stats.ts";

const REPO = resolve(import.meta.dir, "..");
const at = process.argv.indexOf("--startups");
const STARTUPS = at >= 0 ? Number(process.argv[at + 1]) : 10;
const variantsAt = process.argv.indexOf("--variants");
const VARIANTS = (variantsAt >= 0 ? process.argv[variantsAt + 1]! : "compiled,source").split(",");
if (!Number.isInteger(STARTUPS) || STARTUPS < 1) throw new Error("--startups must be a positive whole number");

if (VARIANTS.includes("compiled") && !process.argv.includes("--no-build")) {
  const build = Bun.spawnSync([process.execPath, "run", "build"], { cwd: REPO, stdout: "ignore", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("bun run build failed");
}

const tmp = mkdtempSync(join(tmpdir(), "ar-bench-start-"));
const claude = claudeCodeBinary();
if (!claude) throw new Error("the Agent SDK's platform package (the Claude Code binary) is not installed");
const env: Record<string, string> = { NO_COLOR: "1", CLAUDE_CODE_EXECUTABLE: claude };
for (const name of ["PATH", "HOME", "TMPDIR"]) if (process.env[name]) env[name] = process.env[name]!;
env.AGENT_RUNNER_STATE_DIR = join(tmp, "state");

async function startToRegistered(variant: string, profile: string, coordinator: LeanCoordinator): Promise<number> {
  const argv =
    variant === "compiled" ? [join(REPO, "dist", "agent-runner")] : [process.execPath, join(REPO, "index.ts")];
  const registrations = coordinator.registrations.length;
  const polls = coordinator.polls;
  const spawnedAt = monoNs();
  const proc = Bun.spawn([...argv, "--profile", profile, "-c", coordinator.url, "-p", tmp], {
    cwd: tmp,
    env,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stderr = new Response(proc.stderr).text();
  const exited = proc.exited.then(async (code) => {
    throw new Error(`runner exited ${code} before registering:\n${await stderr}`);
  });
  await Promise.race([
    coordinator.until(() => coordinator.registrations.length > registrations && coordinator.polls > polls),
    exited,
  ]);
  const ms = nsToMs(coordinator.registrations.at(-1)! - spawnedAt);
  proc.kill("SIGTERM");
  coordinator.releasePoll();
  // The runner logs the signal before it waits for its poll in flight: release that poll too.
  const timer = setInterval(() => coordinator.releasePoll(), 20);
  await proc.exited.catch(() => {});
  clearInterval(timer);
  return ms;
}

const coordinator = new LeanCoordinator();
try {
  for (const variant of VARIANTS) {
    const samples: Record<string, number[]> = { test: [], coding: [] };
    for (let k = 0; k < STARTUPS; k++) {
      for (const profile of ["test", "coding"])
        samples[profile]!.push(await startToRegistered(variant, profile, coordinator));
    }
    for (const [profile, values] of Object.entries(samples)) {
      console.log(
        `${variant.padEnd(8)} --profile ${profile.padEnd(6)} start → registered median ${round(median(values), 1)} ms  [${values.map((v) => round(v, 1)).join(", ")}]`,
      );
    }
  }
} finally {
  await coordinator.stop();
  rmSync(tmp, { recursive: true, force: true });
}
