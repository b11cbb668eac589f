/**
 * Can this host run the bubblewrap sandbox? Runs a tiny sandbox the way executors are run and, if
 * it fails, says why in words: bubblewrap missing, or user namespaces disabled.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Env } from "../shared/env.ts";
import { ConfigError } from "../shared/errors.ts";
import { findProgram, sandboxBase } from "./sandbox.ts";

const PACKAGE_HINT = "Install the Debian/Ubuntu package `bubblewrap` (apt-get install bubblewrap).";
const USERNS_SYSCTLS = [
  "kernel.unprivileged_userns_clone",
  "user.max_user_namespaces",
  "kernel.apparmor_restrict_unprivileged_userns",
];
const CHECK_TIMEOUT_MS = 10_000;

export type SandboxCheck = { ok: true; bwrap: string } | { ok: false; reason: string };

function sysctlValues(): string {
  return USERNS_SYSCTLS.map((name) => {
    try {
      return `${name} = ${readFileSync(`/proc/sys/${name.replaceAll(".", "/")}`, "utf8").trim()}`;
    } catch {
      return `${name} (not on this kernel)`;
    }
  }).join(", ");
}

/** Synchronous and quick (a few ms): meant for start-up. */
export function checkBubblewrap(options: { env?: Env; uid?: number } = {}): SandboxCheck {
  const env = options.env ?? process.env;
  const bwrap = findProgram("bwrap", env.PATH);
  if (!bwrap)
    return { ok: false, reason: `The sandbox needs bubblewrap, but \`bwrap\` is not on PATH. ${PACKAGE_HINT}` };
  const envProgram = findProgram("env", env.PATH) ?? "env";
  const uid = options.uid ?? process.getuid?.() ?? -1;
  const argv = [
    ...sandboxBase({ bwrap, env: envProgram }, uid),
    "--tmpfs",
    "/tmp",
    "--",
    envProgram,
    "--default-signal=TERM",
    "true",
  ];
  const result = spawnSync(argv[0]!, argv.slice(1), {
    env: env as NodeJS.ProcessEnv,
    encoding: "utf8",
    timeout: CHECK_TIMEOUT_MS,
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (result.error)
    return { ok: false, reason: `The sandbox check could not run \`${argv.join(" ")}\`: ${result.error.message}` };
  if (result.status === 0) return { ok: true, bwrap };
  const stderr = (result.stderr ?? "").trim().replace(/\.$/, "") || `exit status ${result.status ?? result.signal}`;
  if (/^env: (unrecognized|invalid) option/m.test(stderr)) {
    return { ok: false, reason: `The sandbox needs GNU coreutils env 8.31 or later (for --ignore-signal): ${stderr}` };
  }
  return {
    ok: false,
    reason:
      `bubblewrap (${bwrap}, Debian package \`bubblewrap\`) cannot create a sandbox: ${stderr}. ` +
      "This usually means unprivileged user namespaces are disabled, or /proc cannot be mounted (inside a container). " +
      `Check the sysctls: ${sysctlValues()}; kernel.unprivileged_userns_clone must be 1 where it exists, ` +
      "user.max_user_namespaces above 0, kernel.apparmor_restrict_unprivileged_userns 0 (or an AppArmor profile allowing bwrap).",
  };
}

/** A sandboxed profile refuses to start on a host that cannot sandbox: a ConfigError with the cause. */
export function requireSandbox(profileName: string, env: Env = process.env): void {
  const check = checkBubblewrap({ env });
  if (!check.ok) {
    throw new ConfigError(
      `Profile '${profileName}' runs its executors in a sandbox, which this host cannot: ${check.reason}`,
    );
  }
}
