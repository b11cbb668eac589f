/**
 * One run, from the moment the coordinator hands it out to its reported outcome: tag check,
 * blueprint, invocation, spawn, supervision, outcome. The worker loop owns many of these.
 */

import type { ExecutorProfile } from "../config/profiles.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import type { CoordinatorClient, RunReport, RunRequest } from "../coordinator/client.ts";
import { ExecutorProcess, type StopSignal } from "../process/executor-process.ts";
import { buildInvocation, type InvocationMode } from "../protocol/invocation.ts";
import { messageOf } from "../shared/errors.ts";
import type { JsonObject } from "../shared/json.ts";
import { isDebug, log } from "../shared/log.ts";
import { seconds } from "../shared/retry.ts";
import { fillBlueprintPlaceholders } from "./blueprint-placeholders.ts";

const RUN_MODES: Record<string, InvocationMode> = { start_session: "start", resume_session: "resume" };

/** What a run needs from the runner around it. */
export interface RunContext {
  config: RunnerConfig;
  profile: ExecutorProfile;
  client: Pick<CoordinatorClient, "getAgent">;
  /** Queues a report for delivery (the outbox). */
  report(runId: string, report: RunReport): void;
  /** The executor's environment, before the run's own variables. */
  executorEnv: Record<string, string | undefined>;
  /** The embedded MCP server's URL, for blueprint placeholders. */
  mcpUrl: string;
}

/** Why this runner must not execute the run (tagged-only mode), or undefined. */
export function tagRefusal(
  run: RunRequest,
  config: Pick<RunnerConfig, "requireMatchingTags" | "tags">,
): string | undefined {
  if (!config.requireMatchingTags) return undefined;
  const demanded = run.demands?.tags;
  const tags = Array.isArray(demanded) ? demanded.filter((tag): tag is string => typeof tag === "string") : [];
  const own = config.tags.join(",");
  if (tags.length === 0) {
    return `Run demands no tags, and this runner accepts only runs sharing a tag with it (--require-matching-tags, tags ${own})`;
  }
  if (!tags.some((tag) => config.tags.includes(tag))) {
    return `Run demands tags ${tags.join(",")}, none of which this runner has (tags ${own}, --require-matching-tags)`;
  }
  return undefined;
}

export class RunJob {
  readonly runId: string;
  private executor?: ExecutorProcess;
  private stopRequested = false;
  private stopping?: Promise<StopSignal | undefined>;
  private startedAt = 0;

  constructor(
    readonly run: RunRequest,
    private readonly context: RunContext,
  ) {
    this.runId = run.run_id;
  }

  /** Runs the whole lifecycle; resolves once the outcome is queued for delivery. */
  async execute(): Promise<void> {
    const { run } = this;
    const mode = RUN_MODES[run.type];
    if (!mode) return this.fail(`Unknown run type '${run.type}' (expected start_session or resume_session)`);
    const refusal = tagRefusal(run, this.context.config);
    if (refusal) return this.fail(refusal);

    let blueprint: JsonObject | undefined;
    if (run.agent_name) {
      try {
        blueprint = await this.context.client.getAgent(run.agent_name);
      } catch (error) {
        return this.fail(`Could not fetch agent blueprint '${run.agent_name}': ${messageOf(error)}`);
      }
      if (!blueprint) return this.fail(`Agent blueprint '${run.agent_name}' not found`);
      blueprint = fillBlueprintPlaceholders(blueprint, { sessionId: run.session_id, mcpUrl: this.context.mcpUrl });
    }
    if (this.stopRequested) return this.fail("Run was stopped before its executor started");
    const executor = this.spawn(mode, blueprint);
    if (executor) await this.supervise(executor);
  }

  /** A stop command: SIGTERM, then SIGKILL after the grace period; before the spawn, no spawn. */
  stop(): void {
    this.stopRequested = true;
    if (!this.executor || this.stopping) return;
    const { stopGraceSeconds } = this.context.config;
    log.info(`Stopping run ${this.runId} (SIGTERM, SIGKILL after ${stopGraceSeconds} s)`);
    this.stopping = this.executor.stop(stopGraceSeconds * 1000);
  }

  private spawn(mode: InvocationMode, blueprint: JsonObject | undefined): ExecutorProcess | undefined {
    const { run } = this;
    const { config, profile } = this.context;
    const invocation = buildInvocation({
      mode,
      sessionId: run.session_id,
      prompt: run.prompt,
      projectDir: run.project_dir || config.projectDir,
      agentBlueprint: blueprint,
      executorConfig: profile.config,
      metadata: run.metadata ?? undefined,
    });
    try {
      this.executor = new ExecutorProcess({
        argv: profile.argv,
        input: JSON.stringify(invocation),
        cwd: run.project_dir || config.projectDir,
        env: { ...this.context.executorEnv, AGENT_SESSION_ID: run.session_id },
        stdout: isDebug() ? "lines" : "ignore",
        // A verbose runner shows what its executors say.
        onOutput: isDebug() ? (stream, line) => log.debug(`[${run.run_id} ${stream}] ${line}`) : undefined,
      });
    } catch (error) {
      this.fail(`Executor ${profile.argv.join(" ")} could not be started: ${messageOf(error)}`);
      return undefined;
    }
    this.startedAt = performance.now();
    this.context.report(run.run_id, { kind: "started" });
    log.info(
      `Run ${run.run_id} started: ${run.type}, session ${run.session_id}${run.agent_name ? `, agent ${run.agent_name}` : ""}, pid ${this.executor.pid}`,
    );
    return this.executor;
  }

  private async supervise(executor: ExecutorProcess): Promise<void> {
    const status = await executor.exited;
    const signal = this.stopping && (await this.stopping);
    const took = seconds(performance.now() - this.startedAt);
    if (signal) {
      log.info(`Run ${this.runId} stopped by ${signal} after ${took}`);
      this.context.report(this.runId, { kind: "stopped", signal });
    } else if (status.code === 0) {
      log.info(`Run ${this.runId} completed in ${took}`);
      this.context.report(this.runId, { kind: "completed" });
    } else {
      const tail = executor.stderrTail().trim();
      const ending = status.signal ? `Process killed by ${status.signal}` : `Process exited with code ${status.code}`;
      this.fail(tail || ending);
    }
  }

  private fail(error: string): void {
    log.error(`Run ${this.runId} failed: ${error}`);
    this.context.report(this.runId, { kind: "failed", error });
  }
}
