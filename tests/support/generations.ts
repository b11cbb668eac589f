/** The two coordinator protocol generations for parametrized tests, and what each calls for from the runner. */
import type { ExecutorProfile } from "../../src/config/profiles.ts";
import type { FakeCoordinator, Protocol } from "./fake-coordinator.ts";
import { fixtureProfile } from "./runner-harness.ts";

export const GENERATIONS = ["2.1", "2.2"] as const satisfies readonly Protocol[];
export type Generation = (typeof GENERATIONS)[number];

/** The `completed` report's body: at 2.2 it says how the session stands (`finished` for a one-shot executor). */
export function completedBody(generation: Generation, sessionStatus: "idle" | "finished" = "finished") {
  return generation === "2.1"
    ? { runner_id: "lnch_test", status: "success" }
    : { runner_id: "lnch_test", status: "success", session_status: sessionStatus };
}

/**
 * The invocation an executor gets for a prompt: 2.1 carries it as `prompt`, 2.2 as
 * `parameters: {prompt}`; the other fields (mode, session, project dir, …) as given.
 */
export function invocationFor(generation: Generation, prompt: string, fields: Record<string, unknown>) {
  const { mode, session_id, ...rest } = fields;
  return generation === "2.1"
    ? { schema_version: "2.1", mode, session_id, prompt, ...rest }
    : { schema_version: "2.2", mode, session_id, ...rest, parameters: { prompt } };
}

/**
 * Asks the coordinator to stop a run handed to the runner, as each generation tells the runner:
 * 2.1 `{"stop_runs": [run]}`, 2.2 `{"stop_sessions": [its session]}` (a stop requested from outside).
 */
export function stopRun(fake: FakeCoordinator, runId: string): void {
  if (fake.protocol === "2.1") fake.handStop([runId]);
  else {
    const answer = fake.requestStop(runId);
    if (answer.body?.status !== "stopping") throw new Error(`stop of ${runId}: ${JSON.stringify(answer.body)}`);
  }
}

/** A profile for the persistent fixture executor (tests/fixtures/executors/persistent), `lifecycle: persistent`. */
export function persistentProfile(): ExecutorProfile {
  return { ...fixtureProfile("persistent"), lifecycle: "persistent" };
}
