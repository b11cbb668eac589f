/** Outside data in, checked: the one helper that parses JSON and validates it with an arktype schema. */
import type { Type } from "arktype";
import { type } from "./arktype.ts";

/** A JSON object (`{…}`): arktype's Record alone also lets arrays through. */
export const JsonObject = type("Record<string, unknown>").narrow(
  (value, ctx) => !Array.isArray(value) || ctx.mustBe("an object (not an array)"),
);

export type JsonObject = typeof JsonObject.infer;

/** Outside data that is not what it should be. The message names where it came from and the field. */
export class InvalidDataError extends Error {
  override name = "InvalidDataError";
}

type ErrorClass = new (message: string) => Error;

/** Checks data against a schema; the error names the origin and every field that is wrong. */
export function validate<T>(
  data: unknown,
  schema: Type<T>,
  origin: string,
  ErrorType: ErrorClass = InvalidDataError,
): T {
  const result = schema(data);
  if (result instanceof type.errors) throw new ErrorType(`${origin}: ${result.summary.replaceAll("\n", "; ")}`);
  return result as T;
}

/** Parses JSON text and checks it against a schema; a syntax error also names the origin. */
export function parseJson<T>(
  text: string,
  schema: Type<T>,
  origin: string,
  ErrorType: ErrorClass = InvalidDataError,
): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    const excerpt = text.length > 200 ? `${text.slice(0, 200)}…` : text;
    throw new ErrorType(`${origin} is not valid JSON (${(error as Error).message}): ${JSON.stringify(excerpt)}`);
  }
  return validate(data, schema, origin, ErrorType);
}
