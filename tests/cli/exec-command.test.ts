import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pkg from "../../package.json" with { type: "json" };
import { LocalGateway } from "../../src/exec/local-gateway.ts";
import { buildInvocation } from "../../src/protocol/invocation.ts";
import { formatUsd } from "../../src/protocol/usage.ts";
import { CLAUDE_CODE_BINARY, offlineClaudeEnv } from "../support/claude-code.ts";
import { type FakeAnthropic, startFakeAnthropic } from "../support/fake-anthropic.ts";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const INDEX = join(REPO_ROOT, "index.ts");
const temp = new TempDirs();
let api: FakeAnthropic;

beforeAll(() => {
  api = startFakeAnthropic((request) => ({ text: `fake answer from ${request.body.model}` }));
});
afterAll(async () => {
  await api.stop();
  temp.cleanup();
});

function exec(
  args: string[],
  options: { env?: Record<string, string | undefined>; cwd?: string; stdin?: string } = {},
) {
  return runProcess([process.execPath, INDEX, "exec", ...args], {
    cwd: options.cwd ?? temp.make(),
    env: options.env ?? cleanEnv(),
    stdin: options.stdin,
  });
}

/** Claude Code pointed at the fake API, isolated from this machine's settings and credentials. */
function claudeEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const home = temp.make("ar-cli-home-");
  return cleanEnv({ ...offlineClaudeEnv(home, api.url, join(home, ".claude")), ...extra });
}

/** A profiles dir with a `dump` profile whose executor writes what it was given to $DUMP_FILE. */
function dumpProfilesDir(config: Record<string, unknown>): string {
  const dir = temp.make("ar-cli-profiles-");
  const script = join(dir, "dump-exec");
  writeFileSync(
    script,
    `#!/usr/bin/env bun
const stdin = await Bun.stdin.text();
await Bun.write(process.env.DUMP_FILE, JSON.stringify({ stdin, session: process.env.AGENT_SESSION_ID, api: process.env.AGENT_ORCHESTRATOR_API_URL }));
if (process.env.DUMP_HANG) {
  await fetch(process.env.AGENT_ORCHESTRATOR_API_URL + "/bind", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ session_id: process.env.AGENT_SESSION_ID, executor_session_id: "hanging" }) });
  await new Promise(() => setInterval(() => {}, 1000));
}
console.log("dump result");
process.exit(Number(process.env.DUMP_EXIT ?? 0));
`,
  );
  chmodSync(script, 0o755);
  writeFileSync(join(dir, "dump.json"), JSON.stringify({ type: "dump", command: script, config }));
  return dir;
}

