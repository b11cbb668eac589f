/**
 * Where `agent-runner exec` keeps the sessions its local gateway recorded, one JSON file per
 * session, so a later `exec --resume --session-id …` can answer `GET /sessions/{id}` with the
 * executor session id and project directory of the start.
 */

import { lstatSync, mkdirSync, renameSync, rmSync, type Stats, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import type { Env } from "../shared/env.ts";
import { ConfigError, messageOf } from "../shared/errors.ts";
import { parseJson } from "../shared/json.ts";
import { MAX_SMALL_FILE_BYTES, readSmallFile, SmallFileError } from "../shared/small-file.ts";
import { LocalSession } from "./local-gateway.ts";

const SESSION_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** `$AGENT_RUNNER_EXEC_STATE_DIR`, else `$XDG_STATE_HOME/agent-runner/exec-sessions`, else `~/.local/state/…`. */
export function defaultExecStateDir(env: Env = process.env): string {
  if (env.AGENT_RUNNER_EXEC_STATE_DIR) return resolve(env.AGENT_RUNNER_EXEC_STATE_DIR);
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), ".local", "state");
  return join(stateHome, "agent-runner", "exec-sessions");
}

/** A session id that can name a file: letters, digits, `_`, `-`, `.`; no path tricks. */
export function assertSessionId(sessionId: string): void {
  if (!SESSION_ID.test(sessionId) || sessionId.includes("..")) {
    throw new ConfigError(`Invalid session id '${sessionId}': use letters, digits, '_', '-' and '.' (e.g. ses_1a2b3c)`);
  }
}

export class ExecSessionStore {
  constructor(readonly dir: string) {}

  /** The file that holds a session's record. */
  pathOf(sessionId: string): string {
    assertSessionId(sessionId);
    return join(this.dir, `${sessionId}.json`);
  }

  /**
   * Creates the directory when missing and proves it can be written, before any executor runs:
   * a session that cannot be saved cannot be resumed. A ConfigError names the directory.
   */
  assertWritable(): void {
    const probe = join(this.dir, `.write-test.${process.pid}`);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      writeFileSync(probe, "");
      rmSync(probe);
    } catch (error) {
      throw new ConfigError(
        `State directory ${this.dir} cannot be written (${messageOf(error)}): exec keeps its sessions there to resume them; choose another with --state-dir or AGENT_RUNNER_EXEC_STATE_DIR`,
      );
    }
  }

  /**
   * The stored session, or undefined when there is none. Only a file of this user's that is not a
   * symbolic link is read: exec writes its records so (save), and anything else was put there by
   * someone else, who must not choose what a resume does.
   */
  load(sessionId: string): LocalSession | undefined {
    const path = this.pathOf(sessionId);
    let stat: Stats;
    try {
      stat = lstatSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new ConfigError(`Cannot read stored session ${path}: ${messageOf(error)}`);
    }
    if (stat.isSymbolicLink()) {
      throw new ConfigError(
        `Stored session ${path} is a symbolic link: exec writes its records as files of their own; delete it to start over`,
      );
    }
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid) {
      throw new ConfigError(
        `Stored session ${path} belongs to user ${stat.uid}, not to this one (${uid}): exec reads only records it wrote; delete it to start over`,
      );
    }
    let text: string;
    try {
      text = readSmallFile(path, undefined, { noFollow: true });
    } catch (error) {
      if (error instanceof SmallFileError && error.code === "ENOENT") return undefined;
      throw new ConfigError(`Cannot read stored session ${path}: ${messageOf(error)}`);
    }
    let session: LocalSession;
    try {
      session = parseJson(text, LocalSession, `Stored session ${path}`);
    } catch (error) {
      throw new ConfigError(`${messageOf(error)} (delete it to start over)`);
    }
    if (session.session_id !== sessionId) {
      throw new ConfigError(
        `Stored session ${path} holds session ${session.session_id}, not ${sessionId} (delete it to start over)`,
      );
    }
    return session;
  }

  /**
   * Writes atomically, so an interrupted exec never leaves half a file. The temporary file is
   * created anew (never opened through a link or a file someone else left under its name), and the
   * rename replaces a link at the record's name rather than writing where it points.
   */
  save(session: LocalSession): void {
    const path = this.pathOf(session.session_id);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temp = `${path}.${process.pid}.tmp`;
    rmSync(temp, { force: true });
    writeFileSync(temp, recordText(session), { mode: 0o600, flag: "wx" });
    renameSync(temp, path);
  }
}

/**
 * A session's record as saved, within what `load` reads back (MAX_SMALL_FILE_BYTES): an agent's
 * result can be larger, and would make the session impossible to resume. Such a result (already
 * printed; a resume needs only the session's executor id and directory) is left out.
 */
function recordText(session: LocalSession): string {
  const text = `${JSON.stringify(session, null, 2)}\n`;
  if (Buffer.byteLength(text) <= MAX_SMALL_FILE_BYTES) return text;
  const { result: _result, result_text: _text, result_data: _data, ...kept } = session;
  return `${JSON.stringify(kept, null, 2)}\n`;
}
