/** Run-specific placeholders in a blueprint, filled before the executor sees it: 2.1 fetched blueprints and 2.2 resolved ones. */
import type { JsonObject } from "../shared/json.ts";

export interface BlueprintContext {
  sessionId: string;
  mcpUrl: string;
}

type Server = Record<string, unknown>;

/** `value` with `replace` applied to every string in it, however deep. */
function mapStrings(value: unknown, replace: (text: string) => string): unknown {
  if (typeof value === "string") return replace(value);
  if (Array.isArray(value)) return value.map((item) => mapStrings(item, replace));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, mapStrings(item, replace)]));
  }
  return value;
}

function fill(value: unknown, context: BlueprintContext): unknown {
  return mapStrings(value, (text) =>
    text
      .replaceAll("${AGENT_SESSION_ID}", context.sessionId)
      .replaceAll("${AGENT_ORCHESTRATOR_MCP_URL}", context.mcpUrl),
  );
}

/** The fields of an MCP server entry that may carry placeholders, by server type. */
const PLACEHOLDER_FIELDS: Record<string, string[]> = {
  http: ["url", "headers"],
  stdio: ["command", "args", "env"],
};

function resolveServer(server: unknown, context: BlueprintContext): unknown {
  if (server === null || typeof server !== "object" || Array.isArray(server)) return server;
  const fields = PLACEHOLDER_FIELDS[String((server as Server).type)];
  if (!fields) return server;
  const resolved: Server = { ...(server as Server) };
  for (const field of fields) if (field in resolved) resolved[field] = fill(resolved[field], context);
  return resolved;
}

/**
 * Fills `${AGENT_SESSION_ID}` and `${AGENT_ORCHESTRATOR_MCP_URL}` in a blueprint's MCP servers
 * (docs/protocol.md, "Blueprints"). A server of unknown type passes through unchanged.
 */
export function fillBlueprintPlaceholders(blueprint: JsonObject, context: BlueprintContext): JsonObject {
  const servers = blueprint.mcp_servers;
  if (servers === null || typeof servers !== "object" || Array.isArray(servers)) return blueprint;
  return {
    ...blueprint,
    mcp_servers: Object.fromEntries(
      Object.entries(servers).map(([name, server]) => [name, resolveServer(server, context)]),
    ),
  };
}

/** Protocol 2.2's only runner placeholder; the coordinator has resolved the rest. */
const RUNNER_MCP_URL = "${runner.orchestrator_mcp_url}";

/**
 * A blueprint the coordinator resolved (protocol 2.2), with `${runner.orchestrator_mcp_url}`
 * filled wherever it appears; any other placeholder is left as it is.
 */
export function fillRunnerPlaceholders(blueprint: JsonObject, mcpUrl: string): JsonObject {
  return mapStrings(blueprint, (text) => text.replaceAll(RUNNER_MCP_URL, mcpUrl)) as JsonObject;
}
