/** Claude Code for tests: the binary the SDK package installs, run offline against a fake Messages API. */
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, tempDir } from "./processes.ts";

export const CLAUDE_CODE_BINARY = join(REPO_ROOT, "node_modules/@anthropic-ai/claude-agent-sdk-linux-x64/claude");

/**
 * The environment for Claude Code (or an executor that runs it) offline, with nothing of this
 * machine's settings or credentials: `home` as its home, `apiUrl` as its Messages API.
 * `configDir` sets CLAUDE_CONFIG_DIR; without it Claude Code keeps its config in the home
 * (~/.claude, ~/.claude.json), as it does where that is not set.
 */
export function offlineClaudeEnv(home: string, apiUrl: string, configDir?: string): Record<string, string> {
  return {
    HOME: home,
    ...(configDir ? { CLAUDE_CONFIG_DIR: configDir } : {}),
    ANTHROPIC_BASE_URL: apiUrl,
    ANTHROPIC_API_KEY: "sk-ant-test-dummy-key",
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
    // Claude Code refuses bypassPermissions as root otherwise; these runs are throwaway.
    ...(process.getuid?.() === 0 ? { IS_SANDBOX: "1" } : {}),
  };
}

/** Claude Code as its native installer lays it out: ~/.local/bin/claude, a relative link into ~/.local/share. */
export function installClaudeCodeLink(home: string): string {
  mkdirSync(join(home, ".local/bin"), { recursive: true });
  const link = join(home, ".local/bin/claude");
  symlinkSync(CLAUDE_CODE_BINARY, link);
  return link;
}

/**
 * A Claude Code that notes the pid of every start in `starts` (one line each), runs `before`
 * (shell), then becomes the real binary (exec: same pid). For CLAUDE_CODE_EXECUTABLE.
 */
export function recordingClaude(before = ""): { path: string; starts: () => number[] } {
  const dir = tempDir("ar-claude-starts-");
  const path = join(dir, "claude");
  const log = join(dir, "starts");
  writeFileSync(path, `#!/bin/sh\necho $$ >> '${log}'\n${before}\nexec '${CLAUDE_CODE_BINARY}' "$@"\n`);
  chmodSync(path, 0o755);
  const starts = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).map(Number) : []);
  return { path, starts };
}
