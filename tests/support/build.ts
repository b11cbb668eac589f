/** The single executable for tests: built exactly as `bun run build` builds it, into a directory of the test's. */
import pkg from "../../package.json" with { type: "json" };
import { REPO_ROOT, runProcess } from "./processes.ts";

/** Where `bun run build` writes the executable. */
export const SCRIPT_OUTFILE = "dist/agent-runner";

/** The package's build script, with its output redirected: a dist/ someone may be using stays as it is. */
export function buildCommand(outfile: string): string[] {
  const words = pkg.scripts.build.split(/\s+/);
  const at = words.indexOf("--outfile");
  if (words[0] !== "bun" || words[1] !== "build" || !words.includes("--compile") || words[at + 1] !== SCRIPT_OUTFILE) {
    throw new Error(`unexpected build script: ${pkg.scripts.build}`);
  }
  words[at + 1] = outfile;
  return [process.execPath, ...words.slice(1)];
}

/** Builds the single executable to `outfile`; throws with the build's output if it fails. */
export async function buildExecutable(outfile: string): Promise<void> {
  const result = await runProcess(buildCommand(outfile), { cwd: REPO_ROOT, timeoutMs: 120_000 });
  if (result.exitCode !== 0) throw new Error(`build failed (${result.exitCode}):\n${result.stdout}\n${result.stderr}`);
}