describe("agent-runner exec with the test profile", () => {
  test("shows the events as they arrive, prints the result on stdout, exits 0", async () => {
    const state = temp.make();
    const project = temp.make();
    const outcome = await exec([
      "--profile",
      "test",
      "--prompt",
      "hello",
      "--project-dir",
      project,
      "--state-dir",
      state,
      "--session-id",
      "ses_cli0",
    ]);
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hello\n");
    const lines = outcome.stderr.split("\n");
    const order = ["bind", "user", "assistant", "session_stop"].map((label) =>
      lines.findIndex((l) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d  ${label} `).test(l)),
    );
    expect(order.every((index) => index >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(outcome.stderr).toContain(`bind           executor session `);
    expect(outcome.stderr).toContain(`in ${project}`);
    expect(outcome.stderr).toContain("user           hello");
    expect(outcome.stderr).toContain("session_stop   exit 0 (completed)");
    expect(outcome.stderr).toContain(
      `agent-runner exec --profile test --state-dir ${state} --resume --session-id ses_cli0`,
    );
    expect(readdirSync(state)).toEqual(["ses_cli0.json"]);
  });

  test("--json: one JSON object per line on stdout, the result last", async () => {
    const outcome = await exec([
      "--profile",
      "test",
      "--prompt",
      "hi json",
      "--json",
      "--session-id",
      "ses_json",
      "--state-dir",
      temp.make(),
    ]);
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    const lines = outcome.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map((l) => l.kind)).toEqual(["bind", "event", "event", "event", "event", "result"]);
    expect(lines[1].body).toMatchObject({
      event_type: "message",
      role: "user",
      content: [{ type: "text", text: "hi json" }],
    });
    expect(lines[3].body).toMatchObject({ event_type: "result", result_text: "[TEST-EXECUTOR] Received: hi json" });
    expect(lines[4].body).toMatchObject({ event_type: "session_stop", exit_code: 0 });
    expect(lines.at(-1)).toEqual({
      kind: "result",
      session_id: "ses_json",
      exit_code: 0,
      result: "[TEST-EXECUTOR] Received: hi json",
      duration_s: expect.any(Number),
    });
  });

  test("--resume continues a session an earlier exec recorded", async () => {
    const state = temp.make();
    const project = temp.make();
    const started = await exec([
      "--profile",
      "test",
      "--prompt",
      "one",
      "--session-id",
      "ses_res",
      "--state-dir",
      state,
      "-p",
      project,
    ]);
    expect(started.exitCode, started.stderr).toBe(0);
    const first = JSON.parse(readFileSync(join(state, "ses_res.json"), "utf8"));

    const resumed = await exec([
      "--profile",
      "test",
      "--prompt",
      "two",
      "--resume",
      "--session-id",
      "ses_res",
      "--state-dir",
      state,
    ]);
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe("[TEST-EXECUTOR] Received: two\n");
    expect(resumed.stderr).toContain("GET /sessions/ses_res → 200");
    expect(resumed.stderr).toContain("session_start  resumed");
    expect(resumed.stderr).toContain("metadata       last_resumed_at=");
    expect(resumed.stderr).toContain(`Resuming session ses_res with profile 'test' in ${project}`);
    const second = JSON.parse(readFileSync(join(state, "ses_res.json"), "utf8"));
    expect(second).toMatchObject({
      executor_session_id: first.executor_session_id,
      project_dir: project,
      status: "finished",
      result: "[TEST-EXECUTOR] Received: two",
    });
    expect(second.last_resumed_at).toBeString();
  });

  test("the command it suggests for continuing the session works as printed", async () => {
    const profiles = temp.make("ar-cli-profiles-");
    writeFileSync(
      join(profiles, "mine.json"),
      JSON.stringify({ type: "test", command: join(REPO_ROOT, "executors/test-executor/ao-test-exec") }),
    );
    const state = join(temp.make(), "state dir's");
    const started = await exec([
      "--profile",
      "mine",
      "--profiles-dir",
      profiles,
      "--state-dir",
      state,
      "--prompt",
      "one",
    ]);
    expect(started.exitCode, started.stderr).toBe(0);
    const suggested = /Continue it with: agent-runner (exec .*)$/m.exec(started.stderr)?.[1];
    expect(suggested).toContain("--resume --session-id ses_");
    const line = suggested!.replace("'…'", "'two'");
    const resumed = await runProcess(["bash", "-c", `"$0" "$1" ${line}`, process.execPath, INDEX], {
      cwd: temp.make(),
      env: cleanEnv(),
    });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(resumed.stdout).toBe("[TEST-EXECUTOR] Received: two\n");
  });

  test("--resume of a session nobody recorded: the executor's failure and exit code", async () => {
    const outcome = await exec([
      "--profile",
      "test",
      "--prompt",
      "x",
      "--resume",
      "--session-id",
      "ses_ghost",
      "--state-dir",
      temp.make(),
    ]);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stdout).toBe("");
    expect(outcome.stderr).toContain("No session 'ses_ghost' recorded");
    expect(outcome.stderr).toContain("GET /sessions/ses_ghost → 404 Session not found");
    expect(outcome.stderr).toContain("ao-test-exec: Cannot resume session 'ses_ghost'");
    expect(outcome.stderr).toContain("Executor exited with code 1");
  });

  test("-v passes debug on to the executor", async () => {
    const outcome = await exec(["--profile", "test", "--prompt", "x", "-v", "--state-dir", temp.make()]);
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stderr).toContain("ao-test-exec: debug: invocation mode=start");
  });
});

describe("agent-runner exec: the invocation, blueprint and exit code", () => {
  test("builds the invocation from the profile as the runner does, with the blueprint file", async () => {
    const config = { model: "opus", permission_mode: "plan" };
    const profilesDir = dumpProfilesDir(config);
    const blueprintFile = join(temp.make(), "agent.json");
    const blueprint = { name: "helper", system_prompt: "Help.", mcp_servers: {} };
    writeFileSync(blueprintFile, JSON.stringify({ agent: blueprint }));
    const project = temp.make();
    const dumpFile = join(temp.make(), "dump.json");
    const outcome = await exec(
      [
        "--profile",
        "dump",
        "--profiles-dir",
        profilesDir,
        "--prompt",
        "task",
        "--session-id",
        "ses_dump",
        "--blueprint",
        blueprintFile,
        "--project-dir",
        project,
        "--state-dir",
        temp.make(),
      ],
      { env: cleanEnv({ DUMP_FILE: dumpFile }) },
    );
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stdout).toBe("dump result\n");
    const dump = JSON.parse(readFileSync(dumpFile, "utf8"));
    expect(JSON.parse(dump.stdin)).toEqual(
      buildInvocation({
        schemaVersion: "2.2",
        mode: "start",
        sessionId: "ses_dump",
        parameters: { prompt: "task" },
        projectDir: project,
        agentBlueprint: blueprint,
        executorConfig: config,
      }),
    );
    expect(dump.session).toBe("ses_dump");
    // The local gateway's URL, with the run's own token.
    expect(dump.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/agrun_[\w-]{43}$/);
  });

  test("exits with the executor's exit code", async () => {
    const outcome = await exec(
      ["--profile", "dump", "--profiles-dir", dumpProfilesDir({}), "--prompt", "x", "--state-dir", temp.make()],
      {
        env: cleanEnv({ DUMP_FILE: join(temp.make(), "d.json"), DUMP_EXIT: "4" }),
      },
    );
    expect(outcome.exitCode).toBe(4);
    expect(outcome.stdout).toBe("dump result\n");
    expect(outcome.stderr).toContain("Executor exited with code 4");
  });

  test("Ctrl-C (SIGINT) stops the executor with SIGTERM, as the runner stops a run", async () => {
    const proc = Bun.spawn(
      [
        process.execPath,
        INDEX,
        "exec",
        "--profile",
        "dump",
        "--profiles-dir",
        dumpProfilesDir({}),
        "--prompt",
        "x",
        "--state-dir",
        temp.make(),
      ],
      {
        cwd: temp.make(),
        env: cleanEnv({ DUMP_FILE: join(temp.make(), "d.json"), DUMP_HANG: "1" }),
        stdout: "pipe",
        stderr: "pipe",
        timeout: 30_000,
      },
    );
    // Wait for the executor's bind to be shown: it is running and will not end by itself.
    // (stderr is read to its end: exec still writes to it after the signal.)
    let stderr = "";
    let bound!: () => void;
    const isBound = new Promise<void>((resolve) => (bound = resolve));
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of proc.stderr) {
        stderr += decoder.decode(chunk);
        if (stderr.includes("executor session hanging")) bound();
      }
    })();
    await isBound;
    proc.kill("SIGINT");
    expect(await proc.exited).toBe(143);
    await reading;
    expect(stderr).toContain("Executor ended by SIGTERM");
  });

  test("without --profile: the default Claude Code executor (against the fake API)", async () => {
    const outcome = await exec(["--prompt", "hi there", "--state-dir", temp.make()], { env: claudeEnv() });
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stdout).toMatch(/^fake answer from \S+\n$/);
    expect(outcome.stderr).toContain("with profile 'claude-code'");
    expect(outcome.stderr).toContain("user           hi there");
    expect(outcome.stderr).toContain("session_stop   exit 0 (completed)");
  }, 60_000);
});

describe("agent-runner exec: what the run used", () => {
  test("Claude Code's usage event shows as it comes; the summary says how long, turns, tokens and cost; a resume counts only its own cost", async () => {
    const state = temp.make();
    const env = claudeEnv();
    const first = await exec(["--prompt", "count me", "--session-id", "ses_cost", "--state-dir", state], { env });
    expect(first.exitCode, first.stderr).toBe(0);
    // The session's running total as exec recorded it, from the usage event.
    const recorded = () => JSON.parse(readFileSync(join(state, "ses_cost.json"), "utf8")).total_cost_usd as number;
    const firstTotal = recorded();
    expect(firstTotal).toBeGreaterThan(0);
    // The fake API's reply: 42 input and 17 output tokens.
    expect(first.stderr).toContain(`usage          1 turn, 59 tokens; the session so far ${formatUsd(firstTotal)}\n`);
    expect(first.stderr).toMatch(
      new RegExp(`Session ses_cost done in [\\d.]+ s, 1 turn, 59 tokens, \\${formatUsd(firstTotal)}\\. Continue`),
    );

    const resumed = await exec(["--prompt", "again", "--resume", "--session-id", "ses_cost", "--state-dir", state], {
      env,
    });
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    // Claude Code's running total goes on from the first run's; the summary is this run's own share.
    const secondTotal = recorded();
    expect(secondTotal).toBeCloseTo(2 * firstTotal, 12);
    expect(resumed.stderr).toContain(`the session so far ${formatUsd(secondTotal)}\n`);
    expect(resumed.stderr).toMatch(
      new RegExp(
        `Session ses_cost done in [\\d.]+ s, 1 turn, 59 tokens, \\${formatUsd(secondTotal - firstTotal)}\\. Continue`,
      ),
    );
  }, 60_000);

  test("--json: the result line carries the run's duration and usage, the numbers of the usage event unchanged", async () => {
    const outcome = await exec(["--prompt", "count me", "--json", "--state-dir", temp.make()], { env: claudeEnv() });
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    const lines = outcome.stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    const usage = lines.find((line) => line.kind === "event" && line.body.event_type === "usage").body.usage;
    const result = lines.at(-1);
    expect(result.kind).toBe("result");
    expect(result.duration_s).toBeGreaterThan(0);
    expect(result.usage).toEqual({
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      cache_read_input_tokens: usage.cache_read_input_tokens,
      cache_creation_input_tokens: usage.cache_creation_input_tokens,
      cost_usd: usage.total_cost_usd,
      num_turns: usage.num_turns,
    });
    expect(usage.total_cost_usd).toBeGreaterThan(0);
  }, 60_000);

  test("an executor without usage events: the summary says how long it took", async () => {
    const outcome = await exec(["--profile", "test", "--prompt", "hi", "--state-dir", temp.make()]);
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stderr).toMatch(/Session ses_\w+ done in [\d.]+ s\. Continue it with/);
  });
});

describe("agent-runner exec: invocation 2.2 and the result event", () => {
  test("an executor that answers only with a result event (nothing on stdout): exec prints that result", async () => {
    const profiles = temp.make("ar-cli-profiles-");
    const script = join(profiles, "result-only");
    writeFileSync(
      script,
      `#!/usr/bin/env bun
const invocation = JSON.parse(await Bun.stdin.text());
const post = (path, body) => fetch(process.env.AGENT_ORCHESTRATOR_API_URL + path, { method: "POST",
  headers: { "content-type": "application/json" }, body: JSON.stringify({ session_id: invocation.session_id, ...body }) });
await post("/bind", { executor_session_id: "r-1" });
await post("/events", { event_type: "message", role: "assistant", content: [{ type: "text", text: "thinking about " + invocation.parameters.prompt }] });
await post("/events", { event_type: "result", result_text: null, result_data: { verdict: "sound", asked: invocation.parameters.prompt } });
`,
    );
    chmodSync(script, 0o755);
    writeFileSync(join(profiles, "result-only.json"), JSON.stringify({ type: "result-only", command: script }));
    const args = ["--profile", "result-only", "--profiles-dir", profiles, "--prompt", "judge"];
    const plain = await exec([...args, "--state-dir", temp.make()]);
    expect(plain.exitCode, plain.stderr).toBe(0);
    expect(plain.stdout).toBe('{"verdict":"sound","asked":"judge"}\n');
    expect(plain.stderr).toContain('result         {"verdict":"sound","asked":"judge"}');
    const json = await exec([...args, "--state-dir", temp.make(), "--json"]);
    expect(JSON.parse(json.stdout.trim().split("\n").at(-1)!)).toMatchObject({
      kind: "result",
      exit_code: 0,
      result: '{"verdict":"sound","asked":"judge"}',
      result_data: { verdict: "sound", asked: "judge" },
    });
  });

  test("a blueprint with an output_schema: Claude Code answers with structured output, and exec shows it", async () => {
    const schema = {
      type: "object",
      properties: { verdict: { type: "string" }, score: { type: "number" } },
      required: ["verdict", "score"],
    };
    api.respond((request) => {
      const tool = (request.body.tools ?? []).find((t: { name: string }) => t.name === "StructuredOutput");
      if (!tool || request.toolResults.length > 0) return undefined;
      return { toolUse: { name: tool.name, input: { verdict: "sound", score: 4 } } };
    });
    const blueprint = join(temp.make(), "judge.json");
    writeFileSync(blueprint, JSON.stringify({ name: "judge", output_schema: schema }));
    const outcome = await exec(
      ["--prompt", "judge this", "--blueprint", blueprint, "--state-dir", temp.make(), "--json"],
      { env: claudeEnv() },
    );
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    const lines = outcome.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.find((line) => line.body?.event_type === "result")?.body).toMatchObject({
      result_text: null,
      result_data: { verdict: "sound", score: 4 },
    });
    expect(lines.at(-1)).toMatchObject({
      kind: "result",
      exit_code: 0,
      result_data: { verdict: "sound", score: 4 },
    });
    expect(JSON.parse(lines.at(-1).result)).toEqual({ verdict: "sound", score: 4 });
  }, 60_000);
});

describe("agent-runner exec: bad input", () => {
  const cases: Array<[string, string[], string]> = [
    ["an unknown flag", ["--profle", "test", "--prompt", "x"], "Unknown option --profle"],
    ["a removed flag", ["--executor", "x", "--prompt", "x"], "--executor has been removed"],
    ["no prompt", ["--profile", "test"], "--prompt is required"],
    ["--resume without a session", ["--profile", "test", "--prompt", "x", "--resume"], "--resume needs --session-id"],
    [
      "an unknown profile",
      ["--profile", "nonexistent", "--prompt", "x"],
      "Profile 'nonexistent' not found. Available: coding, coding-sandboxed, research, supervised, test",
    ],
    [
      "a project dir that does not exist",
      ["--profile", "test", "--prompt", "x", "-p", "/nonexistent/p"],
      "--project-dir '/nonexistent/p': directory /nonexistent/p does not exist",
    ],
    [
      "a session id with a path in it",
      ["--profile", "test", "--prompt", "x", "--session-id", "../x"],
      "Invalid session id '../x'",
    ],
    [
      "a blueprint file that is missing",
      ["--profile", "test", "--prompt", "x", "--blueprint", "/nonexistent.json"],
      "--blueprint /nonexistent.json: cannot read it",
    ],
  ];
  for (const [name, args, message] of cases) {
    test(`${name}: exit 1 with a message`, async () => {
      const outcome = await exec([...args, "--state-dir", temp.make()]);
      expect(outcome.exitCode).toBe(1);
      expect(outcome.stdout).toBe("");
      expect(outcome.stderr).toContain(message);
    });
  }

  test("a blueprint that is not a JSON object", async () => {
    const file = join(temp.make(), "bp.json");
    writeFileSync(file, "[1, 2]");
    const notObject = await exec([
      "--profile",
      "test",
      "--prompt",
      "x",
      "--blueprint",
      file,
      "--state-dir",
      temp.make(),
    ]);
    expect(notObject.exitCode).toBe(1);
    expect(notObject.stderr).toContain(`--blueprint ${file}: must be an object (not an array)`);
    writeFileSync(file, "{nope");
    const badJson = await exec(["--profile", "test", "--prompt", "x", "--blueprint", file, "--state-dir", temp.make()]);
    expect(badJson.exitCode).toBe(1);
    expect(badJson.stderr).toContain(`--blueprint ${file} is not valid JSON`);
  });

  test("--help describes exec", async () => {
    const outcome = await exec(["--help"]);
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toContain("--prompt");
    expect(outcome.stdout).toContain("--resume");
    expect(outcome.stdout).toContain("--interactive");
  });
});

describe("agent-runner __executor", () => {
  test("runs a built-in executor in-process (from source too)", async () => {
    const gateway = new LocalGateway().start();
    try {
      const stdin = JSON.stringify({
        schema_version: "2.1",
        mode: "start",
        session_id: "ses_in",
        prompt: "inside",
        project_dir: "/tmp",
      });
      const outcome = await runProcess([process.execPath, INDEX, "__executor", "test"], {
        stdin,
        env: cleanEnv({ AGENT_ORCHESTRATOR_API_URL: gateway.urlFor("ses_in") }),
      });
      expect(outcome.exitCode, outcome.stderr).toBe(0);
      expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: inside\n");
      expect(gateway.records.map((r) => r.kind)).toEqual(["bind", "event", "event", "event"]);
    } finally {
      await gateway.stop();
    }
  });

  test("an unknown name is refused with the known ones", async () => {
    const outcome = await runProcess([process.execPath, INDEX, "__executor", "nope"]);
    expect(outcome.exitCode).toBe(1);
    expect(outcome.stderr).toBe(
      "agent-runner __executor: unknown built-in executor 'nope' (known: claude-code, test)\n",
    );
  });
});

describe("the compiled executable alone in an empty directory", () => {
  let runDir: string;
  let binary: string;

  beforeAll(async () => {
    // The package's build script, with its output sent to a temp dir (dist/ may be in use).
    const words = pkg.scripts.build.split(/\s+/);
    const outAt = words.indexOf("--outfile");
    if (words[0] !== "bun" || words[1] !== "build" || outAt < 0)
      throw new Error(`unexpected build script: ${pkg.scripts.build}`);
    const buildDir = temp.make("ar-exec-build-");
    words[outAt + 1] = join(buildDir, "agent-runner");
    const built = await runProcess([process.execPath, ...words.slice(1)], { cwd: REPO_ROOT, timeoutMs: 120_000 });
    if (built.exitCode !== 0) throw new Error(`build failed:\n${built.stdout}\n${built.stderr}`);
    runDir = temp.make("ar-exec-empty-");
    binary = join(runDir, "agent-runner");
    copyFileSync(join(buildDir, "agent-runner"), binary);
    chmodSync(binary, 0o755);
  }, 120_000);

  test("exec --profile test runs the test executor carried inside the executable", async () => {
    const outcome = await runProcess(
      [binary, "exec", "--profile", "test", "--prompt", "hi", "--state-dir", temp.make()],
      {
        cwd: runDir,
        env: cleanEnv(),
      },
    );
    expect(outcome.exitCode, outcome.stderr).toBe(0);
    expect(outcome.stdout).toBe("[TEST-EXECUTOR] Received: hi\n");
    expect(outcome.stderr).toContain("session_stop   exit 0 (completed)");
    // Nothing beside the executable was needed (or written).
    expect(readdirSync(runDir)).toEqual(["agent-runner"]);
  });

  test("the Claude Code executor inside the executable needs CLAUDE_CODE_EXECUTABLE, and works with it", async () => {
    const state = temp.make();
    const without = await runProcess([binary, "exec", "--prompt", "hi", "--state-dir", state], {
      cwd: runDir,
      // A PATH without claude, whatever this machine has installed.
      env: claudeEnv({ PATH: temp.make("ar-exec-empty-path-") }),
    });
    expect(without.exitCode).toBe(1);
    expect(without.stderr).toContain(
      "No Claude Code binary found. Tried: CLAUDE_CODE_EXECUTABLE (not set); the Agent SDK's platform package",
    );
    expect(without.stderr).toContain("Set CLAUDE_CODE_EXECUTABLE to the path of a Claude Code executable");

    const withBinary = await runProcess([binary, "exec", "-v", "--prompt", "hi", "--state-dir", state], {
      cwd: runDir,
      env: claudeEnv({ CLAUDE_CODE_EXECUTABLE: CLAUDE_CODE_BINARY }),
    });
    expect(withBinary.exitCode, withBinary.stderr).toBe(0);
    expect(withBinary.stdout).toMatch(/^fake answer from \S+\n$/);
    // Started before the executor's modules loaded, and the one the Agent SDK used.
    expect(withBinary.stderr).toMatch(/Claude Code started early \(pid \d+\) handed to the Agent SDK/);
  }, 60_000);

  test("the executable finds Claude Code in node_modules beside it, then on PATH", async () => {
    const beside = temp.make("ar-exec-beside-");
    copyFileSync(binary, join(beside, "agent-runner"));
    chmodSync(join(beside, "agent-runner"), 0o755);
    const packageDir = join(beside, "node_modules", "@anthropic-ai", "claude-agent-sdk-linux-x64");
    mkdirSync(packageDir, { recursive: true });
    // A link, not a 380 MB copy: the lookup follows it as the SDK would.
    symlinkSync(CLAUDE_CODE_BINARY, join(packageDir, "claude"));
    const fromPackage = await runProcess(
      [join(beside, "agent-runner"), "exec", "--prompt", "hi", "--state-dir", temp.make()],
      { cwd: beside, env: claudeEnv() },
    );
    expect(fromPackage.exitCode, fromPackage.stderr).toBe(0);
    expect(fromPackage.stdout).toMatch(/^fake answer from \S+\n$/);

    const bin = temp.make("ar-exec-bin-");
    symlinkSync(CLAUDE_CODE_BINARY, join(bin, "claude"));
    const fromPath = await runProcess([binary, "exec", "--prompt", "hi", "--state-dir", temp.make()], {
      cwd: runDir,
      env: claudeEnv({ PATH: `${bin}:${process.env.PATH}` }),
    });
    expect(fromPath.exitCode, fromPath.stderr).toBe(0);
  }, 60_000);

  test("__executor claude-code --help answers from the executable", async () => {
    const outcome = await runProcess([binary, "__executor", "claude-code", "--help"], { cwd: runDir, env: cleanEnv() });
    expect(outcome.exitCode).toBe(0);
    expect(outcome.stdout).toContain("ao-claude-code-exec");
  });
});
