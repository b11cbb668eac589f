/** An environment: variables by name, as in `process.env`. */
export type Env = Record<string, string | undefined>;
