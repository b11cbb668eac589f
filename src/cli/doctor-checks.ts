/** The checks of `agent-runner doctor` beyond the executor's (executor-checks.ts): containment, token, coordinator, directories, ports. */
import { existsSync, mkdtempSync, rmdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RunnerConfig } from "../config/runner-config.ts";
import { ClientCredentialsAuth, noAuth, type TokenSource, tokenUrl } from "../coordinator/auth.ts";
import { CoordinatorClient } from "../coordinator/client.ts";
import { CoordinatorHttp } from "../coordinator/http.ts";
import { describeContainment, detectContainment } from "../process/containment.ts";
import { coordinatorDetail } from "../protocol/error-detail.ts";
import { RunTokens } from "../protocol/run-tokens.ts";
import { messageOf } from "../shared/errors.ts";

import type { CheckResult } from "./executor-checks.ts";

const COORDINATOR_TIMEOUT_MS = 10_000;

/**
 * What keeps each run's processes within the run here (process/containment.ts): a cgroup per run
 * where cgroups are delegated to the runner, else the runner as child subreaper. Neither: an agent
 * that leaves its process group (setsid, a double fork) could outlive its run.
 */
export function checkContainment(): CheckResult {
  const found = detectContainment();
  return { ok: found.cgroups !== undefined || found.subreaper, detail: describeContainment(found) };
}

/** With AUTH0_* set, a token from the token endpoint; the source is kept for the coordinator check. */
export async function checkToken(config: RunnerConfig): Promise<{ result: CheckResult; source?: TokenSource }> {
  if (!config.auth) return { result: { ok: true, detail: "no AUTH0_* variables set: requests carry no token" } };
  const source = new ClientCredentialsAuth(config.auth);
  try {
    await source.authorization();
  } catch (error) {
    return { result: { ok: false, detail: messageOf(error) } };
  }
  return { result: { ok: true, detail: `obtained from ${tokenUrl(config.auth.domain)}` }, source };
}

/**
 * The coordinator answers a harmless read (`GET /agents`, which the MCP tools use too) with the
 * runner's token: reachable, the right URL, and the token accepted. Nothing is registered.
 */
export async function checkCoordinator(config: RunnerConfig, token: TokenSource | undefined): Promise<CheckResult> {
  const tokenFailed = config.auth !== undefined && token === undefined;
  const http = new CoordinatorHttp(config.coordinatorUrl, token ?? noAuth);
  let response: Response;
  try {
    response = await http.fetch("/agents", { timeoutMs: COORDINATOR_TIMEOUT_MS });
  } catch (error) {
    return { ok: false, detail: `cannot reach ${config.coordinatorUrl}: ${messageOf(error)}` };
  }
  const { status } = response;
  const detail = coordinatorDetail(await response.text()) ?? "(no body)";
  if (response.ok) {
    return {
      ok: true,
      detail: `${config.coordinatorUrl} answers GET /agents (HTTP ${status}); ${await protocolOf(config, http)}`,
    };
  }
  if (tokenFailed) {
    return {
      ok: true,
      detail: `${config.coordinatorUrl} is reachable (HTTP ${status} to GET /agents without a token; see the token check)`,
    };
  }
  if (status === 401 || status === 403) {
    const what = config.auth ? "this runner's token" : "requests without a token (set the four AUTH0_* variables)";
    return { ok: false, detail: `${config.coordinatorUrl} refuses ${what}: HTTP ${status} to GET /agents: ${detail}` };
  }
  return {
    ok: false,
    detail: `${config.coordinatorUrl} answered HTTP ${status} to GET /agents: ${detail} (is this the coordinator's URL?)`,
  };
}

/** Which protocol generation the runner will speak with the coordinator, and how it knows. */
async function protocolOf(config: RunnerConfig, http: CoordinatorHttp): Promise<string> {
  if (config.coordinatorProtocol !== "auto")
    return `protocol ${config.coordinatorProtocol} (pinned by --coordinator-protocol)`;
  try {
    const generation = await new CoordinatorClient(http).detectGeneration(AbortSignal.timeout(COORDINATOR_TIMEOUT_MS));
    return `speaks protocol ${generation} (detected)`;
  } catch (error) {
    return `its protocol generation could not be asked: ${messageOf(error)}`;
  }
}

/** A directory the runner writes to: writable, or creatable if it does not exist yet. */
export function checkDirectory(path: string): CheckResult {
  let existing = path;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) return { ok: false, detail: `${path}: ${existing} is not a directory` };
  try {
    // Trying is the only sure test: permission bits say nothing of read-only mounts or root.
    rmdirSync(mkdtempSync(join(existing, ".agent-runner-doctor-")));
  } catch (error) {
    return { ok: false, detail: `${path} is not writable: ${messageOf(error)}` };
  }
  return {
    ok: true,
    detail: existing === path ? `${path} is writable` : `${path} does not exist yet and can be created`,
  };
}

/** `--health-addr` and `--mcp-port`, when set, can be bound (bound and released at once). */
export async function checkPorts(config: RunnerConfig): Promise<Array<[string, CheckResult]>> {
  const results: Array<[string, CheckResult]> = [];
  if (config.healthAddr) {
    const { startHealthServer } = await import("../runner/health-server.ts");
    try {
      const server = startHealthServer({ addr: config.healthAddr, profile: "doctor" });
      await server.stop();
      results.push(["health address", { ok: true, detail: `${server.url} can be served` }]);
    } catch (error) {
      results.push(["health address", { ok: false, detail: messageOf(error) }]);
    }
  }
  if (config.mcpPort) {
    const { startMcpServer } = await import("../mcp/server.ts");
    try {
      const server = await startMcpServer({
        coordinator: new CoordinatorHttp(config.coordinatorUrl),
        port: config.mcpPort,
        tokens: new RunTokens(),
      });
      await server.stop();
      results.push(["mcp port", { ok: true, detail: `${server.url} can be served` }]);
    } catch (error) {
      results.push(["mcp port", { ok: false, detail: messageOf(error) }]);
    }
  }
  return results;
}
