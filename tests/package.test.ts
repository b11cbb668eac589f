/**
 * The npm package works as packed: `npm pack`, the tarball installed into a fresh project and its
 * `agent-runner` bin run. Offline, as tests must be: in a network namespace with no network
 * (where the machine allows one), `bun install --offline` from bun's cache, with the dependency
 * versions the repository's bun.lock pins. (`bunx --package <tgz>` cannot be tested so: it asks
 * the registry for every dependency's manifest on its first run.)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json" with { type: "json" };
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "./support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

const unshare = Bun.which("unshare");
/** A network namespace of its own: only a loopback that is down, so nothing can reach the network. */
const isolated =
  unshare !== null && Bun.spawnSync([unshare, "--net", "true"], { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
const withoutNetwork = (argv: string[]) => (isolated ? [unshare!, "--net", ...argv] : argv);

let project: string;
let tarball: string;
let install: { exitCode: number; stdout: string; stderr: string };

/** A bun.lock for a project depending on the tarball alone: the repository's pinned packages, and the tarball's entry. */
function lockfileFor(tgz: string): string {
  const lock = Bun.JSONC.parse(readFileSync(join(REPO_ROOT, "bun.lock"), "utf8")) as {
    workspaces: Record<string, unknown>;
    packages: Record<string, unknown>;
  };
  const integrity = `sha512-${createHash("sha512").update(readFileSync(tgz)).digest("base64")}`;
  lock.workspaces = { "": { name: "packed-agent-runner", dependencies: { "agent-runner": tgz } } };
  lock.packages["agent-runner"] = [`agent-runner@${tgz}`, { dependencies: pkg.dependencies, bin: pkg.bin }, integrity];
  return JSON.stringify(lock, null, 2);
}

beforeAll(async () => {
  const packed = temp.make("ar-pack-");
  const pack = await runProcess(withoutNetwork(["npm", "pack", "--pack-destination", packed]), {
    cwd: REPO_ROOT,
    env: cleanEnv(),
  });
  if (pack.exitCode !== 0) throw new Error(`npm pack failed:\n${pack.stdout}${pack.stderr}`);
  tarball = join(packed, pack.stdout.trim().split("\n").at(-1)!);

  project = temp.make("ar-packed-project-");
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify({ name: "packed-agent-runner", private: true, dependencies: { "agent-runner": tarball } }),
  );
  writeFileSync(join(project, "bun.lock"), lockfileFor(tarball));
  install = await runProcess(withoutNetwork([process.execPath, "install", "--offline"]), {
    cwd: project,
    env: cleanEnv(),
    timeoutMs: 120_000,
  });
}, 180_000);

const where = isolated ? "in a network namespace without network" : "with --offline only (no network namespace here)";

test(`npm pack's tarball installs offline (${where})`, () => {
  expect(tarball).toEndWith(`agent-runner-${pkg.version}.tgz`);
  expect({ exitCode: install.exitCode, output: install.stdout + install.stderr }).toMatchObject({ exitCode: 0 });
});

test("its agent-runner bin answers --version", async () => {
  const bin = join(project, "node_modules", ".bin", "agent-runner");
  const version = await runProcess(withoutNetwork([bin, "--version"]), { cwd: project, env: cleanEnv() });
  expect({ exitCode: version.exitCode, stdout: version.stdout.trim() }).toEqual({ exitCode: 0, stdout: pkg.version });
});

test("its --profile-list shows the built-in profiles, each runnable from the installed package", async () => {
  const bin = join(project, "node_modules", ".bin", "agent-runner");
  const list = await runProcess(withoutNetwork([bin, "--profile-list"]), { cwd: project, env: cleanEnv() });
  expect({ exitCode: list.exitCode, stderr: list.stderr }).toEqual({ exitCode: 0, stderr: "" });
  const lines = list.stdout.trimEnd().split("\n");
  expect(lines.map((line) => line.split(/\s+/)[0])).toEqual([
    "coding",
    "coding-sandboxed",
    "research",
    "supervised",
    "test",
  ]);
  const installed = join(project, "node_modules", "agent-runner");
  for (const line of lines) {
    expect(line).toContain(`${installed}/executors/`);
    expect(line).not.toContain("unusable");
  }
});
