/** Runs as the fake coordinator builds, creates and matches them to its runner, per protocol generation. */

import { RunCreate21, RunCreate22, validationErrors } from "./fake-models.ts";
import { type Answer, answer, isoNow, type Protocol, type SessionStore } from "./fake-sessions.ts";

export type Run = Record<string, any>;

/** How long a run with demands waits for a matching runner at the reference (RUN_NO_MATCH_TIMEOUT). */
const NO_MATCH_TIMEOUT_SECONDS = 300;

export const newId = (prefix: "run" | "ses") =>
  `${prefix}_${crypto.getRandomValues(new Uint8Array(6)).reduce((hex, byte) => hex + byte.toString(16).padStart(2, "0"), "")}`;

/**
 * A run as the reference hands it out at 2.2, from the fields a test gives: `prompt` becomes
 * `parameters: {prompt}`, `demands` gain `executor_type` (`autonomous` unless given) and `tags`, the
 * blueprint is the given `resolved_agent_blueprint`, else the fake's agent of that name, else null.
 */
export function runAt22(fields: Run, agents: Record<string, Run>): Run {
  const { prompt, ...rest } = fields;
  const agent = typeof rest.agent_name === "string" ? agents[rest.agent_name] : undefined;
  const demands = {
    executor_type: agent?.type ?? "autonomous",
    tags: [],
    ...(rest.demands as Run | undefined),
  };
  // Filled in the reference's field order; what the test gives wins, then parameters and demands are set.
  const run: Run = {
    run_id: newId("run"),
    type: "start_session",
    session_id: newId("ses"),
    agent_name: null,
    parameters: {},
    project_dir: null,
    parent_session_id: null,
    execution_mode: "sync",
    demands: null,
    status: "pending",
    runner_id: null,
    error: null,
    created_at: isoNow(),
    claimed_at: null,
    started_at: null,
    completed_at: null,
    timeout_at: isoNow(NO_MATCH_TIMEOUT_SECONDS),
    scope: null,
    resolved_agent_blueprint: agent ?? null,
    ...rest,
  };
  if (rest.parameters === undefined && prompt !== undefined) run.parameters = { prompt };
  run.demands = demands;
  return run;
}

/** What a runner registered with, as far as matching reads it. */
export interface Registration {
  hostname?: string;
  project_dir?: string;
  executor_profile?: string;
  executor?: { type?: unknown } | null;
  tags?: string[] | null;
  require_matching_tags?: boolean;
}

/** Whether the registered runner may take a run with these demands (the reference's capabilities_satisfy_demands). */
export function satisfiesDemands(runner: Registration | undefined, demands: Run | null | undefined): boolean {
  if (!runner) return false;
  const runnerTags = new Set(runner.tags ?? []);
  if (!demands) return !runner.require_matching_tags;
  for (const key of ["hostname", "project_dir", "executor_profile"] as const)
    if (demands[key] && runner[key] !== demands[key]) return false;
  if (demands.executor_type && runner.executor?.type !== demands.executor_type) return false;
  const demanded: string[] = demands.tags ?? [];
  if (!demanded.every((tag) => runnerTags.has(tag))) return false;
  if (runner.require_matching_tags && !demanded.some((tag) => runnerTags.has(tag))) return false;
  return true;
}

type Demands = {
  hostname?: string;
  project_dir?: string;
  executor_profile?: string;
  executor_type?: string;
  tags: string[];
};

/** The reference's RunnerDemands.merge: the first one's properties win, tags are joined. */
function merge(first: Demands, second: Demands): Demands {
  const merged: Demands = { tags: [...new Set([...first.tags, ...second.tags])] };
  for (const key of ["hostname", "project_dir", "executor_profile", "executor_type"] as const) {
    const value = first[key] || second[key];
    if (value) merged[key] = value;
  }
  return merged;
}

const demandsOf = (value: unknown): Demands => {
  const given = (value ?? {}) as Partial<Demands>;
  const demands: Demands = { ...given, tags: given.tags ?? [] };
  for (const key of Object.keys(demands) as Array<keyof Demands>) if (demands[key] === null) delete demands[key];
  return demands;
};

const isEmpty = (d: Demands) =>
  !d.hostname && !d.project_dir && !d.executor_profile && !d.executor_type && d.tags.length === 0;

/** The reference's implicit parameters schema: exactly `{"prompt": <non-empty string>}`. */
const PROMPT_ONLY_SCHEMA = {
  type: "object",
  required: ["prompt"],
  properties: { prompt: { type: "string", minLength: 1 } },
  additionalProperties: false,
};

/** The implicit schema's errors for `parameters`, worded as the reference's jsonschema words them. */
function promptOnlyErrors(parameters: Run): object[] {
  const errors: object[] = [];
  if (!("prompt" in parameters))
    errors.push({ path: "$", message: "'prompt' is a required property", schema_path: "required" });
  else if (typeof parameters.prompt !== "string")
    errors.push({
      path: "$.prompt",
      message: `${pythonRepr(parameters.prompt)} is not of type 'string'`,
      schema_path: "properties/prompt/type",
    });
  else if (parameters.prompt.length === 0)
    errors.push({ path: "$.prompt", message: "'' should be non-empty", schema_path: "properties/prompt/minLength" });
  const extra = Object.keys(parameters).filter((key) => key !== "prompt");
  if (extra.length) {
    const names = extra.map((key) => `'${key}'`).join(", ");
    const message = `Additional properties are not allowed (${names} ${extra.length === 1 ? "was" : "were"} unexpected)`;
    errors.push({ path: "$", message, schema_path: "additionalProperties" });
  }
  return errors;
}

