/**
 * Outside data in, checked: parse JSON and validate it against a schema, with messages naming the
 * origin and every wrong field. A schema is an arktype type (the runner) or a node of arktype's
 * own schema layer, @ark/schema (the executors, which start ~60 ms sooner and ~10 MB lighter
 * without arktype's keyword scopes); both are the same engine, with the same messages. Schemas
 * shared by both are written once, as schema data (`RootSchema`): the runner wraps it with
 * `type.schema()`, executors with `schemaValidator()`.
 */
import "./arktype-config.ts";
import { ArkErrors, type RootSchema, rootSchema } from "@ark/schema";
import { messageOf } from "./errors.ts";

/** What validates: an arktype type, or a schema node typed with `schemaValidator`. */
export interface Validator<T> {
  (data: unknown): T | ArkErrors;
  allows(data: unknown): data is T;
}

/** A validator for schema data, without arktype's parser; `T` is what the data describes. */
export function schemaValidator<T>(schema: RootSchema): Validator<T> {
  return rootSchema(schema) as unknown as Validator<T>;
}

/** `{…}` and not an array (arktype's object domain also lets arrays through). */
const notAnArray = (value: unknown, ctx: { mustBe(expected: string): false }): boolean =>
  !Array.isArray(value) || ctx.mustBe("an object (not an array)");

/** A JSON object: any keys, any values, not an array. */
export const JSON_OBJECT_SCHEMA = {
  domain: "object",
  index: [{ signature: "string", value: {} }],
  predicate: [notAnArray],
} satisfies RootSchema;

export type JsonObject = Record<string, unknown>;
/** JSON objects, for the executors (the runner's arktype type of the same data is in json.ts). */
export const JsonObject = schemaValidator<JsonObject>(JSON_OBJECT_SCHEMA);

/**
 * The JSON Schema (draft 2020-12) of schema data. JSON Schema cannot say what a predicate checks:
 * each is left out, which is right for `notAnArray`, as JSON Schema's `type: "object"` excludes arrays.
 */
export function toJsonSchema(schema: RootSchema): JsonObject {
  return rootSchema(schema).toJsonSchema({ fallback: { predicate: (ctx) => ctx.base } }) as JsonObject;
}

/** Outside data that is not what it should be. The message names where it came from and the field. */
export class InvalidDataError extends Error {
  override name = "InvalidDataError";
}

type ErrorClass = new (message: string) => Error;

/** Checks data against a schema; the error names the origin and every field that is wrong. */
export function validate<T>(
  data: unknown,
  schema: Validator<T>,
  origin: string,
  ErrorType: ErrorClass = InvalidDataError,
): T {
  const result = schema(data);
  if (result instanceof ArkErrors) throw new ErrorType(`${origin}: ${result.summary.replaceAll("\n", "; ")}`);
  return result;
}

/** Parses JSON text and checks it against a schema; a syntax error also names the origin. */
export function parseJson<T>(
  text: string,
  schema: Validator<T>,
  origin: string,
  ErrorType: ErrorClass = InvalidDataError,
): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const excerpt = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    throw new ErrorType(`${origin} is not valid JSON (${messageOf(error)}): ${JSON.stringify(excerpt)}`);
  }
  return validate(data, schema, origin, ErrorType);
}
