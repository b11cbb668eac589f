/**
 * JSON from outside, for the runner: JsonObject as an arktype type (built from the schema data
 * executors validate with), and the one helper that parses JSON and validates it (validation.ts).
 */
import { type } from "./arktype.ts";
import { JSON_OBJECT_SCHEMA, type JsonObject as JsonObjectShape } from "./validation.ts";

export { InvalidDataError, parseJson, validate } from "./validation.ts";

/** A JSON object (`{…}`): arktype's Record alone also lets arrays through. */
export const JsonObject = type.schema(JSON_OBJECT_SCHEMA).as<JsonObjectShape>();

export type JsonObject = typeof JsonObject.infer;
