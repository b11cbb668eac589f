/**
 * The test executor: the executor protocol without AI. It binds, reports the same events as a
 * real agent and answers `[TEST-EXECUTOR] Received: <prompt>`, so runners and coordinators can be
 * exercised end to end in a second.
 */
import { randomUUID } from "node:crypto";
import type { Invocation } from "../protocol/invocation.ts";
import { sessionEvents } from "../protocol/session-events.ts";
import {
  type ExecutorContext,
  type ExecutorDefinition,
  type ExecutorIO,
  readSessionForResume,
  runExecutor,
} from "./kit/run-executor.ts";

const TEST_EXECUTOR_NAME = "ao-test-exec";

function testExecutorAnswer(prompt: string): string {
  return `[TEST-EXECUTOR] Received: ${prompt}`;
}

async function run(invocation: Invocation, { reporter, gateway, log }: ExecutorContext): Promise<string> {
  const sessionId = invocation.session_id;
  if (invocation.mode === "start") {
    // Stands in for the id an agent framework would give its own session.
    await reporter.bind(randomUUID(), invocation.project_dir ?? process.cwd());
  } else {
    const session = await readSessionForResume(gateway, sessionId);
    log.debug(`resuming executor session ${session.executor_session_id ?? "(none recorded)"}`);
    // Bound again, as a real agent is when it resumes: the coordinator shows the session running.
    await reporter.bind(
      session.executor_session_id || randomUUID(),
      session.project_dir || invocation.project_dir || process.cwd(),
    );
    await reporter.event(sessionEvents.sessionStart(sessionId));
    await reporter.markResumed();
  }
  await reporter.message("user", invocation.prompt);
  const answer = testExecutorAnswer(invocation.prompt);
  await reporter.message("assistant", answer);
  await reporter.event(sessionEvents.sessionStop(sessionId, 0, "completed"));
  return answer;
}

const testExecutor: ExecutorDefinition = {
  name: TEST_EXECUTOR_NAME,
  summary: "test executor: the executor protocol without AI, answering '[TEST-EXECUTOR] Received: <prompt>'",
  details: `Start: binds a generated executor session id, sends the user and assistant message events and
session_stop. Resume: reads the session (GET /sessions/{id}), binds its recorded executor session id
again, sends session_start, updates last_resumed_at, then answers the same way. executor_config is not used (shown with AGENT_RUNNER_DEBUG=1).`,
  run,
};

/** Entry point: returns the exit code. */
export function main(argv: string[], io?: ExecutorIO): Promise<number> {
  return runExecutor(testExecutor, argv, io);
}
