/**
 * `exec --resume` with a session record that exec did not write as it is: its project_dir pointed
 * elsewhere (at /etc), another executor_session_id, garbage, a symbolic link, a file of another
 * user. Nothing in a record may choose what a sandboxed executor can write.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chownSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanEnv, REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";
import { homeWithSecrets, needBubblewrap, plant } from "../support/sandbox.ts";

const INDEX = join(REPO_ROOT, "index.ts");
const temp = new TempDirs();
afterAll(() => temp.cleanup());

/**
 * An executor that writes nothing: it prints where it runs, whether that directory is writable
 * (access(2), which a read-only mount answers), and the project_dir its gateway gives the session.
 */
const LOOKOUT = `#!/bin/sh
cat > /dev/null
echo "cwd=$PWD"
if [ -w "$PWD" ]; then echo "cwd_writable=yes"; else echo "cwd_writable=no"; fi
echo "gateway_session=$(curl -sf "$AGENT_ORCHESTRATOR_API_URL/sessions/$AGENT_SESSION_ID")"
curl -sf -X POST -H 'Content-Type: application/json' "$AGENT_ORCHESTRATOR_API_URL/bind" \\
  -d "{\\"session_id\\":\\"$AGENT_SESSION_ID\\",\\"executor_session_id\\":\\"lookout\\"}" > /dev/null
`;

/** A world with a sandboxed `lookout` profile and exec's state directory, outside the home. */
function world(sandbox: boolean) {
  const w = homeWithSecrets(temp);
  const profiles = join(w.base, "profiles");
  const lookout = plant(join(profiles, "lookout"), LOOKOUT, 0o755);
  plant(join(profiles, "lookout.json"), JSON.stringify({ type: "lookout", command: lookout, sandbox }));
  const stateDir = join(w.base, "exec-state");
  return { ...w, profiles, stateDir };
}

function exec(w: ReturnType<typeof world>, args: string[], cwd: string) {
  return runProcess(
    [
      process.execPath,
      INDEX,
      "exec",
      "--profile",
      "lookout",
      "--profiles-dir",
      w.profiles,
      "--state-dir",
      w.stateDir,
    ].concat(args),
    { env: cleanEnv({ HOME: w.home }), cwd, timeoutMs: 60_000 },
  );
}

/** Starts session `id` in the project, then returns its record's path. */
async function recorded(w: ReturnType<typeof world>, id: string): Promise<string> {
  const started = await exec(w, ["--prompt", "p", "--session-id", id], w.project);
  expect(started.exitCode, started.stderr).toBe(0);
  return join(w.stateDir, `${id}.json`);
}

/** `exec --resume` of session `id` with a prompt, then `extra`, run in `cwd` (default: the session's own project). */
function resume(w: ReturnType<typeof world>, id: string, extra: string[] = [], cwd = w.project) {
  return exec(w, ["--resume", "--session-id", id, "--prompt", "again", ...extra], cwd);
}

const edit = (file: string, change: Record<string, unknown>) =>
  writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, "utf8")), ...change }));

const lines = (stdout: string) =>
  Object.fromEntries(stdout.split("\n").flatMap((line) => (line.includes("=") ? [line.split(/=(.*)/s, 2)] : [])));

describe("a tampered exec session record on --resume", () => {
  test("project_dir pointed at /etc: a sandboxed resume refuses it (never a writable /etc) and says how to go on", async () => {
    needBubblewrap();
    const w = world(true);
    const file = await recorded(w, "ses_etc");
    edit(file, { project_dir: "/etc" });
    // From the session's own project, as a user would resume it.
    const resumed = await resume(w, "ses_etc");
    expect(resumed.stdout).not.toContain("cwd=/etc");
    expect(resumed.exitCode).toBe(1);
    expect(resumed.stderr).toContain(
      `Session ses_etc is recorded in /etc, not in ${w.project}: a sandboxed profile gets as writable only the directory this exec is given (--project-dir, else the current directory), never one read from ${file}`,
    );
  });

  test("a sandboxed resume in the directory given: that one is writable, and the executor is told it, not the record's", async () => {
    needBubblewrap();
    const w = world(true);
    const file = await recorded(w, "ses_given");
    edit(file, { project_dir: "/etc" });
    const resumed = await resume(w, "ses_given", ["--project-dir", w.project], temp.make());
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const said = lines(resumed.stdout);
    expect(said).toMatchObject({ cwd: w.project, cwd_writable: "yes" });
    expect(JSON.parse(said.gateway_session!).session.project_dir).toBe(w.project);
    expect(JSON.parse(readFileSync(file, "utf8")).project_dir).toBe(w.project);
  });

  test("an untampered record resumes sandboxed in its own project, as before", async () => {
    needBubblewrap();
    const w = world(true);
    await recorded(w, "ses_plain");
    const resumed = await resume(w, "ses_plain");
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    expect(lines(resumed.stdout)).toMatchObject({ cwd: w.project, cwd_writable: "yes" });
  });

  test("another executor_session_id: the resume continues that one (the record is the user's own), nothing more", async () => {
    needBubblewrap();
    const w = world(true);
    const file = await recorded(w, "ses_other_exe");
    edit(file, { executor_session_id: "someone-elses" });
    const resumed = await resume(w, "ses_other_exe");
    expect(resumed.exitCode, resumed.stderr).toBe(0);
    const said = lines(resumed.stdout);
    expect(JSON.parse(said.gateway_session!).session.executor_session_id).toBe("someone-elses");
    expect(said).toMatchObject({ cwd: w.project, cwd_writable: "yes" });
  });

  test("garbage: exit 1 naming the file, before any executor starts", async () => {
    const w = world(false);
    const file = await recorded(w, "ses_junk");
    writeFileSync(file, "\u0000\u0001 not json {");
    const resumed = await resume(w, "ses_junk");
    expect(resumed.exitCode).toBe(1);
    expect(resumed.stdout).toBe("");
    expect(resumed.stderr).toContain(`Stored session ${file} is not valid JSON`);
    expect(resumed.stderr).toContain("(delete it to start over)");
  });

  test("a symbolic link (here to a record in the project, which an agent can write): refused, exit 1", async () => {
    const w = world(false);
    const file = await recorded(w, "ses_link");
    const planted = join(w.project, "planted.json");
    writeFileSync(planted, readFileSync(file));
    edit(planted, { executor_session_id: "planted" });
    rmSync(file);
    symlinkSync(planted, file);
    const resumed = await resume(w, "ses_link");
    expect(resumed.exitCode).toBe(1);
    expect(resumed.stdout).toBe("");
    expect(resumed.stderr).toContain(
      `Stored session ${file} is a symbolic link: exec writes its records as files of their own; delete it to start over`,
    );
  });

  test.skipIf(process.getuid?.() !== 0)("a record owned by another user: refused, exit 1", async () => {
    const w = world(false);
    const file = await recorded(w, "ses_theirs");
    chownSync(file, 65534, 65534);
    const resumed = await resume(w, "ses_theirs");
    expect(resumed.exitCode).toBe(1);
    expect(resumed.stderr).toContain(
      `Stored session ${file} belongs to user 65534, not to this one (0): exec reads only records it wrote; delete it to start over`,
    );
  });
});
