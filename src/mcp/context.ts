/**
 * What an MCP request says about its caller. The runner puts these headers into the blueprint's
 * MCP server entry, so every tool call from an agent carries them.
 */

import { messageOf } from "../shared/errors.ts";
import { JsonObject, parseJson } from "../shared/json.ts";

export const PARENT_SESSION_HEADER = "X-Agent-Session-Id";
export const TAGS_HEADER = "X-Agent-Tags";
export const DEMANDS_HEADER = "X-Additional-Demands";

/** Runner demands as the coordinator knows them; other keys are passed along untouched. */
const Demands = JsonObject.and({
  "hostname?": "string | null",
  "project_dir?": "string | null",
  "executor_profile?": "string | null",
  "tags?": "string[] | null",
});
export type Demands = typeof Demands.infer;

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

/** Checks the demands header; returns the demands or the reason they are unusable. */
export function parseDemands(raw: string): { demands: Demands } | { error: string } {
  try {
    return { demands: parseJson(raw, Demands, `${DEMANDS_HEADER} header`) };
  } catch (error) {
    return { error: `${messageOf(error)} (expected a JSON object such as {"project_dir": "/path"})` };
  }
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
