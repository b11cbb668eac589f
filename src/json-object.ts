import { type } from "./validation.ts";

/** A JSON object (`{…}`): arktype's Record alone also lets arrays through. */
export const JsonObject = type("Record<string, unknown>").narrow(
  (value, ctx) => !Array.isArray(value) || ctx.mustBe("an object (not an array)"),
);

export type JsonObject = typeof JsonObject.infer;

/** Parses JSON text, turning a syntax error into a message that says where the text came from. */
export function parseJsonText(text: string, origin: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(`${origin} is not valid JSON: ${(error as Error).message}`);
  }
}
