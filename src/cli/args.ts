/** citty arguments from the shared flag definitions, and the strict flag check citty does not do. */
import type { ArgsDef } from "citty";
import type { FlagDefs } from "../config/flags.ts";
import { ConfigError } from "../shared/errors.ts";

/** Flags that existed before profiles, with what replaced them. */
const REMOVED_FLAGS: Record<string, string> = {
  "--executor": "use --profile <name> instead (see --profile-list)",
  "--executor-path": "set the executor's command in a profile and use --profile <name>",
  "--executor-list": "use --profile-list instead",
};

/** The citty argument definitions for a set of flags; `--help` names each flag's variable. */
export function commandArgs<F extends FlagDefs>(flags: F): F {
  const args: FlagDefs = {};
  for (const [name, { env, ...def }] of Object.entries(flags)) {
    args[name] = env ? { ...def, description: `${def.description} (env ${env})` } : def;
  }
  return args as F;
}

function kebab(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * citty accepts any flag; a runner started with a typo (`--profle coding`) must not quietly run
 * the default profile, so unknown flags, removed flags and stray arguments are refused here.
 */
export function assertKnownFlags(rawArgs: string[], args: ArgsDef, positionals = 0): void {
  const known = new Set(["--help", "-h", "--version"]);
  const takesValue = new Set<string>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const spellings = [`--${name}`, `--${kebab(name)}`];
    if (def.type === "boolean") spellings.push(`--no-${name}`);
    for (const alias of ["alias" in def ? (def.alias ?? []) : []].flat()) {
      spellings.push(alias.length === 1 ? `-${alias}` : `--${alias}`);
    }
    for (const spelling of spellings) {
      known.add(spelling);
      if (def.type !== "boolean") takesValue.add(spelling);
    }
  }
  let seenPositionals = 0;
  for (let i = 0; i < rawArgs.length; i++) {
    const token = rawArgs[i]!;
    if (token === "--") break;
    if (!token.startsWith("-") || token === "-") {
      if (++seenPositionals > positionals) throw new ConfigError(`Unexpected argument '${token}' (see --help)`);
      continue;
    }
    const flag = token.split("=", 1)[0]!;
    const replacement = REMOVED_FLAGS[flag];
    if (replacement) throw new ConfigError(`${flag} has been removed: ${replacement}`);
    if (!known.has(flag)) throw new ConfigError(`Unknown option ${flag} (see --help)`);
    if (takesValue.has(flag) && !token.includes("=")) {
      const value = rawArgs[i + 1];
      if (value === undefined || (value.startsWith("-") && !/^-\d/.test(value))) {
        throw new ConfigError(`${flag} needs a value`);
      }
      i++;
    }
  }
}
