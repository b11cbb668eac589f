/**
 * The runner's registration: the first one at start, registering again when the coordinator
 * forgot the runner, and deciding when a 409 (identity already online) is this runner's own.
 */
import {
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_POLL_TIMEOUT_SECONDS,
  MAX_HEARTBEAT_INTERVAL_SECONDS,
  MAX_POLL_TIMEOUT_SECONDS,
  MIN_HEARTBEAT_INTERVAL_SECONDS,
  MIN_POLL_TIMEOUT_SECONDS,
} from "../config/defaults.ts";
import type { RunnerConfig } from "../config/runner-config.ts";
import { AuthError } from "../coordinator/auth.ts";
import {
  AuthenticationError,
  type CoordinatorClient,
  DuplicateRunnerError,
  NotACoordinatorError,
  type Registration,
} from "../coordinator/client.ts";
import { buildRegistrationPayload, type RegistrationInput } from "../coordinator/registration.ts";
import type { ProtocolGeneration } from "../protocol/generation.ts";
import { messageOf } from "../shared/errors.ts";
import { log } from "../shared/log.ts";
import { retry, seconds, type Wakeup } from "../shared/retry.ts";
import type { PreviousIncarnation } from "./run-journal.ts";

/** A fatal start-up problem: the runner cannot go on and exits 1 with this message. */
export class RunnerStartError extends Error {
  override name = "RunnerStartError";
}

export interface RegistrarOptions {
  client: CoordinatorClient;
  /** Who this runner is; the register body is written from it for the coordinator's generation. */
  registration: RegistrationInput;
  /** The coordinator's protocol generation, or `auto`: asked before each registration. */
  protocol: "auto" | ProtocolGeneration;
  coordinatorUrl: string;
  /** What a dead earlier process of this identity left in the journal: its runner id may be adopted. */
  previous?: PreviousIncarnation;
  /** Aborted when the runner is done: registering again stops. */
  lifetime: AbortSignal;
  wakeup?: Wakeup;
  retryInitialMs?: number;
  /** Called with the runner id each time one is obtained. */
  onRegistered?: (runnerId: string) => void;
  /** Called for each failed register request (it will be retried). */
  onFailure?: () => void;
  /** Registering again starts and ends (for readiness). */
  onReregistering?: (active: boolean) => void;
}

/** Failures after which a register request may have reached the coordinator and been processed. */
function outcomeUnknown(error: unknown): boolean {
  const { name, code } = (error ?? {}) as { name?: unknown; code?: unknown };
  return name === "TimeoutError" || (typeof code === "string" && /RESET|CLOSED|EPIPE/i.test(code));
}

export class Registrar {
  /** Set when the coordinator removed this runner from outside and it registered again only to deliver outcomes. */
  registeredAfterRemoval = false;
  private registering?: Promise<boolean>;
  /** Set once the generation was asked of the coordinator (not pinned). */
  private detected = false;

  constructor(private readonly options: RegistrarOptions) {}

  get runnerId(): string | undefined {
    return this.options.client.runnerId;
  }

  /** How the runner knows the coordinator's generation, for the log: "detected" or the flag that pinned it. */
  get generationSource(): string {
    return this.detected ? "detected" : "pinned by --coordinator-protocol";
  }

  /**
   * The coordinator's generation for the next register request: pinned, or asked of it. A
   * coordinator that comes back after an outage may be another version, so each attempt asks.
   */
  private async settleGeneration(signal: AbortSignal): Promise<void> {
    const { client, protocol } = this.options;
    if (protocol !== "auto") {
      client.generation = protocol;
      return;
    }
    const generation = await client.detectGeneration(signal);
    if (this.detected && generation !== client.generation) {
      log.warn(`The coordinator now speaks protocol ${generation} (it spoke ${client.generation})`);
    }
    client.generation = generation;
    this.detected = true;
  }

  /** One register request, in the generation just settled. */
  private sendRegistration(signal: AbortSignal): Promise<Registration> {
    const { client } = this.options;
    return client.register(buildRegistrationPayload(this.options.registration, client.generation), signal);
  }

  /** One registration attempt: the generation, then the register request. */
  private async registerOnce(signal: AbortSignal): Promise<Registration> {
    await this.settleGeneration(signal);
    return this.sendRegistration(signal);
  }

  /**
   * The first registration, retried while the coordinator is unreachable. A 409 is adopted only
   * for the runner id a dead earlier process of this identity had; any other 409 and refused
   * credentials are RunnerStartErrors. Resolves undefined when `signal` aborts first.
   */
  async register(signal: AbortSignal): Promise<Registration | undefined> {
    const { client, coordinatorUrl, previous } = this.options;
    try {
      const registration = await retry((attemptSignal) => this.registerOnce(attemptSignal), {
        signal,
        initialMs: this.options.retryInitialMs,
        isFatal: (error) =>
          error instanceof DuplicateRunnerError ||
          error instanceof AuthenticationError ||
          error instanceof AuthError ||
          error instanceof NotACoordinatorError,
        describeFailure: ({ message, attempt, delayMs }) => {
          this.options.onFailure?.();
          return `Cannot register with ${coordinatorUrl} (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`;
        },
      });
      if (registration) this.options.onRegistered?.(registration.runner_id);
      return registration;
    } catch (error) {
      if (!(error instanceof DuplicateRunnerError)) throw new RunnerStartError(messageOf(error));
      const held = error.existing.runner_id;
      if (!previous?.runnerId || held !== previous.runnerId) throw new RunnerStartError(duplicateMessage(error));
      // The coordinator still counts the dead process online (it goes stale only after missing
      // heartbeats): this identity is ours, so its runner id is too.
      client.runnerId = held;
      log.info(
        `Adopted runner id ${held} from the previous runner process (pid ${previous.pid}), which ended without deregistering`,
      );
      this.options.onRegistered?.(held);
      return { runner_id: held };
    }
  }

