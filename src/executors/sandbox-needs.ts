/**
 * What each executor needs in a sandbox beyond its project, declared here by the executors
 * themselves so that the process module knows none of them.
 */
import { NO_SANDBOX_NEEDS, type SandboxNeeds } from "../process/sandbox.ts";
import type { Env } from "../shared/env.ts";
import { builtinExecutorName } from "./builtin.ts";
import { findClaudeCode } from "./claude-code-binary.ts";

/**
 * Claude Code keeps credentials, settings and sessions (needed for a resume) in ~/.claude, and its
 * global config in ~/.claude.json (in CLAUDE_CONFIG_DIR when that is set). Without a persistent
 * ~/.claude.json every run would write a fresh one into the emptied home, back it up into
 * ~/.claude/backups, and warn on the next run that the file is gone: it is created when missing.
 * The binary it runs stays visible wherever it is (a link in ~/.local/bin, say).
 */
export function claudeCodeSandboxNeeds(env: Env): SandboxNeeds {
  const claudeCode = findClaudeCode(env);
  return {
    writableDirs: ["~/.claude", ...(env.CLAUDE_CONFIG_DIR ? [env.CLAUDE_CONFIG_DIR] : [])],
    writableFiles: [{ path: "~/.claude.json", initial: env.CLAUDE_CONFIG_DIR ? undefined : "{}\n" }],
    readonly: "found" in claudeCode ? [claudeCode.found.path] : [],
  };
}

const NEEDS_OF_BUILTINS: Record<string, (env: Env) => SandboxNeeds> = {
  "claude-code": claudeCodeSandboxNeeds,
  test: () => NO_SANDBOX_NEEDS,
};

/**
 * The needs of the executor a profile's command names. An executor that is not built in gets what
 * Claude Code needs: executors of other kinds are mostly agents that run it.
 */
export function sandboxNeedsOf(command: string, env: Env): SandboxNeeds {
  const declared = NEEDS_OF_BUILTINS[builtinExecutorName(command) ?? ""] ?? claudeCodeSandboxNeeds;
  return declared(env);
}
