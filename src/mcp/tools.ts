/** The seven orchestration tools as MCP tools: names, descriptions, zod input schemas (the SDK's). */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { log } from "../shared/log.ts";
import { DEMANDS_HEADER, PARENT_SESSION_HEADER, type RequestContext, TAGS_HEADER } from "./context.ts";
import type { Orchestrator, WaitOptions } from "./orchestrator.ts";
import { EXECUTION_MODES, MAX_PROMPT_LENGTH, MAX_RESULT_LENGTH, ToolError } from "./tool-rules.ts";

const modeSchema = z
  .enum(EXECUTION_MODES)
  .default("sync")
  .describe(
    '"sync" (default): wait until the session finishes and return its result. ' +
      '"async_poll": return at once with the session id; check it later with get_agent_session_status / get_agent_session_result. ' +
      `"async_callback": return at once; when the session finishes, the coordinator resumes your session with its result (needs the ${PARENT_SESSION_HEADER} header).`,
  );

const promptSchema = z
  .string()
  .describe(`What the agent should do. At most ${MAX_PROMPT_LENGTH.toLocaleString("en-US")} characters.`);
const sessionIdSchema = z
  .string()
  .min(1)
  .describe('Session id as returned by start_agent_session or list_agent_sessions (e.g. "ses_abc123def456").');

const resultNote = `Results longer than ${MAX_RESULT_LENGTH.toLocaleString("en-US")} characters are cut, with a note saying so.`;

function answer(value: unknown): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value, null, 2) }] };
}

function failure(message: string): CallToolResult {
  return { content: [{ type: "text", text: message }], isError: true };
}

/** Runs one tool: its answer as JSON text, or its failure as a tool error the agent can read. */
async function run(tool: string, work: () => Promise<unknown>): Promise<CallToolResult> {
  try {
    return answer(await work());
  } catch (error) {
    if (error instanceof ToolError) {
      log.debug(`MCP tool ${tool} failed: ${error.message}`);
      return failure(error.message);
    }
    log.warn(`MCP tool ${tool} failed unexpectedly:`, error);
    return failure(`${tool} failed unexpectedly: ${error instanceof Error ? error.message : String(error)}`);
  }
}

export interface ToolRequest {
  context: RequestContext;
  /** Aborts when the server stops; ends sync waits (a client hanging up aborts `extra.signal`). */
  signal: AbortSignal;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** A sync wait's options: its abort signal, and progress notifications if the client asked for them. */
function waitOptions(request: ToolRequest, extra: Extra): WaitOptions {
  const progressToken = extra._meta?.progressToken;
  return {
    signal: AbortSignal.any([request.signal, extra.signal]),
    onPoll:
      progressToken === undefined
        ? undefined
        : ({ runId, runStatus, elapsedMs }) => {
            // Progress keeps clients with resetTimeoutOnProgress from giving up on a long wait.
            extra
              .sendNotification({
                method: "notifications/progress",
                params: { progressToken, progress: elapsedMs, message: `run ${runId} is ${runStatus}` },
              })
              .catch(() => {});
          },
  };
}

/** Registers the seven orchestration tools on a server that serves one HTTP request. */
export function registerTools(server: McpServer, orchestrator: Orchestrator, request: ToolRequest): void {
  const { context } = request;

  server.registerTool(
    "list_agent_blueprints",
    {
      description:
        "List the agent blueprints you can start sessions from: [{name, description, tags}]. Only active blueprints are listed" +
        ` (filtered by the tags in the ${TAGS_HEADER} header when it is set). Pass a name to start_agent_session as agent_name.`,
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    () => run("list_agent_blueprints", () => orchestrator.listBlueprints(context)),
  );

  server.registerTool(
    "list_agent_sessions",
    {
      description:
        "List all agent sessions: [{session_id, status, agent_name, created_at, last_resumed_at}]. " +
        'status is one of "pending", "running", "stopping", "stopped", "finished".',
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    () => run("list_agent_sessions", () => orchestrator.listSessions()),
  );

  server.registerTool(
    "start_agent_session",
    {
      description:
        "Start a new session of an agent blueprint (see list_agent_blueprints) with a prompt. " +
        'In mode "sync" it waits for the agent to finish and returns {session_id, result}; in the async modes it returns ' +
        '{session_id, run_id, status: "pending"} at once. Your session becomes the parent of the new one. ' +
        resultNote,
      inputSchema: {
        agent_name: z.string().min(1).describe("Name of the agent blueprint to run (from list_agent_blueprints)."),
        prompt: promptSchema,
        project_dir: z
          .string()
          .min(1)
          .optional()
          .describe(
            `Directory the agent works in. Default: project_dir from the ${DEMANDS_HEADER} header, else the runner's own.`,
          ),
        mode: modeSchema,
      },
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    (args, extra) =>
      run("start_agent_session", () => orchestrator.startSession(context, args, waitOptions(request, extra))),
  );

  server.registerTool(
    "resume_agent_session",
    {
      description:
        "Continue an existing session (which keeps its agent and its memory of the conversation) with a new prompt. " +
        'Returns {session_id, result} in mode "sync", {session_id, run_id, status: "pending"} in the async modes. ' +
        resultNote,
      inputSchema: {
        session_id: sessionIdSchema,
        prompt: promptSchema,
        mode: modeSchema,
      },
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false },
    },
    (args, extra) =>
      run("resume_agent_session", () => orchestrator.resumeSession(context, args, waitOptions(request, extra))),
  );

  server.registerTool(
    "get_agent_session_status",
    {
      description:
        'Get a session\'s status: {session_id, status}, where status is "pending", "running", "stopping", "stopped", ' +
        '"finished" (its result is ready) or "not_existent".',
      inputSchema: { session_id: sessionIdSchema },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ session_id }) => run("get_agent_session_status", () => orchestrator.sessionStatus(session_id)),
  );

  server.registerTool(
    "get_agent_session_result",
    {
      description:
        "Get the result (the agent's last answer) of a finished session, or of one waiting idle for its next turn: " +
        "{session_id, result}, plus result_data when the agent answered with structured output. " +
        "Fails if the session does not exist or has not finished yet. " +
        resultNote,
      inputSchema: { session_id: sessionIdSchema },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ session_id }) => run("get_agent_session_result", () => orchestrator.sessionResult(session_id)),
  );

  server.registerTool(
    "delete_all_agent_sessions",
    {
      description:
        "Delete every agent session with its events and runs, on the whole coordinator: {deleted_count}. " +
        "This cannot be undone; use it only when asked to clean up.",
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false },
    },
    () => run("delete_all_agent_sessions", () => orchestrator.deleteAllSessions()),
  );
}