  /**
   * Registers again after the coordinator forgot this runner; one attempt sequence at a time,
   * shared by all callers, ended by the runner's lifetime. A 409 is this runner's own only when
   * an earlier request of the same sequence may have registered it (its answer was lost);
   * otherwise another runner holds the identity, and this one must not poll under its id.
   */
  reregister(removed: boolean): Promise<boolean> {
    if (!this.registering) {
      this.options.onReregistering?.(true);
      this.registering = this.registerAgain(removed).finally(() => {
        this.registering = undefined;
        this.options.onReregistering?.(false);
      });
    }
    return this.registering;
  }

  private async registerAgain(removed: boolean): Promise<boolean> {
    const { client } = this.options;
    let mayBeOurs = false;
    const registered = await retry(
      async (signal) => {
        // The probe registers nothing: only a register request whose answer was lost may have.
        await this.settleGeneration(signal);
        try {
          await this.sendRegistration(signal);
          return true;
        } catch (error) {
          if (error instanceof DuplicateRunnerError && mayBeOurs && error.existing.runner_id) {
            client.runnerId = error.existing.runner_id;
            log.info(
              `Registered again as ${client.runnerId} (the coordinator had taken an earlier attempt whose answer was lost)`,
            );
            return true;
          }
          if (outcomeUnknown(error)) mayBeOurs = true;
          throw error;
        }
      },
      {
        signal: this.options.lifetime,
        wakeup: this.options.wakeup,
        initialMs: this.options.retryInitialMs,
        describeFailure: ({ error, message, attempt, delayMs }) => {
          this.options.onFailure?.();
          return error instanceof DuplicateRunnerError
            ? `Runner id ${error.existing.runner_id ?? "?"} is held by another runner (hostname ${error.existing.hostname ?? "?"}) since the coordinator forgot this one; not polling under it. Retrying in ${seconds(delayMs)} (attempt ${attempt})`
            : `Registering again failed (attempt ${attempt}): ${message}; retrying in ${seconds(delayMs)}`;
        },
      },
    );
    if (!registered) return false;
    if (removed) this.registeredAfterRemoval = true;
    log.info(`Registered again as ${client.runnerId}${removed ? " (to deliver outcomes only)" : ""}`);
    if (client.runnerId) this.options.onRegistered?.(client.runnerId);
    this.options.wakeup?.wake();
    return true;
  }
}

/**
 * A duration the coordinator gave, kept within what the runner accepts from its own flags: above
 * them a timer could overflow, below them a millisecond (a unit mistaken) would be a busy loop.
 */
function fromCoordinator(
  name: string,
  value: number | undefined,
  bounds: { min: number; max: number },
): number | undefined {
  if (value === undefined) return value;
  if (value > bounds.max) {
    log.warn(`The coordinator's ${name} ${value} is over ${bounds.max} s; using ${bounds.max}`);
    return bounds.max;
  }
  if (value < bounds.min) {
    log.warn(`The coordinator's ${name} ${value} is below ${bounds.min} s; using ${bounds.min}`);
    return bounds.min;
  }
  return value;
}

/** How long polls are held and how often to heartbeat: the runner's flags, else the coordinator's word, bounded. */
export function coordinatorTiming(
  config: Pick<RunnerConfig, "pollTimeoutSeconds" | "heartbeatIntervalSeconds">,
  registration: Registration,
): { holdSeconds: number; heartbeatSeconds: number } {
  const { poll_timeout_seconds: hold, heartbeat_interval_seconds: beat } = registration;
  return {
    holdSeconds:
      config.pollTimeoutSeconds ??
      fromCoordinator("poll_timeout_seconds", hold, { min: MIN_POLL_TIMEOUT_SECONDS, max: MAX_POLL_TIMEOUT_SECONDS }) ??
      DEFAULT_POLL_TIMEOUT_SECONDS,
    heartbeatSeconds:
      config.heartbeatIntervalSeconds ??
      fromCoordinator("heartbeat_interval_seconds", beat, {
        min: MIN_HEARTBEAT_INTERVAL_SECONDS,
        max: MAX_HEARTBEAT_INTERVAL_SECONDS,
      }) ??
      DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  };
}

function duplicateMessage(error: DuplicateRunnerError): string {
  const { existing } = error;
  return [
    "A runner with this identity is already online at the coordinator.",
    "",
    `  runner id:   ${existing.runner_id ?? "unknown"}`,
    `  hostname:    ${existing.hostname ?? "unknown"}`,
    `  project dir: ${existing.project_dir ?? "unknown"}`,
    `  profile:     ${existing.executor_profile ?? "unknown"}`,
    "",
    "A runner's identity is (hostname, project dir, profile). Stop the other runner, or start this",
    "one with another --project-dir or --profile. If the other runner died on another machine, wait",
    "for the coordinator to notice its missing heartbeats (about 2 minutes), then start again.",
    ...(error.message ? ["", `Coordinator: ${error.message}`] : []),
  ].join("\n");
}
