import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What the Agent SDK really hands the Claude Code binary (argv, environment, stdin lines), found
 * by pointing CLAUDE_CODE_EXECUTABLE at a recording wrapper for one executor run. The direct runs
 * replay exactly that, so "direct" differs from "through the executor" only by the executor.
 */
export interface ClaudeSpawn {
  args: string[];
  env: Record<string, string>;
  /** What the SDK wrote to Claude Code's stdin (stream-json: the initialize request, the user turn). */
  stdin: string;
}

/** Variables sh adds on its own: not part of what the SDK passed. */
const SHELL_VARS = new Set(["PWD", "OLDPWD", "SHLVL", "_"]);

export class SdkSpawnRecorder {
  readonly wrapper: string;
  private readonly argsFile: string;
  private readonly envFile: string;
  private readonly stdinFile: string;

  constructor(dir: string, claudeBinary: string) {
    this.wrapper = join(dir, "record-claude");
    this.argsFile = join(dir, "claude.args");
    this.envFile = join(dir, "claude.env");
    this.stdinFile = join(dir, "claude.stdin");
    const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
    writeFileSync(
      this.wrapper,
      `#!/bin/sh
printf '%s\\0' "$@" > ${q(this.argsFile)}
env -0 > ${q(this.envFile)}
tee ${q(this.stdinFile)} | ${q(claudeBinary)} "$@"
`,
    );
    chmodSync(this.wrapper, 0o755);
  }

  /** Reads what the last run through the wrapper recorded. */
  recorded(): ClaudeSpawn {
    const nulSplit = (file: string) => readFileSync(file, "utf8").split("\0").slice(0, -1);
    const env: Record<string, string> = {};
    for (const entry of nulSplit(this.envFile)) {
      const at = entry.indexOf("=");
      const name = entry.slice(0, at);
      if (!SHELL_VARS.has(name)) env[name] = entry.slice(at + 1);
    }
    return { args: nulSplit(this.argsFile), env, stdin: readFileSync(this.stdinFile, "utf8") };
  }
}
