/** How executors talk on stderr: lines prefixed with their name, debug lines on request, secrets hidden. */

import type { Env } from "../../shared/env.ts";

/** `AGENT_RUNNER_DEBUG=1` (or true/yes) turns on an executor's debug lines on stderr. */
export function isDebugEnabled(env: Env = process.env): boolean {
  return /^(1|true|yes|on)$/i.test(env.AGENT_RUNNER_DEBUG ?? "");
}

/** Lines on stderr, prefixed with the executor's name; stdout is only for the result. */
export class ExecutorLog {
  constructor(
    readonly name: string,
    readonly debugEnabled: boolean,
    private readonly write: (line: string) => void = (line) => process.stderr.write(line),
  ) {}

  error(message: string): void {
    this.write(`${this.name}: ${message}\n`);
  }

  warn(message: string): void {
    this.write(`${this.name}: warning: ${message}\n`);
  }

  debug(message: string | (() => string)): void {
    if (this.debugEnabled) this.write(`${this.name}: debug: ${typeof message === "function" ? message() : message}\n`);
  }
}

const SECRET_KEY = /key|token|secret|password|passwd|auth|credential/i;

/** A copy of a config object fit for a log line: values under secret-looking keys are hidden. */
export function redactForLog(value: unknown, key = ""): unknown {
  if (key && SECRET_KEY.test(key) && value !== null && typeof value !== "object") return "[redacted]";
  if (Array.isArray(value)) return value.map((item) => redactForLog(item));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactForLog(v, k)]));
  }
  return value;
}
