/** The signal that ended a stopped executor: what the process module sends and a `stopped` report names. */
export type StopSignal = "SIGTERM" | "SIGKILL";
