/**
 * The test executor: the executor protocol without AI. It binds, reports the same events as a
 * real agent and answers `[TEST-EXECUTOR] Received: <prompt>`, so runners and coordinators can be
 * exercised end to end in a second.
 */
import { randomUUID } from "node:crypto";
import { type Invocation, turnPrompt } from "../protocol/invocation.ts";
import { sessionEvents } from "../protocol/session-events.ts";
import {
  type ExecutorContext,
  type ExecutorDefinition,
  type ExecutorIO,
  type ExecutorSession,
  readSessionForResume,
  runExecutor,
} from "./kit/run-executor.ts";

const TEST_EXECUTOR_NAME = "ao-test-exec";

function testExecutorAnswer(prompt: string): string {
  return `[TEST-EXECUTOR] Received: ${prompt}`;
}

async function startSession(invocation: Invocation, context: ExecutorContext): Promise<ExecutorSession> {
  const { reporter, gateway, log } = context;
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
  return {
    async turn(parameters) {
      const prompt = turnPrompt(invocation, parameters);
      await reporter.message("user", prompt);
      const answer = testExecutorAnswer(prompt);
      await reporter.message("assistant", answer);
      return { result: answer };
    },
    async finish() {
      await reporter.event(sessionEvents.sessionStop(sessionId, 0, "completed"));
    },
  };
}

const testExecutor: ExecutorDefinition = {
  name: TEST_EXECUTOR_NAME,
  summary: "test executor: the executor protocol without AI, answering '[TEST-EXECUTOR] Received: <prompt>'",
  details: `Start: binds a generated executor session id. Resume: reads the session (GET /sessions/{id}), binds
its recorded executor session id again, sends session_start and updates last_resumed_at. Each turn sends
the user and assistant message events (and, under invocation 2.2, the result event) and answers
'[TEST-EXECUTOR] Received: <prompt>'; session_stop ends the session. It has nothing to interrupt: an
interrupted turn answers all the same. executor_config is not used (shown with AGENT_RUNNER_DEBUG=1).`,
  startSession,
};

/** Entry point: returns the exit code. */
export function main(argv: string[], io?: ExecutorIO): Promise<number> {
  return runExecutor(testExecutor, argv, io);
}
