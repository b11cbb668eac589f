/** What each executor declares it needs in a sandbox, and how a profile's sandbox options take it. */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sandboxOptions } from "../../src/config/profiles.ts";
import { claudeCodeSandboxNeeds, sandboxNeedsOf } from "../../src/executors/sandbox-needs.ts";
import { tempDir } from "../support/processes.ts";

test("the Claude Code executor declares ~/.claude, ~/.claude.json (created) and its binary", () => {
  const binary = join(tempDir("ar-needs-"), "claude");
  writeFileSync(binary, "", { mode: 0o755 });
  expect(claudeCodeSandboxNeeds({ CLAUDE_CODE_EXECUTABLE: binary })).toEqual({
    writableDirs: ["~/.claude"],
    writableFiles: [{ path: "~/.claude.json", initial: "{}\n" }],
    readonly: [binary],
  });
  // With CLAUDE_CONFIG_DIR the config lives there: ~/.claude.json is bound only if it exists.
  expect(claudeCodeSandboxNeeds({ CLAUDE_CONFIG_DIR: "/srv/claude", CLAUDE_CODE_EXECUTABLE: binary })).toEqual({
    writableDirs: ["~/.claude", "/srv/claude"],
    writableFiles: [{ path: "~/.claude.json", initial: undefined }],
    readonly: [binary],
  });
});

test("each built-in executor's own needs: the test executor needs nothing of Claude Code", () => {
  const env = { CLAUDE_CODE_EXECUTABLE: "/nonexistent/claude" };
  expect(sandboxNeedsOf("executors/test-executor/ao-test-exec", env)).toEqual({
    writableDirs: [],
    writableFiles: [],
    readonly: [],
  });
  expect(sandboxNeedsOf("executors/claude-code/ao-claude-code-exec", env).writableDirs).toEqual(["~/.claude"]);
  // Another program is most likely an agent that runs Claude Code.
  expect(sandboxNeedsOf("/opt/agents/my-exec", env).writableDirs).toEqual(["~/.claude"]);
});

test("a profile's sandbox options: none without a sandbox; its settings and its executor's needs with one", () => {
  const command = "executors/test-executor/ao-test-exec";
  expect(sandboxOptions({ command }, ["/state"], {})).toBeUndefined();
  const options = sandboxOptions({ command, sandbox: { extra_hidden: ["~/x"] } }, ["/state"], {});
  expect(options).toMatchObject({
    settings: { extraWritable: [], extraHidden: ["~/x"] },
    stateDirs: ["/state"],
    needs: { writableDirs: [] },
  });
  expect(options?.runnerDir).toBeString();
});
