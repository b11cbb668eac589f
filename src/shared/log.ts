/**
 * The runner's logger (consola): secrets redacted; on a terminal consola's own lines, otherwise
 * timestamped text lines or, with `--log-format json`, one JSON object per line.
 */
import { formatWithOptions } from "node:util";
import { type ConsolaReporter, createConsola, type InputLogObject, LogLevels, type LogObject } from "consola/core";

export const LOG_FORMATS = ["auto", "text", "json"] as const;
/** `--log-level`, quietest first; each shows its own lines and those of the levels before it. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = "info";
/** `auto`: consola's interactive lines on a terminal, timestamped text lines otherwise. */
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * Structured fields of a log line: JSON keys with `--log-format json`; text lines show only the
 * message (which names what matters, e.g. the run id).
 */
export type LogFields = {
  run_id?: string;
  session_id?: string;
  profile?: string;
  runner_id?: string;
} & Record<string, string | number | boolean | undefined>;

const secrets = new Set<string>();
/** Secrets known by their shape (run tokens, a URL's password), with what replaces them. */
const patterns: Array<[RegExp, string]> = [[/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)[^\s/?#]*@/gi, "$1[redacted]@"]];
/** Fields every JSON line carries (profile, runner id), set once they are known. */
let context: LogFields = {};

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

/** Applies `edit` to the text of a log argument: strings, errors' message and stack, objects as inspected. */
function editArg(arg: unknown, edit: (text: string) => string): unknown {
  if (typeof arg === "string") return edit(arg);
  if (arg instanceof Error) {
    const copy = new Error(edit(arg.message));
    copy.name = arg.name;
    copy.stack = arg.stack && edit(arg.stack);
    return copy;
  }
  if (arg !== null && typeof arg === "object") return edit(formatWithOptions({ colors: false }, arg));
  return arg;
}

function redactFields(fields: unknown): unknown {
  if (fields === null || typeof fields !== "object") return fields;
  return Object.fromEntries(
    Object.entries(fields).map(([key, value]) => [key, typeof value === "string" ? redact(value) : value]),
  );
}

/** Every line passes through here, so a secret that slips into a message or a field is still cut out. */
function redacting(reporter: ConsolaReporter): ConsolaReporter {
  return {
    log(logObj: LogObject, ctx) {
      reporter.log(
        {
          ...logObj,
          args: logObj.args.map((arg) => editArg(arg, redact)),
          message: logObj.message && redact(logObj.message),
          title: typeof logObj.title === "string" ? redact(logObj.title) : logObj.title,
          fields: redactFields(logObj.fields),
        },
        ctx,
      );
    },
  };
}

/** C0 and C1 controls (but newline and tab) and the Unicode line separators. */
const CONTROL = /(?![\n\t])[\p{Cc}\u2028\u2029]/gu;

/**
 * Control characters from outside text (an executor's stderr, a coordinator's message) are shown
 * escaped: an ANSI sequence could rewrite the terminal, a carriage return hide what came before.
 */
function escapeControls(text: string): string {
  return text.replace(/\r\n/g, "\n").replace(CONTROL, (char) => {
    if (char === "\r") return "\\r";
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

const CONTINUATION_INDENT = "    ";

/** Continuation lines are indented, so no line of a message can pass for a log line of its own. */
function indentContinuations(text: string): string {
  return text.replace(/\n+$/, "").replaceAll("\n", `\n${CONTINUATION_INDENT}`);
}

function messageText(logObj: LogObject): string {
  const text = formatWithOptions({ colors: false }, ...logObj.args);
  return logObj.type === "box" && logObj.title ? `${logObj.title}: ${text}` : text;
}

/**
 * Off a terminal (a service's journal, a log file) every line starts with an ISO timestamp and
 * its level, so logs can be read and grepped at 3 a.m.
 */
const timestampedLines: ConsolaReporter = {
  log(logObj) {
    // Boxes are kept for what stops the runner; off a terminal they are plain error lines.
    const type = logObj.type === "box" ? "error" : logObj.type === "log" ? "info" : logObj.type;
    const text = indentContinuations(escapeControls(messageText(logObj)));
    process.stderr.write(`${logObj.date.toISOString()} ${type.toUpperCase().padEnd(5)} ${text}\n`);
  },
};

function jsonLevel(logObj: LogObject): string {
  if (logObj.type === "fatal") return "fatal";
  // As in text lines: boxes are kept for what stops the runner.
  if (logObj.type === "box") return "error";
  if (logObj.level <= LogLevels.error) return "error";
  if (logObj.level <= LogLevels.warn) return "warn";
  if (logObj.level <= LogLevels.info) return "info";
  return logObj.level <= LogLevels.debug ? "debug" : "trace";
}

/** One JSON object per line: `time`, `level`, `msg`, then the context and the entry's fields. */
const jsonLines: ConsolaReporter = {
  log(logObj) {
    const line = {
      time: logObj.date.toISOString(),
      level: jsonLevel(logObj),
      msg: messageText(logObj),
      ...(logObj.tag ? { tag: logObj.tag } : {}),
      ...context,
      ...(logObj.fields as LogFields | undefined),
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  },
};

/** On a terminal consola draws the lines; outside text in them is still escaped. */
function escaping(reporter: ConsolaReporter): ConsolaReporter {
  return {
    log: (logObj, ctx) =>
      reporter.log({ ...logObj, args: logObj.args.map((arg) => editArg(arg, escapeControls)) }, ctx),
  };
}

/**
 * consola's own reporters, for a terminal only: the full consola (its fancy reporter and what it
 * brings, ~3 MB) is not loaded by a runner whose stderr is a file, a pipe or a journal.
 */
const interactive: ConsolaReporter[] = process.stderr.isTTY
  ? (await import("consola")).createConsola({ formatOptions: { date: true } }).options.reporters
  : [];

function reporters(format: LogFormat): ConsolaReporter[] {
  if (format === "json") return [jsonLines].map(redacting);
  if (format === "auto" && process.stderr.isTTY) return interactive.map(escaping).map(redacting);
  return [timestampedLines].map(redacting);
}

/** The runner's logger. Everything goes to stderr: stdout is for what a command prints as its answer. */
export const log = createConsola({
  level: LogLevels.info,
  stdout: process.stderr,
  stderr: process.stderr,
  formatOptions: { date: true, colors: process.stderr.isTTY ?? false },
  reporters: reporters("auto"),
});

/** Chooses how lines are written; called once at start, before anything else is logged. */
export function setLogFormat(format: LogFormat): void {
  log.setReporters(reporters(format));
}

/** Fields for every JSON line from now on (e.g. `runner_id` once registered); undefined removes one. */
export function setLogContext(fields: LogFields): void {
  context = { ...context, ...fields };
}

/**
 * A message with structured fields, for any log method:
 * `log.info(logEntry("Run r1 started", { run_id: "r1", session_id: "s1" }))`. Extra arguments are
 * formatted after the message as in `log.info(message, ...args)`.
 */
export function logEntry(message: string, fields: LogFields, ...args: unknown[]): InputLogObject {
  return { message, args, fields } as InputLogObject;
}

export function setLogLevel(level: LogLevel): void {
  log.level = LogLevels[level];
}

export function setVerbose(verbose: boolean): void {
  setLogLevel(verbose ? "debug" : DEFAULT_LOG_LEVEL);
}

export function isDebug(): boolean {
  return log.level >= LogLevels.debug;
}
