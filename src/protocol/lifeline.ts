/**
 * The executor's lifeline, shared by the runner (which hands it over) and the executors (which
 * watch it): a descriptor that reaches end-of-file when the process that started the executor is
 * gone, however it ended (killed, crashed, out of memory), so the executor ends itself instead of
 * running on with nobody to report to.
 */

/** Names the lifeline's descriptor number (set by the runner and by `exec`). */
export const LIFELINE_ENV = "AGENT_RUNNER_LIFELINE_FD";
