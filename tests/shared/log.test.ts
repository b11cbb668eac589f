import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanEnv, runProcess } from "../support/processes.ts";

const WRITER = join(import.meta.dir, "..", "fixtures", "log", "write-log.ts");

interface Spec {
  format?: "auto" | "text" | "json";
  verbose?: boolean;
  secrets?: string[];
  context?: Record<string, string>;
  calls: Array<{ type: string; args?: unknown[]; message?: string; fields?: Record<string, string> }>;
}

/** What the logger writes to stderr (a pipe, as under systemd or in a container) for these calls. */
async function logged(spec: Spec): Promise<string[]> {
  const outcome = await runProcess([process.execPath, WRITER], { stdin: JSON.stringify(spec), env: cleanEnv() });
  expect(outcome.exitCode, outcome.stderr).toBe(0);
  expect(outcome.stdout).toBe("");
  return outcome.stderr.replace(/\n$/, "").split("\n");
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /;
const FORGED = "starting up\n2026-01-01T00:00:00.000Z INFO  forged\nboom: the agent crashed";

describe("text lines (auto off a terminal, and --log-format text)", () => {
  for (const format of [undefined, "text"] as const) {
    test(`${format ?? "auto"}: a multi-line message cannot forge log lines`, async () => {
      const lines = await logged({ format, calls: [{ type: "error", args: [`Run run_1 failed: ${FORGED}`] }] });
      expect(lines[0]).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z ERROR Run run_1 failed: starting up$/);
      // Every continuation line is indented: only the first line starts with a timestamp.
      expect(lines.slice(1)).toEqual(["    2026-01-01T00:00:00.000Z INFO  forged", "    boom: the agent crashed"]);
      expect(lines.filter((line) => TIMESTAMP.test(line))).toHaveLength(1);
    });
  }

  test("control characters from outside text are escaped: ANSI escapes, carriage returns, other C0/C1", async () => {
    const lines = await logged({
      format: "text",
      calls: [{ type: "warn", args: ["tail: \x1b[2J\x1b]0;title\x07cleared\roverwritten\x00\x85\u2028end\ttab"] }],
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEndWith("WARN  tail: \\x1b[2J\\x1b]0;title\\x07cleared\\roverwritten\\x00\\x85\\u2028end\ttab");
  });

  test("Windows line ends count as line ends, not as carriage returns", async () => {
    const lines = await logged({ format: "text", calls: [{ type: "info", args: ["one\r\ntwo"] }] });
    expect(lines.slice(1)).toEqual(["    two"]);
    expect(lines[0]).toEndWith("INFO  one");
  });

  test("an error's stack is indented under its line", async () => {
    const lines = await logged({ format: "text", calls: [{ type: "error", args: ["Unexpected:", { error: "bad" }] }] });
    expect(lines[0]).toMatch(/ERROR Unexpected: Error: bad$/);
    expect(lines.length).toBeGreaterThan(1);
    for (const line of lines.slice(1)) expect(line).toMatch(/^ {4}/);
  });

  test("fields do not change text lines", async () => {
    const lines = await logged({
      format: "text",
      context: { profile: "coding" },
      calls: [{ type: "info", message: "Run run_1 started", fields: { run_id: "run_1", session_id: "ses_1" } }],
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ INFO {2}Run run_1 started$/);
  });

  test("secrets are redacted", async () => {
    const lines = await logged({
      format: "text",
      secrets: ["s3cr3t-value"],
      calls: [{ type: "info", args: ["token s3cr3t-value"] }],
    });
    expect(lines[0]).toEndWith("INFO  token [redacted]");
  });
});

describe("--log-format json", () => {
  const parse = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

  test("one JSON object per line with time, level, msg, the context and the entry's fields", async () => {
    const lines = await logged({
      format: "json",
      verbose: true,
      context: { profile: "coding", runner_id: "lnch_1" },
      calls: [
        { type: "info", message: "Run run_1 started", fields: { run_id: "run_1", session_id: "ses_1" } },
        { type: "error", args: [`Run run_1 failed: ${FORGED}`] },
        { type: "warn", args: ["careful"] },
        { type: "debug", args: ["detail", { a: 1 }] },
        { type: "success", args: ["done"] },
        { type: "box", args: [{ title: "agent-runner cannot start", message: "no coordinator" }] },
        { type: "error", message: "Run run_2 failed", fields: { run_id: "run_2" }, args: [{ error: "bad" }] },
      ],
    });
    expect(lines).toHaveLength(7);
    const entries = parse(lines);
    for (const entry of entries) {
      expect(typeof entry.time).toBe("string");
      expect(new Date(entry.time as string).toISOString()).toBe(entry.time as string);
      expect(entry.profile).toBe("coding");
      expect(entry.runner_id).toBe("lnch_1");
    }
    expect(entries[0]).toMatchObject({ level: "info", msg: "Run run_1 started", run_id: "run_1", session_id: "ses_1" });
    expect(Object.keys(entries[0]!).slice(0, 3)).toEqual(["time", "level", "msg"]);
    expect(entries[1]).toMatchObject({ level: "error", msg: `Run run_1 failed: ${FORGED}` });
    expect(entries[1]).not.toHaveProperty("run_id");
    expect(entries[2]).toMatchObject({ level: "warn", msg: "careful" });
    expect(entries[3]).toMatchObject({ level: "debug", msg: "detail { a: 1 }" });
    expect(entries[4]).toMatchObject({ level: "info", msg: "done" });
    expect(entries[5]).toMatchObject({ level: "error", msg: "agent-runner cannot start: no coordinator" });
    expect(entries[6]).toMatchObject({ level: "error", run_id: "run_2" });
    expect(entries[6]!.msg).toStartWith("Run run_2 failed Error: bad\n");
  });

  test("secrets are redacted in the message and in fields", async () => {
    const lines = await logged({
      format: "json",
      secrets: ["s3cr3t-value"],
      calls: [
        { type: "info", args: ["token s3cr3t-value"] },
        { type: "info", message: "with s3cr3t-value", fields: { run_id: "x-s3cr3t-value" } },
      ],
    });
    expect(lines.join("\n")).not.toContain("s3cr3t-value");
    expect(parse(lines)).toMatchObject([
      { msg: "token [redacted]" },
      { msg: "with [redacted]", run_id: "x-[redacted]" },
    ]);
  });

  test("control characters and forged lines stay inside one JSON string", async () => {
    const lines = await logged({ format: "json", calls: [{ type: "error", args: [`x\x1b[2J\r${FORGED}`] }] });
    expect(lines).toHaveLength(1);
    expect(parse(lines)[0]!.msg).toBe(`x\x1b[2J\r${FORGED}`);
  });
});
