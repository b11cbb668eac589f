/**
 * Which Claude Code binary the Claude Code executor runs. The compiled runner does not carry it,
 * so it is looked for in order: CLAUDE_CODE_EXECUTABLE, the Agent SDK's platform package in a
 * node_modules at or above the install directory (beside the executable when compiled), then
 * `claude` on PATH. Shared by the executor and `agent-runner doctor`; loads no SDK code.
 */
import { accessSync, constants, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { INSTALL_DIR } from "../config/install-dir.ts";
import type { Env } from "../shared/env.ts";
import { messageOf } from "../shared/errors.ts";

export interface ClaudeCodeBinary {
  path: string;
  source: "CLAUDE_CODE_EXECUTABLE" | "platform package" | "PATH";
  /** Where it was found, for the operator: the variable, the package's name, or PATH. */
  from: string;
}

/** The binary, or what was tried (in order) when there is none. */
export type ClaudeCodeLookup = { found: ClaudeCodeBinary } | { tried: string[] };

export interface LookupOptions {
  /** Where node_modules are looked for (default: the runner's install directory). */
  installDir?: string;
  platform?: NodeJS.Platform;
  arch?: string;
  /** Linux with musl libc (Alpine): the musl build first, as the SDK does. */
  musl?: boolean;
}

const SDK_PACKAGE = "@anthropic-ai/claude-agent-sdk";

let musl: boolean | undefined;

/** Whether this process runs on musl libc: asked of a diagnostic report (costly), once. */
function isMusl(): boolean {
  if (process.platform !== "linux") return false;
  if (musl === undefined) {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined;
    musl = report?.header?.glibcVersionRuntime === undefined;
  }
  return musl;
}

/** The SDK's platform packages for this machine, in the order the SDK itself tries them. */
export function platformPackages(platform: NodeJS.Platform, arch: string, musl: boolean): string[] {
  if (platform !== "linux") return [`${SDK_PACKAGE}-${platform}-${arch}`];
  const glibc = `${SDK_PACKAGE}-linux-${arch}`;
  return musl ? [`${glibc}-musl`, glibc] : [glibc, `${glibc}-musl`];
}

/** A regular file we may execute: the reason it is not one, or undefined. */
function unusable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return "is not a file";
    accessSync(path, constants.X_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not executable" : messageOf(error);
  }
}

/** `dir/node_modules`, then each parent's, as Node resolves packages. */
function nodeModulesDirs(dir: string): string[] {
  const dirs: string[] = [];
  for (let at = resolve(dir); ; at = dirname(at)) {
    dirs.push(join(at, "node_modules"));
    if (dirname(at) === at) return dirs;
  }
}

export function findClaudeCode(env: Env, options: LookupOptions = {}): ClaudeCodeLookup {
  const explicit = env.CLAUDE_CODE_EXECUTABLE;
  if (explicit) {
    const path = resolve(explicit);
    const problem = unusable(path);
    // Set on purpose: a wrong value is an error, not a reason to quietly run another binary.
    if (problem) return { tried: [`CLAUDE_CODE_EXECUTABLE=${explicit}: ${path} ${problem}`] };
    return { found: { path, source: "CLAUDE_CODE_EXECUTABLE", from: "CLAUDE_CODE_EXECUTABLE" } };
  }
  const tried = ["CLAUDE_CODE_EXECUTABLE (not set)"];

  const platform = options.platform ?? process.platform;
  const binary = platform === "win32" ? "claude.exe" : "claude";
  const packages = platformPackages(platform, options.arch ?? process.arch, options.musl ?? isMusl());
  const installDir = options.installDir ?? INSTALL_DIR;
  for (const nodeModules of nodeModulesDirs(installDir)) {
    for (const name of packages) {
      // Hoisted beside the SDK, or nested inside it.
      for (const dir of [join(nodeModules, name), join(nodeModules, SDK_PACKAGE, "node_modules", name)]) {
        const path = join(dir, binary);
        if (!unusable(path)) return { found: { path, source: "platform package", from: name } };
      }
    }
  }
  tried.push(`the Agent SDK's platform package (${packages.join(" or ")}) in node_modules of ${installDir} and above`);

  const onPath = Bun.which("claude", { PATH: env.PATH ?? "" });
  if (onPath) return { found: { path: onPath, source: "PATH", from: "PATH" } };
  tried.push(`claude on PATH (${env.PATH || "PATH not set"})`);
  return { tried };
}

/** Why no binary was found and what to do, listing what was tried. */
export function claudeCodeNotFound(tried: string[]): string {
  return (
    `No Claude Code binary found. Tried: ${tried.join("; ")}. ` +
    "Set CLAUDE_CODE_EXECUTABLE to the path of a Claude Code executable, install the Agent SDK's platform package " +
    "beside the runner, or put claude on PATH."
  );
}
