/**
 * An error in what the operator gave us (flags, env, profile files). The CLI prints its message
 * as is, without a stack, and exits 1: the message must name the input and what was expected.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}
