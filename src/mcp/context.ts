/**
 * What an MCP request says about its caller. The runner puts these headers into the blueprint's
 * MCP server entry, so every tool call from an agent carries them.
 */
export const PARENT_SESSION_HEADER = "X-Agent-Session-Id";
export const TAGS_HEADER = "X-Agent-Tags";
export const DEMANDS_HEADER = "X-Additional-Demands";

/** Runner demands as the coordinator knows them; other keys are passed along untouched. */
export type Demands = Record<string, unknown> & {
  hostname?: string;
  project_dir?: string;
  executor_profile?: string;
  tags?: string[];
};

export interface RequestContext {
  /** The calling agent's session: the parent of any session it starts. */
  parentSessionId?: string;
  /** Comma-separated blueprint tags, passed to `GET /agents?tags=` as is. */
  tags?: string;
  /** Parsed `X-Additional-Demands`; undefined when the header is absent or malformed. */
  demands?: Demands;
  /**
   * Why `X-Additional-Demands` could not be used. Kept rather than thrown so that only the tools
   * that send demands fail (as a tool error), and the others still work.
   */
  demandsError?: string;
}

function headerValue(headers: Headers, name: string): string | undefined {
  const value = headers.get(name)?.trim();
  return value ? value : undefined;
}

const STRING_DEMANDS = ["hostname", "project_dir", "executor_profile"] as const;

/** Checks the demands header; returns the demands or the reason they are unusable. */
export function parseDemands(raw: string): { demands: Demands } | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (error) {
    return { error: `${DEMANDS_HEADER} header is not valid JSON (${(error as Error).message})` };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    return { error: `${DEMANDS_HEADER} header must be a JSON object such as {"project_dir": "/path"}` };
  }
  const demands = parsed as Record<string, unknown>;
  for (const key of STRING_DEMANDS) {
    if (demands[key] !== undefined && demands[key] !== null && typeof demands[key] !== "string") {
      return { error: `${DEMANDS_HEADER} header: "${key}" must be a string` };
    }
  }
  const tags = demands.tags;
  if (tags !== undefined && tags !== null && !(Array.isArray(tags) && tags.every((tag) => typeof tag === "string"))) {
    return { error: `${DEMANDS_HEADER} header: "tags" must be an array of strings` };
  }
  return { demands: demands as Demands };
}

export function contextFromHeaders(headers: Headers): RequestContext {
  const context: RequestContext = {
    parentSessionId: headerValue(headers, PARENT_SESSION_HEADER),
    tags: headerValue(headers, TAGS_HEADER),
  };
  const rawDemands = headerValue(headers, DEMANDS_HEADER);
  if (rawDemands !== undefined) {
    const result = parseDemands(rawDemands);
    if ("error" in result) context.demandsError = result.error;
    else context.demands = result.demands;
  }
  return context;
}
