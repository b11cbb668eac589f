import { beforeEach, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  DEFAULT_EXECUTOR_PATH,
  DEFAULT_EXECUTOR_TYPE,
  defaultProfile,
  loadProfile,
} from "../../src/config/profiles.ts";
import { buildRegistrationPayload } from "../../src/coordinator/registration.ts";
import { REPO_ROOT, tempDir } from "../support/processes.ts";

let tmp: string;
let executor: string;

beforeEach(() => {
  tmp = tempDir("ar-registration-");
  executor = join(tmp, "exec.sh");
  writeFileSync(executor, "#!/bin/sh\nexit 0\n");
  chmodSync(executor, 0o755);
});

describe("buildRegistrationPayload", () => {
  test("with a loaded profile: its name, and its content as is", () => {
    const config = { permission_mode: "bypassPermissions", setting_sources: ["project", "local"], model: "opus" };
    writeFileSync(join(tmp, "coding.json"), JSON.stringify({ type: "claude-code", command: executor, config }));
    const profile = loadProfile("coding", { profilesDir: tmp });
    expect(
      buildRegistrationPayload({
        hostname: "dev-machine",
        projectDir: "/workspace",
        profile,
        tags: ["python"],
        requireMatchingTags: false,
      }),
    ).toEqual({
      hostname: "dev-machine",
      project_dir: "/workspace",
      executor_profile: "coding",
      executor: { type: "claude-code", command: executor, config },
      tags: ["python"],
      require_matching_tags: false,
    });
  });

  test("a sandboxed profile's sandbox goes in the executor object, as written", () => {
    const sandbox = { extra_writable: ["~/.cache/pip"], extra_hidden: ["/srv/secrets"] };
    writeFileSync(join(tmp, "boxed.json"), JSON.stringify({ type: "custom", command: executor, sandbox }));
    const payload = (profile: string) =>
      buildRegistrationPayload({
        hostname: "h",
        projectDir: "/p",
        profile: loadProfile(profile, { profilesDir: tmp }),
        tags: [],
        requireMatchingTags: false,
      }).executor;
    expect(payload("boxed")).toEqual({ type: "custom", command: executor, config: {}, sandbox });
    expect(payload("coding-sandboxed").sandbox).toBe(true);
    expect("sandbox" in payload("coding")).toBe(false);
  });

  test("a profile without config registers config {}", () => {
    writeFileSync(join(tmp, "bare.json"), JSON.stringify({ type: "custom", command: executor }));
    const payload = buildRegistrationPayload({
      hostname: "h",
      projectDir: "/p",
      profile: loadProfile("bare", { profilesDir: tmp }),
      tags: [],
      requireMatchingTags: false,
    });
    expect(payload).toEqual({
      hostname: "h",
      project_dir: "/p",
      executor_profile: "bare",
      executor: { type: "custom", command: executor, config: {} },
      require_matching_tags: false,
    });
  });

  // What a runner without --profile sends (docs/protocol.md, "Registration").
  const noProfilePayload = {
    hostname: "dev-machine",
    project_dir: "/workspace",
    executor_profile: "claude-code",
    executor: { type: "claude-code", command: "executors/claude-code/ao-claude-code-exec", config: {} },
    require_matching_tags: false,
  };

  test("without a profile: executor_profile claude-code and the default executor with config {}", () => {
    const profile = {
      name: DEFAULT_EXECUTOR_TYPE,
      type: DEFAULT_EXECUTOR_TYPE,
      command: DEFAULT_EXECUTOR_PATH,
      config: {},
      lifecycle: "one_shot" as const,
    };
    expect(
      buildRegistrationPayload({
        hostname: "dev-machine",
        projectDir: "/workspace",
        profile,
        tags: [],
        requireMatchingTags: false,
      }),
    ).toEqual(noProfilePayload);
  });

  // defaultProfile() checks that the executor file exists; it is written separately.
  test.skipIf(!existsSync(join(REPO_ROOT, DEFAULT_EXECUTOR_PATH)))("without a profile, using defaultProfile()", () => {
    expect(
      buildRegistrationPayload({
        hostname: "dev-machine",
        projectDir: "/workspace",
        profile: defaultProfile(),
        tags: [],
        requireMatchingTags: false,
      }),
    ).toEqual(noProfilePayload);
  });

  test("tags are sent only when there are some; require_matching_tags always", () => {
    const base = {
      hostname: "h",
      projectDir: "/p",
      profile: { name: "n", type: "t", command: "c", config: {}, lifecycle: "one_shot" as const },
    };
    const without = buildRegistrationPayload({ ...base, tags: [], requireMatchingTags: false });
    expect("tags" in without).toBe(false);
    expect(without.require_matching_tags).toBe(false);
    // Survives serialisation: the key is absent, not undefined.
    expect(JSON.parse(JSON.stringify(without))).toEqual({
      hostname: "h",
      project_dir: "/p",
      executor_profile: "n",
      executor: { type: "t", command: "c", config: {} },
      require_matching_tags: false,
    });
    const tagged = buildRegistrationPayload({ ...base, tags: ["a", "b"], requireMatchingTags: true });
    expect(tagged.tags).toEqual(["a", "b"]);
    expect(tagged.require_matching_tags).toBe(true);
  });

  test("the runner's own fields (source, argv) are not sent", () => {
    writeFileSync(join(tmp, "p.json"), JSON.stringify({ type: "t", command: executor }));
    const payload = buildRegistrationPayload({
      hostname: "h",
      projectDir: "/p",
      profile: loadProfile("p", { profilesDir: tmp }),
      tags: [],
      requireMatchingTags: false,
    });
    expect(Object.keys(payload.executor).sort()).toEqual(["command", "config", "type"]);
    expect(JSON.stringify(payload)).not.toContain(`${tmp}/p.json`);
  });
});
