/** The runner's logger (consola): secrets redacted, timestamped lines off a terminal. */
import { formatWithOptions } from "node:util";
import { type ConsolaReporter, createConsola, LogLevels, type LogObject } from "consola";

const secrets = new Set<string>();
/** Secrets known by their shape (run tokens, a URL's password), with what replaces them. */
const patterns: Array<[RegExp, string]> = [[/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)[^\s/?#]*@/gi, "$1[redacted]@"]];

/** Registers a value (client secret, token) that must never appear in a log line. */
export function addSecret(value: string | undefined): void {
  if (value && value.length >= 4) secrets.add(value);
}

/** Registers a shape (a global RegExp) of values that must never appear in a log line. */
export function addSecretPattern(pattern: RegExp): void {
  patterns.push([pattern, "[redacted]"]);
}

export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) out = out.replaceAll(secret, "[redacted]");
  for (const [pattern, replacement] of patterns) out = out.replace(pattern, replacement);
  return out;
}

function redactArg(arg: unknown): unknown {
  if (typeof arg === "string") return redact(arg);
  if (arg instanceof Error) {
    const copy = new Error(redact(arg.message));
    copy.name = arg.name;
    copy.stack = arg.stack && redact(arg.stack);
    return copy;
  }
  if (arg !== null && typeof arg === "object") return redact(Bun.inspect(arg));
  return arg;
}

/** Every line passes through here, so a secret that slips into a message is still cut out. */
function redacting(reporter: ConsolaReporter): ConsolaReporter {
  return {
    log(logObj: LogObject, ctx) {
      reporter.log(
        {
          ...logObj,
          args: logObj.args.map(redactArg),
          message: logObj.message && redact(logObj.message),
          title: typeof logObj.title === "string" ? redact(logObj.title) : logObj.title,
        },
        ctx,
      );
    },
  };
}

/**
 * Off a terminal (a service's journal, a log file) every line starts with an ISO timestamp and
 * its level, so logs can be read and grepped at 3 a.m.
 */
const timestampedLines: ConsolaReporter = {
  log(logObj) {
    // Boxes are kept for what stops the runner; off a terminal they are plain error lines.
    const type = logObj.type === "box" ? "error" : logObj.type === "log" ? "info" : logObj.type;
    const text = formatWithOptions({ colors: false }, ...logObj.args);
    const title = logObj.type === "box" && logObj.title ? `${logObj.title}: ` : "";
    process.stderr.write(`${logObj.date.toISOString()} ${type.toUpperCase().padEnd(5)} ${title}${text}\n`);
  },
};

const interactive = createConsola({ formatOptions: { date: true } });

/** The runner's logger. Everything goes to stderr: stdout is for what a command prints as its answer. */
export const log = createConsola({
  level: LogLevels.info,
  stdout: process.stderr,
  stderr: process.stderr,
  formatOptions: { date: true, colors: process.stderr.isTTY ?? false },
  reporters: (process.stderr.isTTY ? interactive.options.reporters : [timestampedLines]).map(redacting),
});

export function setVerbose(verbose: boolean): void {
  log.level = verbose ? LogLevels.debug : LogLevels.info;
}

export function isDebug(): boolean {
  return log.level >= LogLevels.debug;
}
