/**
 * A persistent executor's lines (lifecycle `persistent`, lifecycle.ts): the runner writes the
 * invocation as one line and keeps stdin open, then one `turn` line per later turn, `interrupt` to
 * end the running turn early and `shutdown` to end the session; the executor prints a
 * `turn_complete` line on stdout after each turn. One JSON object per line; the schemas are data
 * (validation.ts), for both sides.
 */
import type { RootSchema } from "@ark/schema";
import { JSON_OBJECT_SCHEMA, type JsonObject, parseJson, schemaValidator, validate } from "../shared/validation.ts";

export class SessionLineError extends Error {
  override name = "SessionLineError";
}

/** Runner → executor: run a turn with these parameters (`{"prompt": "…"}` for most agents). */
export interface TurnCommand {
  type: "turn";
  parameters: JsonObject;
}
/** Runner → executor: end the session after the turns before this line, and exit 0. */
export interface ShutdownCommand {
  type: "shutdown";
}
/** Runner → executor: end the running turn early (its turn_complete says `interrupted`), keep the session. */
export interface InterruptCommand {
  type: "interrupt";
}
export type SessionCommand = TurnCommand | ShutdownCommand | InterruptCommand;

/** Executor → runner: a turn ended; `result` is its answer (`""` when it has none). */
export interface ExecutorLine {
  type: "turn_complete";
  /** Always written by our executors; a line without a string one still ends the turn. */
  result?: string;
  /** True when an `interrupt` cut the turn short. */
  interrupted?: boolean;
}

const COMMAND_TYPES = ["turn", "shutdown", "interrupt"] as const;

/** Each command's schema; keys it does not name are allowed (and ignored). */
const SESSION_COMMAND_SCHEMAS = {
  turn: {
    domain: "object",
    required: [
      { key: "type", value: { unit: "turn" } },
      { key: "parameters", value: JSON_OBJECT_SCHEMA },
    ],
  },
  shutdown: { domain: "object", required: [{ key: "type", value: { unit: "shutdown" } }] },
  interrupt: { domain: "object", required: [{ key: "type", value: { unit: "interrupt" } }] },
} satisfies Record<SessionCommand["type"], RootSchema>;

/** Only the type: checked first, so that the errors then come from that command's schema. */
const CommandType = schemaValidator<{ type: SessionCommand["type"] }>({
  domain: "object",
  required: [{ key: "type", value: COMMAND_TYPES.map((unit) => ({ unit })) }],
});
const COMMAND_VALIDATORS = {
  turn: schemaValidator<TurnCommand>(SESSION_COMMAND_SCHEMAS.turn),
  shutdown: schemaValidator<ShutdownCommand>(SESSION_COMMAND_SCHEMAS.shutdown),
  interrupt: schemaValidator<InterruptCommand>(SESSION_COMMAND_SCHEMAS.interrupt),
};

const TURN_COMPLETE_SCHEMA = {
  domain: "object",
  required: [{ key: "type", value: { unit: "turn_complete" } }],
  optional: [
    { key: "result", value: "string" },
    { key: "interrupted", value: [{ unit: true }, { unit: false }] },
  ],
} satisfies RootSchema;

const TurnComplete = schemaValidator<ExecutorLine>(TURN_COMPLETE_SCHEMA);
const IsTurnComplete = schemaValidator<{ type: "turn_complete" }>({
  domain: "object",
  required: [{ key: "type", value: { unit: "turn_complete" } }],
});

const line = (value: unknown) => `${JSON.stringify(value)}\n`;

/** The next turn of the session, with the run's parameters. JSON escapes line breaks: one line. */
export function turnLine(parameters: JsonObject): string {
  return line({ type: "turn", parameters } satisfies TurnCommand);
}

/** Ends the session once the turns before it are done: the executor ends what it keeps and exits 0. */
export const SHUTDOWN_LINE = line({ type: "shutdown" } satisfies ShutdownCommand);

/** Ends the turn under way early and keeps the session (an interactive terminal's Ctrl+C). */
export const INTERRUPT_LINE = line({ type: "interrupt" } satisfies InterruptCommand);

/** Executor side: the line that ends a turn. */
export function turnCompleteLine(result: string, interrupted = false): string {
  return line({ type: "turn_complete", result, ...(interrupted ? { interrupted: true } : {}) } satisfies ExecutorLine);
}

/** Executor side: one line read from stdin after the invocation. Throws a SessionLineError naming what is wrong. */
export function parseSessionCommand(text: string, origin = "stdin line"): SessionCommand {
  const command = parseJson(text, CommandType, origin, SessionLineError);
  return validate<SessionCommand>(command, COMMAND_VALIDATORS[command.type], origin, SessionLineError);
}

/**
 * Runner side: a line of a persistent executor's stdout as a `turn_complete`, or undefined for any
 * other output. A `turn_complete` whose other fields are wrong still ends the turn, without them.
 */
export function parseExecutorLine(text: string): ExecutorLine | undefined {
  if (!text.trimStart().startsWith("{")) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!IsTurnComplete.allows(data)) return undefined;
  if (!TurnComplete.allows(data)) return { type: "turn_complete" };
  const { result, interrupted } = data;
  return {
    type: "turn_complete",
    ...(result === undefined ? {} : { result }),
    ...(interrupted ? { interrupted } : {}),
  };
}
