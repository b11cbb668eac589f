import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type ExecutorProfile, loadProfile } from "../../src/config/profiles.ts";
import type { GatewayRecord } from "../../src/exec/local-gateway.ts";
import { runLocal } from "../../src/exec/run-local.ts";
import { buildInvocation } from "../../src/protocol/invocation.ts";
import { cleanEnv, TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/**
 * An executor that writes what it was given (stdin, cwd, gateway env) to $DUMP_FILE, binds through
 * the gateway, prints "dumped" and exits with $DUMP_EXIT; with DUMP_HANG=1 it waits, after binding, to be stopped.
 */
function dumpExecutor(): string {
  const path = join(temp.make("ar-dump-"), "dump-exec");
  writeFileSync(
    path,
    `#!/usr/bin/env bun
const stdin = await Bun.stdin.text();
const env = process.env;
await Bun.write(env.DUMP_FILE, JSON.stringify({ stdin, cwd: process.cwd(), api: env.AGENT_ORCHESTRATOR_API_URL, session: env.AGENT_SESSION_ID, secret: env.AUTH0_RUNNER_CLIENT_SECRET ?? null }));
await fetch(env.AGENT_ORCHESTRATOR_API_URL + "/bind", { method: "POST", headers: { "content-type": "application/json" },
  body: JSON.stringify({ session_id: env.AGENT_SESSION_ID, executor_session_id: "dump-1", project_dir: process.cwd() }) });
if (env.DUMP_HANG) await new Promise(() => setInterval(() => {}, 1000));
console.log("dumped");
process.exit(Number(env.DUMP_EXIT ?? 0));
`,
  );
  chmodSync(path, 0o755);
  return path;
}

function profileFor(argv: string[], config: Record<string, unknown> = {}): ExecutorProfile {
  return { name: "dump", type: "dump", command: argv[0]!, config, lifecycle: "one_shot", source: "test", argv };
}

describe("runLocal", () => {
  test("hands the executor the invocation the runner would build, and the gateway env", async () => {
    const project = temp.make();
    const dumpFile = join(temp.make(), "dump.json");
    const config = { model: "opus", permission_mode: "plan" };
    const blueprint = { name: "agent-x", system_prompt: "Be brief." };
    const records: GatewayRecord[] = [];
    const outcome = await runLocal({
      stopGraceMs: 5000,
      profile: profileFor([dumpExecutor()], config),
      mode: "start",
      sessionId: "ses_run1",
      prompt: "do the thing",
      projectDir: project,
      agentBlueprint: blueprint,
      onRecord: (record) => records.push(record),
      env: cleanEnv({ DUMP_FILE: dumpFile, AUTH0_RUNNER_CLIENT_SECRET: "not-for-agents" }),
    });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("dumped\n");
    const dump = JSON.parse(readFileSync(dumpFile, "utf8"));
    // As under the runner, the executor (an AI agent) never gets the client secret.
    expect(dump.secret).toBeNull();
    const expected = buildInvocation({
      schemaVersion: "2.2",
      mode: "start",
      sessionId: "ses_run1",
      parameters: { prompt: "do the thing" },
      projectDir: project,
      agentBlueprint: blueprint,
      executorConfig: config,
    });
    expect(JSON.parse(dump.stdin)).toEqual(expected);
    expect(outcome.invocation).toEqual(expected);
    expect(dump.cwd).toBe(project);
    expect(dump.session).toBe("ses_run1");
    expect(dump.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/agrun_[\w-]{43}$/);
    expect(records.map((r) => r.kind)).toEqual(["bind"]);
    expect(outcome.session).toMatchObject({
      session_id: "ses_run1",
      executor_session_id: "dump-1",
      executor_profile: "dump",
      status: "running",
    });
    // The gateway is gone once the run is over.
    expect(
      await fetch(`${dump.api}/sessions/ses_run1`).then(
        () => "answered",
        () => "closed",
      ),
    ).toBe("closed");
  });

  test("a profile without config sends no executor_config; resume sends no project_dir", async () => {
    const dumpFile = join(temp.make(), "dump.json");
    const outcome = await runLocal({
      stopGraceMs: 5000,
      profile: profileFor([dumpExecutor()]),
      mode: "resume",
      sessionId: "ses_run2",
      prompt: "again",
      projectDir: temp.make(),
      env: cleanEnv({ DUMP_FILE: dumpFile }),
    });
    expect(outcome.exitCode).toBe(0);
    expect(JSON.parse(JSON.parse(readFileSync(dumpFile, "utf8")).stdin)).toEqual({
      schema_version: "2.2",
      mode: "resume",
      session_id: "ses_run2",
      parameters: { prompt: "again" },
    });
  });

  test("the executor's exit code is the run's", async () => {
    const outcome = await runLocal({
      stopGraceMs: 5000,
      profile: profileFor([dumpExecutor()]),
      mode: "start",
      sessionId: "ses_run3",
      prompt: "x",
      projectDir: temp.make(),
      env: cleanEnv({ DUMP_FILE: join(temp.make(), "d.json"), DUMP_EXIT: "3" }),
    });
    expect(outcome.exitCode).toBe(3);
    expect(outcome.signal).toBeUndefined();
  });

  test("aborting stops the executor with SIGTERM", async () => {
    const dumpFile = join(temp.make(), "d.json");
    const stop = new AbortController();
    const running = runLocal({
      stopGraceMs: 5000,
      profile: profileFor([dumpExecutor()]),
      mode: "start",
      sessionId: "ses_run4",
      prompt: "x",
      projectDir: temp.make(),
      env: cleanEnv({ DUMP_FILE: dumpFile, DUMP_HANG: "1" }),
      onRecord: (record) => {
        // Bound: the executor is up and waiting to be stopped.
        if (record.kind === "bind") stop.abort();
      },
      signal: stop.signal,
    });
    const outcome = await running;
    expect(outcome.signal).toBe("SIGTERM");
    expect(outcome.exitCode).toBe(143);
  });

  test("with the built-in test profile: the whole protocol through the local gateway", async () => {
    const outcome = await runLocal({
      stopGraceMs: 5000,
      profile: loadProfile("test"),
      mode: "start",
      sessionId: "ses_run5",
      prompt: "ping",
      projectDir: temp.make(),
      env: cleanEnv(),
    });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: ping\n");
    expect(outcome.records.map((r) => (r.body as { event_type?: string }).event_type ?? r.kind)).toEqual([
      "bind",
      "message",
      "message",
      "result",
      "session_stop",
    ]);
    expect(outcome.session).toMatchObject({
      status: "finished",
      result: "[TEST-EXECUTOR] Received: ping",
      result_text: "[TEST-EXECUTOR] Received: ping",
      result_data: null,
      executor_profile: "test",
    });
    expect(outcome.result).toBe("[TEST-EXECUTOR] Received: ping");
  });
});
