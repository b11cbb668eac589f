import { describe, expect, test } from "bun:test";
import { describeRecord, formatRecordLine } from "../../src/exec/event-lines.ts";
import type { GatewayRecord } from "../../src/exec/local-gateway.ts";

const at = "2025-06-01T12:34:56.789Z";
const record = (kind: GatewayRecord["kind"], body: unknown, extra: Partial<GatewayRecord> = {}): GatewayRecord => ({
  kind,
  method: "POST",
  path: "/events",
  status: 200,
  at,
  body,
  ...extra,
});

describe("event lines", () => {
  test("one readable line per request, with the time", () => {
    expect(formatRecordLine(record("bind", { session_id: "s", executor_session_id: "exe-1", project_dir: "/p" }))).toBe(
      "12:34:56  bind           executor session exe-1 in /p",
    );
    expect(
      formatRecordLine(
        record("event", {
          event_type: "message",
          role: "user",
          content: [{ type: "text", text: "line one\nline two" }],
        }),
      ),
    ).toBe("12:34:56  user           line one ⏎ line two");
    expect(formatRecordLine(record("event", { event_type: "session_stop", exit_code: 0, reason: "completed" }))).toBe(
      "12:34:56  session_stop   exit 0 (completed)",
    );
    expect(
      formatRecordLine(record("event", { event_type: "result", result_text: "the answer", result_data: null })),
    ).toBe("12:34:56  result         the answer");
    expect(formatRecordLine(record("event", { event_type: "result", result_text: null, result_data: { a: 1 } }))).toBe(
      '12:34:56  result         {"a":1}',
    );
    expect(formatRecordLine(record("metadata", { session_id: "s", last_resumed_at: at }))).toBe(
      `12:34:56  metadata       last_resumed_at=${at}`,
    );
    expect(
      formatRecordLine(
        record("request", undefined, { method: "GET", path: "/sessions/s", status: 404, detail: "Session not found" }),
      ),
    ).toBe("12:34:56  request        GET /sessions/s → 404 Session not found");
  });

  test("tools show their input and how they ended", () => {
    expect(
      describeRecord(
        record("event", {
          event_type: "post_tool",
          tool_name: "Read",
          tool_input: { file_path: "/a" },
          tool_output: "hello",
          error: null,
        }),
      ),
    ).toEqual({
      label: "tool",
      text: 'Read {"file_path":"/a"} → ok, 5 chars',
    });
    expect(
      describeRecord(
        record("event", {
          event_type: "post_tool",
          tool_name: "Bash",
          tool_input: {},
          tool_output: null,
          error: "exit 2",
        }),
      ).text,
    ).toBe("Bash {} → error: exit 2");
  });

  test("long texts are cut, rejected requests say so", () => {
    const long = "x".repeat(1000);
    expect(
      describeRecord(
        record("event", { event_type: "message", role: "assistant", content: [{ type: "text", text: long }] }),
      ).text,
    ).toBe(`${"x".repeat(300)}… (1000 chars)`);
    expect(
      describeRecord(record("bind", { session_id: "s" }, { status: 400, detail: "missing executor_session_id" })).text,
    ).toBe("executor session (none) → 400 missing executor_session_id");
  });
});
