/**
 * The install steps printed in deploy/systemd/agent-runner.service work as printed: each indented
 * command line of its comment is run, as root, with its absolute paths moved into a temporary
 * root (/opt, /etc and /var/lib under it) and the service's user given a name of this test's,
 * from a checkout holding the built executable and a stand-in for the Claude Code package. The
 * doctor command at the end must pass every check. Only `systemctl` is not run (no systemd here).
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, cpSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Server } from "bun";
import { buildExecutable } from "../support/build.ts";
import { startFakeCoordinator } from "../support/fake-coordinator.ts";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const UNIT = join(REPO_ROOT, "deploy", "systemd", "agent-runner.service");
/** Absolute paths the steps write to; everything else (/usr/sbin/nologin) stays as it is. */
const TARGET_PATH = /(?<=^|[\s'"=])\/(opt|etc|var\/lib)\//g;
/** The service's user and group: the word `agent-runner` on its own, not in a path or file name. */
const SERVICE_USER = /(?<![\w/.-])agent-runner(?![\w/.-])/g;

const temp = new TempDirs();
const tools = ["useradd", "userdel", "runuser", "install"].filter((tool) => !Bun.which(tool));
const canRun = process.getuid?.() === 0 && tools.length === 0;
let checkout: string;
let tokenEndpoint: Server<undefined> | undefined;
let user: string | undefined;

/** The printed commands: the comment's lines indented by four spaces past the `#`. */
function printedCommands(): string[] {
  return readFileSync(UNIT, "utf8")
    .split("\n")
    .map((line) => /^# {5}(\S.*)$/.exec(line)?.[1])
    .filter((command): command is string => command !== undefined);
}

beforeAll(async () => {
  if (!canRun) return;
  // A checkout after `bun run build` and `bun install`: the executable, the deploy files, and the
  // Agent SDK's platform package for this machine, with a Claude Code that answers --version.
  checkout = temp.make("ar-install-checkout-");
  await buildExecutable(join(checkout, "dist", "agent-runner"));
  cpSync(join(REPO_ROOT, "deploy"), join(checkout, "deploy"), { recursive: true });
  const platform = join(checkout, "node_modules", "@anthropic-ai", `claude-agent-sdk-linux-${process.arch}`);
  mkdirSync(platform, { recursive: true });
  writeFileSync(join(platform, "claude"), '#!/bin/sh\necho "9.9.9 (Claude Code)"\n');
  chmodSync(join(platform, "claude"), 0o755);
}, 180_000);

afterAll(async () => {
  if (user) await runProcess(["userdel", user]);
  await tokenEndpoint?.stop(true);
  temp.cleanup();
});

const name = canRun
  ? "the printed install steps install the runner, its user, directories, environment file and unit, and doctor passes"
  : `the printed install steps: SKIPPED, needs root and ${tools.join(", ") || "root"}`;

test.skipIf(!canRun)(
  name,
  async () => {
    const root = temp.make("ar-install-root-");
    // The service's user must reach the executable and its directories inside the root.
    chmodSync(root, 0o755);
    user = `arinst${process.pid}`;
    const inRoot = (command: string) => command.replace(TARGET_PATH, `${root}/$1/`).replace(SERVICE_USER, user!);

    const fake = startFakeCoordinator();
    fake.on("GET", /^\/agents$/, () => Response.json([]));
    tokenEndpoint = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => Response.json({ access_token: "install-test-token", expires_in: 3600 }),
    });
    /** What an operator does between the steps: fills in the environment file. */
    const fillIn = () => {
      const file = join(root, "etc", "agent-runner", "agent-runner.env");
      const filled = inRoot(readFileSync(file, "utf8"))
        .replace(/^AGENT_ORCHESTRATOR_API_URL=.*$/m, `AGENT_ORCHESTRATOR_API_URL=${fake.url}`)
        .replace(/^AUTH0_DOMAIN=.*$/m, `AUTH0_DOMAIN=http://127.0.0.1:${tokenEndpoint!.port}`)
        // Any free port: 9464 may be taken on a machine running tests.
        .replace(/^HEALTH_ADDR=.*$/m, "HEALTH_ADDR=127.0.0.1:0");
      writeFileSync(file, filled);
    };

    const commands = printedCommands();
    const skipped: string[] = [];
    let doctor: { exitCode: number; stdout: string; stderr: string } | undefined;
    for (const printed of commands) {
      if (printed.startsWith("systemctl ")) {
        skipped.push(printed);
        continue;
      }
      const isDoctor = / doctor /.test(printed);
      if (isDoctor) fillIn();
      const outcome = await runProcess(["sh", "-c", inRoot(printed)], {
        cwd: checkout,
        env: cleanEnv(),
        timeoutMs: 60_000,
      });
      if (isDoctor) doctor = outcome;
      else expect({ command: printed, ...outcome }).toEqual({ command: printed, exitCode: 0, stdout: "", stderr: "" });
    }

    expect(skipped).toEqual(["systemctl daemon-reload && systemctl enable --now agent-runner"]);
    // doctor checks what the service runs: its executable and flags.
    const execStart = /^ExecStart=(\S+) (.*)$/m.exec(readFileSync(UNIT, "utf8"))!;
    expect(commands.find((command) => / doctor /.test(command))).toContain(` ${execStart[1]} doctor ${execStart[2]}'`);
    const env = statSync(join(root, "etc", "agent-runner", "agent-runner.env"));
    expect({ mode: env.mode & 0o777, uid: env.uid }).toEqual({ mode: 0o600, uid: 0 });
    const workspace = statSync(join(root, "var", "lib", "agent-runner", "workspace"));
    expect(workspace.uid).not.toBe(0);

    expect(doctor, "no doctor command among the printed steps").toBeDefined();
    expect({ exitCode: doctor!.exitCode, output: doctor!.stdout + doctor!.stderr }).toMatchObject({ exitCode: 0 });
    expect(doctor!.stdout).toContain(`✓ claude code: ${root}/opt/agent-runner/node_modules/@anthropic-ai/`);
    expect(doctor!.stdout).toContain(`✓ project dir: ${root}/var/lib/agent-runner/workspace is writable`);
    expect(doctor!.stdout).toContain(`✓ token: obtained from http://127.0.0.1:${tokenEndpoint.port}/oauth/token`);
    expect(doctor!.stdout).toMatch(/All \d+ checks passed\n$/);
  },
  240_000,
);
