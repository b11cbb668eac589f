import { afterAll, describe, expect, test } from "bun:test";
import { lstatSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertSessionId, defaultExecStateDir, ExecSessionStore } from "../../src/exec/session-store.ts";
import { ConfigError } from "../../src/shared/errors.ts";
import { TempDirs } from "../support/processes.ts";

const temp = new TempDirs();
afterAll(() => temp.cleanup());

describe("ExecSessionStore", () => {
  test("saves and loads a session; an unknown one is undefined", () => {
    const dir = join(temp.make(), "nested", "state");
    const store = new ExecSessionStore(dir);
    expect(store.load("ses_a")).toBeUndefined();
    const session = {
      session_id: "ses_a",
      status: "finished" as const,
      created_at: "2025-01-01T00:00:00.000Z",
      executor_session_id: "exe",
    };
    store.save(session);
    expect(store.load("ses_a")).toEqual(session);
    expect(readdirSync(dir)).toEqual(["ses_a.json"]);
    expect(statSync(join(dir, "ses_a.json")).mode & 0o777).toBe(0o600);
  });

  test("a result too large for the record to be read back is left out of it: the session still loads, to resume", () => {
    const store = new ExecSessionStore(temp.make());
    const session = {
      session_id: "ses_big",
      status: "finished" as const,
      created_at: "2025-01-01T00:00:00.000Z",
      executor_session_id: "exe",
      project_dir: "/work",
      result: "r".repeat(2 * 1024 * 1024),
      result_text: "r".repeat(2 * 1024 * 1024),
      result_data: null,
      total_cost_usd: 0.5,
    };
    store.save(session);
    const { result: _result, result_text: _text, result_data: _data, ...kept } = session;
    expect(store.load("ses_big")).toEqual(kept);
  });

  test("a broken file is a ConfigError naming it", () => {
    const dir = temp.make();
    writeFileSync(join(dir, "ses_b.json"), "{broken");
    expect(() => new ExecSessionStore(dir).load("ses_b")).toThrow(
      `Stored session ${join(dir, "ses_b.json")} is not valid JSON`,
    );
    writeFileSync(join(dir, "ses_c.json"), JSON.stringify({ session_id: "ses_other" }));
    expect(() => new ExecSessionStore(dir).load("ses_c")).toThrow("created_at must be a string (was missing)");
    const other = { session_id: "ses_other", status: "finished", created_at: "2026-01-01T00:00:00Z" };
    writeFileSync(join(dir, "ses_d.json"), JSON.stringify(other));
    expect(() => new ExecSessionStore(dir).load("ses_d")).toThrow("holds session ses_other, not ses_d");
  });

  test("a save never writes through a link planted where its temporary file goes", () => {
    const dir = temp.make();
    const victim = join(temp.make(), "victim");
    writeFileSync(victim, "untouched");
    symlinkSync(victim, join(dir, `ses_t.json.${process.pid}.tmp`));
    const store = new ExecSessionStore(dir);
    store.save({ session_id: "ses_t", status: "running", created_at: "2025-01-01T00:00:00.000Z" });
    expect(readFileSync(victim, "utf8")).toBe("untouched");
    expect(store.load("ses_t")?.status).toBe("running");
    expect(lstatSync(join(dir, "ses_t.json")).isFile()).toBe(true);
  });

  test("session ids that are not plain names are refused", () => {
    for (const bad of ["../etc/passwd", "a/b", "..", "", "-x"]) {
      expect(() => assertSessionId(bad)).toThrow(ConfigError);
    }
    expect(() => assertSessionId("ses_1a2b.c-d")).not.toThrow();
    expect(() => new ExecSessionStore(temp.make()).load("../x")).toThrow("Invalid session id '../x'");
  });

  test("default directory: AGENT_RUNNER_EXEC_STATE_DIR, else XDG_STATE_HOME, else ~/.local/state", () => {
    expect(defaultExecStateDir({ AGENT_RUNNER_EXEC_STATE_DIR: "/s/d", HOME: "/h" })).toBe("/s/d");
    expect(defaultExecStateDir({ XDG_STATE_HOME: "/x", HOME: "/h" })).toBe("/x/agent-runner/exec-sessions");
    expect(defaultExecStateDir({ HOME: "/h" })).toBe("/h/.local/state/agent-runner/exec-sessions");
  });
});
