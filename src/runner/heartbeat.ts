/** Heartbeats to the coordinator, so it does not take a live (or draining) runner for dead. */
import type { CoordinatorClient } from "../coordinator/client.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";

export class Heartbeat {
  private timer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly client: Pick<CoordinatorClient, "heartbeat">,
    /** The coordinator answered that it does not know this runner. */
    private readonly onForgotten: () => void,
    /** A heartbeat failed (unreachable, or an error answer); the next one goes at its time. */
    private readonly onFailure: () => void = () => {},
  ) {}

  start(intervalSeconds: number): void {
    this.timer = setTimeout(async () => {
      try {
        if (!(await this.client.heartbeat())) {
          log.warn("Heartbeat: the coordinator does not know this runner any more; registering again");
          this.onForgotten();
        }
      } catch (error) {
        this.onFailure();
        log.warn(`Heartbeat failed: ${messageOf(error)}`);
      }
      if (this.timer) this.start(intervalSeconds);
    }, intervalSeconds * 1000);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
