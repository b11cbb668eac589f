import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  claudeCodeNotFound,
  findClaudeCode,
  type LookupOptions,
  platformPackages,
} from "../../src/executors/claude-code-binary.ts";
import { REPO_ROOT, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterEach(() => temp.cleanup());

const LINUX: LookupOptions = { platform: "linux", arch: "x64", musl: false };
const GLIBC_PACKAGE = "@anthropic-ai/claude-agent-sdk-linux-x64";
const MUSL_PACKAGE = "@anthropic-ai/claude-agent-sdk-linux-x64-musl";

/** Writes an executable file (and its directories). */
function executable(path: string, mode = 0o755): string {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "#!/bin/sh\necho 2.1.0\n");
  chmodSync(path, mode);
  return path;
}

describe("findClaudeCode", () => {
  test("CLAUDE_CODE_EXECUTABLE comes first, even when the package and PATH have one", () => {
    const dir = temp.make();
    const mine = executable(join(dir, "my-claude"));
    executable(join(dir, "node_modules", GLIBC_PACKAGE, "claude"));
    executable(join(dir, "bin", "claude"));
    expect(
      findClaudeCode({ CLAUDE_CODE_EXECUTABLE: mine, PATH: join(dir, "bin") }, { ...LINUX, installDir: dir }),
    ).toEqual({ found: { path: mine, source: "CLAUDE_CODE_EXECUTABLE", from: "CLAUDE_CODE_EXECUTABLE" } });
  });

  test.each([
    ["missing", (dir: string) => join(dir, "nope"), "does not exist"],
    ["not executable", (dir: string) => executable(join(dir, "claude"), 0o644), "is not executable"],
    ["a directory", (dir: string) => dir, "is not a file"],
  ])("a CLAUDE_CODE_EXECUTABLE that is %s is an error, not a reason to use another binary", (_, make, problem) => {
    const dir = temp.make();
    const value = make(dir);
    executable(join(dir, "bin", "claude"));
    const lookup = findClaudeCode({ CLAUDE_CODE_EXECUTABLE: value, PATH: join(dir, "bin") }, LINUX);
    expect(lookup).toEqual({ tried: [`CLAUDE_CODE_EXECUTABLE=${value}: ${value} ${problem}`] });
  });

  test("then the SDK's platform package, in node_modules of the install directory or above", () => {
    const root = temp.make();
    const installDir = join(root, "opt", "agent-runner");
    mkdirSync(installDir, { recursive: true });
    const binary = executable(join(root, "node_modules", GLIBC_PACKAGE, "claude"));
    executable(join(root, "bin", "claude"));
    expect(findClaudeCode({ PATH: join(root, "bin") }, { ...LINUX, installDir })).toEqual({
      found: { path: binary, source: "platform package", from: GLIBC_PACKAGE },
    });
  });

  test("the package nested inside the SDK's own node_modules is found too", () => {
    const dir = temp.make();
    const binary = executable(
      join(dir, "node_modules", "@anthropic-ai/claude-agent-sdk", "node_modules", GLIBC_PACKAGE, "claude"),
    );
    expect(findClaudeCode({}, { ...LINUX, installDir: dir })).toMatchObject({ found: { path: binary } });
  });

  test("glibc or musl build first, as the SDK does", () => {
    const dir = temp.make();
    const glibc = executable(join(dir, "node_modules", GLIBC_PACKAGE, "claude"));
    const musl = executable(join(dir, "node_modules", MUSL_PACKAGE, "claude"));
    expect(findClaudeCode({}, { ...LINUX, installDir: dir })).toMatchObject({ found: { path: glibc } });
    expect(findClaudeCode({}, { ...LINUX, musl: true, installDir: dir })).toMatchObject({ found: { path: musl } });
  });

  test("then claude on PATH", () => {
    const dir = temp.make();
    const binary = executable(join(dir, "bin", "claude"));
    expect(findClaudeCode({ PATH: `/nonexistent:${join(dir, "bin")}` }, { ...LINUX, installDir: dir })).toEqual({
      found: { path: binary, source: "PATH", from: "PATH" },
    });
  });

  test("nowhere: what was tried, in order, and what to do", () => {
    const dir = temp.make();
    const lookup = findClaudeCode({ PATH: join(dir, "bin") }, { ...LINUX, installDir: dir });
    expect(lookup).toEqual({
      tried: [
        "CLAUDE_CODE_EXECUTABLE (not set)",
        `the Agent SDK's platform package (${GLIBC_PACKAGE} or ${MUSL_PACKAGE}) in node_modules of ${dir} and above`,
        `claude on PATH (${join(dir, "bin")})`,
      ],
    });
    const message = claudeCodeNotFound("tried" in lookup ? lookup.tried : []);
    expect(message).toStartWith(
      "No Claude Code binary found. Tried: CLAUDE_CODE_EXECUTABLE (not set); the Agent SDK's",
    );
    expect(message).toContain("Set CLAUDE_CODE_EXECUTABLE to the path of a Claude Code executable");
  });

  test("platform packages per platform", () => {
    expect(platformPackages("darwin", "arm64", false)).toEqual(["@anthropic-ai/claude-agent-sdk-darwin-arm64"]);
    expect(platformPackages("win32", "x64", false)).toEqual(["@anthropic-ai/claude-agent-sdk-win32-x64"]);
    expect(platformPackages("linux", "arm64", true)).toEqual([
      "@anthropic-ai/claude-agent-sdk-linux-arm64-musl",
      "@anthropic-ai/claude-agent-sdk-linux-arm64",
    ]);
  });

  const installed = join(
    REPO_ROOT,
    "node_modules",
    `@anthropic-ai/claude-agent-sdk-${process.platform}-${process.arch}`,
    "claude",
  );
  test.skipIf(!existsSync(installed))("from source, the package this checkout installed", () => {
    expect(findClaudeCode({ PATH: "" })).toEqual({
      found: {
        path: installed,
        source: "platform package",
        from: `@anthropic-ai/claude-agent-sdk-${process.platform}-${process.arch}`,
      },
    });
  });
});
