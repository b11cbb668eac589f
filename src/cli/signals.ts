/** How exec takes signals: a handler while its work runs, and after it a quiet one while it prints and exits. */
import { signalExitCode } from "../exec/run-local.ts";

/**
 * The signals that ask exec to stop: Ctrl+C, SIGTERM and SIGHUP (its terminal gone). Each is
 * handled while exec works: ended by a default action, exec would leave its executor, in a process
 * group of its own, running.
 */
export const STOP_SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * Runs `work` with `onSignal` taking `signals`. Once the work is over, a signal that arrives late
 * (sent as the executor ended, handled after) must not end exec by the default action: that would
 * exit 130 with the outcome unprinted. So the first late one is ignored; a second exits at once.
 */
export async function withSignals<T>(
  signals: NodeJS.Signals[],
  onSignal: (signal: NodeJS.Signals) => void,
  work: () => Promise<T>,
): Promise<T> {
  for (const signal of signals) process.on(signal, onSignal);
  try {
    return await work();
  } finally {
    let late = false;
    const afterWork = (signal: NodeJS.Signals) => {
      if (late) process.exit(signalExitCode(signal));
      late = true;
    };
    for (const signal of signals) {
      process.off(signal, onSignal);
      process.on(signal, afterWork);
    }
  }
}