function pythonRepr(value: unknown): string {
  if (value === null) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "string") return `'${value}'`;
  return JSON.stringify(value);
}

/**
 * Fills the placeholders the reference fills when it resolves a blueprint for a run:
 * `${params.X}`, `${scope.X}`, `${runtime.session_id}`, `${runtime.run_id}`. Others
 * (`${runner.orchestrator_mcp_url}` included) are left for the runner.
 */
export function resolvePlaceholders(
  value: unknown,
  context: { params: Run; scope: Run; runId: string; sessionId: string },
): any {
  if (Array.isArray(value)) return value.map((item) => resolvePlaceholders(item, context));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolvePlaceholders(v, context)]));
  if (typeof value !== "string") return value;
  return value.replace(/\$\{([^}]+)\}/g, (whole, placeholder: string) => {
    const [source, key] = placeholder.split(/\.(.*)/s) as [string, string | undefined];
    if (key === undefined) return whole;
    const found =
      source === "params"
        ? context.params[key]
        : source === "scope"
          ? context.scope[key]
          : source === "runtime" && key === "session_id"
            ? context.sessionId
            : source === "runtime" && key === "run_id"
              ? context.runId
              : undefined;
    return found === undefined || found === null ? whole : String(found);
  });
}

/**
 * `POST /runs`, as the reference of the generation answers it. On success the answer carries the
 * new run (pending, with its demands), which the caller queues; the session of a start is created here.
 */
export function createRun(
  protocol: Protocol,
  body: unknown,
  sessions: SessionStore,
  agents: Record<string, Run>,
): Answer & { run?: Run } {
  const invalid = validationErrors(protocol === "2.1" ? RunCreate21 : RunCreate22, body);
  if (invalid.length) return answer({ detail: invalid }, 422);
  const request = body as Run;
  const resume = request.type === "resume_session";
  if (protocol === "2.2" && resume && !request.session_id)
    return answer({ detail: "session_id is required for resume_session" }, 400);
  const existing = resume ? sessions.get(request.session_id) : undefined;
  if (protocol === "2.2" && resume && !existing)
    return answer({ detail: `Session '${request.session_id}' not found` }, 404);
  if (resume && !existing) return answer("Internal Server Error", 500);
  const agentName: string | null = (resume ? existing?.agent_name : null) || request.agent_name || null;
  const agent = agentName ? agents[agentName] : undefined;

  if (protocol === "2.2") {
    const customSchema = !resume && agent?.parameters_schema;
    const errors = customSchema ? [] : promptOnlyErrors(request.parameters);
    if (errors.length)
      return answer(
        {
          detail: {
            error: "parameter_validation_failed",
            message: "Parameters do not match agent's parameters_schema",
            agent_name: agentName ?? "(no agent)",
            validation_errors: errors,
            parameters_schema: PROMPT_ONLY_SCHEMA,
          },
        },
        400,
      );
  }

  const sessionId: string = request.session_id ?? newId("ses");
  if (!resume) {
    if (sessions.get(sessionId)) return answer({ detail: `Session '${sessionId}' already exists` }, 409);
    sessions.ensure(sessionId, {
      project_dir: request.project_dir ?? null,
      agent_name: request.agent_name ?? null,
      parent_session_id: request.parent_session_id ?? null,
      execution_mode: request.execution_mode ?? "sync",
    });
  }
  const runId = newId("run");
  const affinity: Demands = { tags: [] };
  if (existing?.hostname) affinity.hostname = existing.hostname;
  if (existing?.executor_profile) affinity.executor_profile = existing.executor_profile;
  const blueprintDemands = demandsOf(agent?.demands);
  const additional = demandsOf(request.additional_demands);
  const executorType: Demands = {
    tags: [],
    executor_type: protocol === "2.2" ? (agent?.type ?? "autonomous") : undefined,
  };
  const demands = merge(merge(merge(affinity, blueprintDemands), executorType), additional);
  const createdAt = isoNow();
  const common = {
    run_id: runId,
    type: request.type,
    session_id: sessionId,
    agent_name: agentName,
  };
  const tail = {
    // A resume takes the session's project directory when it names none.
    project_dir: request.project_dir ?? existing?.project_dir ?? null,
    parent_session_id: request.parent_session_id ?? null,
    execution_mode: request.execution_mode ?? "sync",
    demands: isEmpty(demands) ? null : demands,
    status: "pending",
    runner_id: null,
    error: null,
    created_at: createdAt,
    claimed_at: null,
    started_at: null,
    completed_at: null,
    timeout_at: isEmpty(demands) ? null : isoNow(NO_MATCH_TIMEOUT_SECONDS),
  };
  const run: Run =
    protocol === "2.1"
      ? { ...common, prompt: request.prompt, ...tail }
      : {
          ...common,
          parameters: request.parameters,
          ...tail,
          scope: request.scope ?? null,
          resolved_agent_blueprint: agent
            ? resolvePlaceholders(agent, {
                params: request.parameters,
                scope: request.scope ?? {},
                runId,
                sessionId,
              })
            : null,
        };
  return {
    ...answer({ run_id: runId, session_id: sessionId, status: "pending" }, protocol === "2.1" ? 200 : 201),
    run,
  };
}
