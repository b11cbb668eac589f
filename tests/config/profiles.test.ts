import { beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { INSTALL_DIR } from "../../src/config/install-dir.ts";
import {
  DEFAULT_EXECUTOR_PATH,
  DEFAULT_EXECUTOR_TYPE,
  defaultProfile,
  describeProfiles,
  listProfiles,
  loadProfile,
  protocolExecutorType,
  resolveExecutorCommand,
  sandboxSettings,
} from "../../src/config/profiles.ts";
import { builtinExecutorName } from "../../src/executors/builtin.ts";
import { configError } from "../support/config-error.ts";
import { REPO_ROOT, tempDir } from "../support/processes.ts";

const BUILTIN_NAMES = ["coding", "coding-sandboxed", "research", "supervised", "test"];

let tmp: string;
let profilesDir: string;
let executor: string;

/** Writes `<profilesDir>/<name>.json` (objects as JSON, strings as is) and returns its path. */
function writeProfile(name: string, content: unknown): string {
  const path = join(profilesDir, `${name}.json`);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

beforeEach(() => {
  tmp = tempDir("ar-profiles-");
  profilesDir = join(tmp, "profiles");
  mkdirSync(profilesDir);
  // The executors shipped in the repo may not exist yet: profiles under test name this one.
  executor = join(tmp, "exec.sh");
  writeFileSync(executor, "#!/bin/sh\nexit 0\n");
  chmodSync(executor, 0o755);
});

describe("profile names", () => {
  test("an unknown name lists every available profile", () => {
    const error = configError(() => loadProfile("nonexistent"));
    expect(error.message).toBe(
      "Profile 'nonexistent' not found. Available: coding, coding-sandboxed, research, supervised, test",
    );
  });

  test("the list of available profiles includes runtime files", () => {
    writeProfile("extra", { type: "x", command: executor });
    const error = configError(() => loadProfile("nonexistent", { profilesDir }));
    expect(error.message).toBe(
      "Profile 'nonexistent' not found. Available: coding, coding-sandboxed, extra, research, supervised, test",
    );
  });

  test.each(["../x", "a/b", "..", "/etc/passwd", "./coding", "a\\b", ".hidden", ""])(
    "'%s' is refused as invalid",
    (name) => {
      const error = configError(() => loadProfile(name, { profilesDir }));
      expect(error.message).toStartWith(`Invalid profile name '${name}'`);
    },
  );

  test("a path name is refused even when the file it points at exists", () => {
    // tmp/x.json is a valid profile one directory above profilesDir: '../x' must not reach it.
    writeFileSync(join(tmp, "x.json"), JSON.stringify({ type: "x", command: executor }));
    const error = configError(() => loadProfile("../x", { profilesDir }));
    expect(error.message).toContain("Invalid profile name '../x'");
  });

  test("files whose names are not plain profile names are not listed", () => {
    writeProfile(".hidden", { type: "x", command: executor });
    writeFileSync(join(profilesDir, "notes.txt"), "not a profile");
    expect(listProfiles({ profilesDir })).toEqual(BUILTIN_NAMES);
  });
});

describe("profile file validation", () => {
  test("invalid JSON names the file and the parse error", () => {
    const text = '{"type": "x",';
    const path = writeProfile("broken", text);
    let parseError = "";
    try {
      JSON.parse(text);
    } catch (error) {
      parseError = (error as Error).message;
    }
    expect(parseError).not.toBe("");
    const error = configError(() => loadProfile("broken", { profilesDir }));
    expect(error.message).toContain(path);
    expect(error.message).toContain("not valid JSON");
    expect(error.message).toContain(parseError);
  });

  const cases: Array<[string, () => unknown, string[]]> = [
    ["missing type", () => ({ command: executor }), ["type must be a string (was missing)"]],
    ["numeric type", () => ({ type: 5, command: executor }), ["type must be a string (was a number)"]],
    ["empty type", () => ({ type: "", command: executor }), ["type must be non-empty"]],
    ["missing command", () => ({ type: "x" }), ["command must be a string (was missing)"]],
    ["command not a string", () => ({ type: "x", command: ["a"] }), ["command must be a string"]],
    ["empty command", () => ({ type: "x", command: "" }), ["command must be non-empty"]],
    ["config a string", () => ({ type: "x", command: executor, config: "opus" }), ["config must be an object"]],
    [
      "config an array",
      () => ({ type: "x", command: executor, config: ["opus"] }),
      ["config must be an object (not an array)"],
    ],
    ["config null", () => ({ type: "x", command: executor, config: null }), ["config must be an object"]],
    ["unknown field", () => ({ type: "x", command: executor, model: "opus" }), ["model must be removed"]],
    ["sandbox a string", () => ({ type: "x", command: executor, sandbox: "yes" }), ["sandbox must be an object"]],
    [
      "lifecycle unknown",
      () => ({ type: "autonomous", command: executor, lifecycle: "forever" }),
      ['lifecycle must be "one_shot" or "persistent" (was "forever")'],
    ],
    [
      "sandbox an array",
      () => ({ type: "x", command: executor, sandbox: ["~/.cache"] }),
      ["sandbox must be an object (not an array), false or true"],
    ],
    [
      "sandbox paths not an array",
      () => ({ type: "x", command: executor, sandbox: { extra_writable: "~/.cache" } }),
      ["sandbox: extra_writable must be an array (was string)"],
    ],
    [
      "a relative sandbox path",
      () => ({ type: "x", command: executor, sandbox: { extra_hidden: ["secrets"] } }),
      ['sandbox: extra_hidden[0] must be an absolute path or one starting with ~/ (was "secrets")'],
    ],
    [
      "an unknown sandbox field",
      () => ({ type: "x", command: executor, sandbox: { extra_writeable: [] } }),
      ["sandbox: extra_writeable must be removed"],
    ],
  ];

  test.each(cases)("%s: names the file, the field and what was expected", (_, content, expected) => {
    const path = writeProfile("bad", content());
    const error = configError(() => loadProfile("bad", { profilesDir }));
    expect(error.message).toStartWith(`Invalid profile file ${path}: `);
    for (const part of expected) expect(error.message).toContain(part);
  });

  test("a profile that is not an object is refused", () => {
    const path = writeProfile("bad", "[1, 2]");
    const error = configError(() => loadProfile("bad", { profilesDir }));
    expect(error.message).toStartWith(`Invalid profile file ${path}: `);
  });

  test("a command that does not exist names the profile and the resolved path", () => {
    const missing = join(tmp, "no-such-exec");
    writeProfile("ghost", { type: "x", command: missing });
    const error = configError(() => loadProfile("ghost", { profilesDir }));
    expect(error.message).toBe(`Profile 'ghost': executor command ${missing} cannot be run: ${missing} does not exist`);
  });

  test("a relative command is resolved against the runner's directory", () => {
    writeProfile("relative", { type: "x", command: "executors/no-such/exec" });
    const error = configError(() => loadProfile("relative", { profilesDir }));
    expect(error.message).toContain("Profile 'relative'");
    expect(error.message).toContain(join(REPO_ROOT, "executors/no-such/exec"));
  });

  test("a command that is not executable names the profile and the path", () => {
    const plain = join(tmp, "plain.sh");
    writeFileSync(plain, "#!/bin/sh\n");
    chmodSync(plain, 0o644);
    writeProfile("noexec", { type: "x", command: plain });
    const error = configError(() => loadProfile("noexec", { profilesDir }));
    expect(error.message).toContain("Profile 'noexec'");
    expect(error.message).toContain(`${plain} is not executable`);
  });

  test("a command that is a directory is refused", () => {
    writeProfile("dir", { type: "x", command: tmp });
    const error = configError(() => loadProfile("dir", { profilesDir }));
    expect(error.message).toContain("Profile 'dir'");
    expect(error.message).toContain(`${tmp} is not a file`);
  });
});

describe("loading", () => {
  test("a valid runtime profile loads with its config passed through untouched", () => {
    const config = { model: "opus", nested: { list: [1, "two", null], flag: true } };
    const path = writeProfile("mine", { type: "custom", command: executor, config });
    expect(loadProfile("mine", { profilesDir })).toEqual({
      name: "mine",
      type: "custom",
      command: executor,
      config,
      lifecycle: "one_shot",
      source: path,
      argv: [executor],
    });
  });

  test("a missing config means {}", () => {
    writeProfile("bare", { type: "custom", command: executor });
    expect(loadProfile("bare", { profilesDir }).config).toEqual({});
  });

  test("a runtime file overrides the built-in profile of the same name", () => {
    const path = writeProfile("coding", { type: "other", command: executor, config: { model: "haiku" } });
    expect(loadProfile("coding", { profilesDir })).toEqual({
      name: "coding",
      type: "other",
      command: executor,
      config: { model: "haiku" },
      lifecycle: "one_shot",
      source: path,
      argv: [executor],
    });
  });

  test("a new runtime profile appears in the sorted list", () => {
    writeProfile("zeta", { type: "x", command: executor });
    writeProfile("alpha", { type: "x", command: executor });
    writeProfile("coding", { type: "x", command: executor });
    expect(listProfiles({ profilesDir })).toEqual([
      "alpha",
      "coding",
      "coding-sandboxed",
      "research",
      "supervised",
      "test",
      "zeta",
    ]);
    expect(listProfiles()).toEqual(BUILTIN_NAMES);
  });

  test("describeProfiles says which profile is built-in and which file the others come from", () => {
    const coding = writeProfile("coding", { type: "other", command: executor });
    const extra = writeProfile("extra", { type: "x", command: executor, config: { a: 1 } });
    const broken = writeProfile("broken", "{");
    const listing = describeProfiles({ profilesDir });
    expect(listing.map((entry) => [entry.name, entry.source])).toEqual([
      ["broken", broken],
      ["coding", coding],
      ["coding-sandboxed", "built-in"],
      ["extra", extra],
      ["research", "built-in"],
      ["supervised", "built-in"],
      ["test", "built-in"],
    ]);
    const byName = Object.fromEntries(listing.map((entry) => [entry.name, entry]));
    expect(byName.extra).toEqual({
      name: "extra",
      source: extra,
      profile: { name: "extra", type: "x", command: executor, config: { a: 1 }, lifecycle: "one_shot", source: extra },
      argv: [executor],
    });
    // A broken file is listed with its error instead of breaking the whole listing.
    expect(byName.broken?.profile).toBeUndefined();
    expect(byName.broken?.error).toContain(broken);
  });

  test("a listed profile whose command cannot be run carries the reason", () => {
    const missing = join(tmp, "gone");
    writeProfile("gone", { type: "x", command: missing });
    const entry = describeProfiles({ profilesDir }).find((e) => e.name === "gone");
    expect(entry?.profile?.command).toBe(missing);
    expect(entry?.error).toBe(`${missing} does not exist`);
    expect(entry?.argv).toBeUndefined();
  });
});

describe("sandbox", () => {
  test("true, or an object of extra paths, is kept as written; false is no sandbox", () => {
    const sandbox = { extra_writable: ["~/.cache/pip", "/srv/shared"], extra_hidden: ["/srv/secrets"] };
    writeProfile("boxed", { type: "x", command: executor, sandbox });
    writeProfile("yes", { type: "x", command: executor, sandbox: true });
    writeProfile("no", { type: "x", command: executor, sandbox: false });
    expect(loadProfile("boxed", { profilesDir }).sandbox).toEqual(sandbox);
    expect(loadProfile("yes", { profilesDir }).sandbox).toBe(true);
    expect("sandbox" in loadProfile("no", { profilesDir })).toBe(false);
  });

  test("sandboxSettings: what the process module takes", () => {
    expect(sandboxSettings(undefined)).toBeUndefined();
    expect(sandboxSettings(true)).toEqual({ extraWritable: [], extraHidden: [] });
    expect(sandboxSettings({ extra_hidden: ["~/x"] })).toEqual({ extraWritable: [], extraHidden: ["~/x"] });
  });
});

describe("built-in profiles", () => {
  const CLAUDE = { type: "claude-code", command: "executors/claude-code/ao-claude-code-exec" };
  // The built-in profiles, with exactly these contents (the README documents them).
  const expected: Record<string, unknown> = {
    coding: {
      ...CLAUDE,
      config: { permission_mode: "bypassPermissions", setting_sources: ["project", "local"], model: "opus" },
    },
    research: { ...CLAUDE, config: { permission_mode: "default", setting_sources: ["project"], model: "sonnet" } },
    supervised: {
      ...CLAUDE,
      config: { permission_mode: "acceptEdits", setting_sources: ["user", "project", "local"], model: "sonnet" },
    },
    // `coding` in a sandbox.
    "coding-sandboxed": {
      ...CLAUDE,
      config: { permission_mode: "bypassPermissions", setting_sources: ["project", "local"], model: "opus" },
      sandbox: true,
    },
  };

  test.each(Object.keys(expected))("profiles/%s.json has exactly the documented contents", (name) => {
    const file = JSON.parse(readFileSync(join(REPO_ROOT, "profiles", `${name}.json`), "utf8"));
    expect(file).toEqual(expected[name]);
  });

  test("the built-in profiles are listed with their contents and source 'built-in'", () => {
    const listing = describeProfiles();
    expect(listing.map((entry) => entry.name)).toEqual(BUILTIN_NAMES);
    for (const entry of listing) {
      expect(entry.source).toBe("built-in");
      const file = JSON.parse(readFileSync(join(REPO_ROOT, "profiles", `${entry.name}.json`), "utf8"));
      expect(entry.profile).toEqual({
        name: entry.name,
        config: {},
        lifecycle: "one_shot",
        ...file,
        source: "built-in",
      });
    }
  });

  test("the test profile runs the built-in test executor", () => {
    const test = describeProfiles().find((entry) => entry.name === "test")?.profile;
    expect(test?.command).toBe("executors/test-executor/ao-test-exec");
    expect(builtinExecutorName(test!.command)).toBe("test");
  });

  const claudeExec = join(REPO_ROOT, DEFAULT_EXECUTOR_PATH);
  // The Claude Code executor file is written separately; until it exists there is nothing to load.
  test.skipIf(!existsSync(claudeExec))("a built-in profile loads and resolves its command in the repo", () => {
    expect(loadProfile("coding")).toEqual({
      name: "coding",
      ...CLAUDE,
      config: { permission_mode: "bypassPermissions", setting_sources: ["project", "local"], model: "opus" },
      lifecycle: "one_shot",
      source: "built-in",
      argv: [claudeExec],
    });
  });

  test.skipIf(!existsSync(claudeExec))("without a profile the Claude Code executor runs with no config", () => {
    expect(defaultProfile()).toEqual({
      name: "claude-code",
      type: "claude-code",
      command: "executors/claude-code/ao-claude-code-exec",
      config: {},
      lifecycle: "one_shot",
      source: "default",
      argv: [claudeExec],
    });
  });

  test("the no-profile constants are the documented ones", () => {
    expect(DEFAULT_EXECUTOR_PATH).toBe("executors/claude-code/ao-claude-code-exec");
    expect(DEFAULT_EXECUTOR_TYPE).toBe("claude-code");
  });
});

describe("resolveExecutorCommand", () => {
  test("run from source, the runner's directory is the repo root", () => {
    expect(INSTALL_DIR).toBe(REPO_ROOT);
  });

  test("an absolute executable path is used as is", () => {
    expect(resolveExecutorCommand(executor)).toEqual([executor]);
  });

  test("run from source, a built-in command whose file is missing is an error, not the runner itself", () => {
    const command = "executors/test-executor/ao-test-exec";
    const result = resolveExecutorCommand(command);
    if (existsSync(join(REPO_ROOT, command))) expect(result).toEqual([join(REPO_ROOT, command)]);
    else expect(result).toEqual({ error: `${join(REPO_ROOT, command)} does not exist` });
  });
});

describe("protocol 2.2 executor types", () => {
  test("autonomous and procedural as written; every other kind, the built-ins' included, registers as autonomous", () => {
    expect(protocolExecutorType({ type: "autonomous" })).toBe("autonomous");
    expect(protocolExecutorType({ type: "procedural" })).toBe("procedural");
    expect(protocolExecutorType({ type: "claude-code" })).toBe("autonomous");
    expect(protocolExecutorType({ type: "test-executor" })).toBe("autonomous");
  });
});
