import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dir, "../..");
export const TEST_EXECUTOR = join(REPO, "executors/test-executor/ao-test-exec");
export const CLAUDE_CODE_EXECUTOR = join(REPO, "executors/claude-code/ao-claude-code-exec");

export interface ProcessOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end with the given stdin; a hung one is killed after `timeoutMs`. */
export async function runProcess(
  argv: string[],
  options: { stdin?: string; env?: Record<string, string | undefined>; cwd?: string; timeoutMs?: number } = {},
): Promise<ProcessOutcome> {
  const proc = Bun.spawn(argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
    timeout: options.timeoutMs ?? 60_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  return { exitCode, stdout, stderr };
}

/** Temp directories removed by `cleanup()`. */
export class TempDirs {
  private dirs: string[] = [];

  make(prefix = "ar-exec-"): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** The environment without anything that would point an executor elsewhere or turn on debug. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env, NO_COLOR: "1" };
  for (const name of ["AGENT_ORCHESTRATOR_API_URL", "AGENT_SESSION_ID", "AGENT_RUNNER_DEBUG", "PROJECT_DIR", "AGENT_RUNNER_PROFILES_DIR", "AGENT_RUNNER_EXEC_STATE_DIR", "CLAUDE_CODE_EXECUTABLE"]) {
    delete env[name];
  }
  return { ...env, ...extra };
}
