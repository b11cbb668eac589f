/** Directory flags given empty: refused naming the flag, never taken for the current directory unsaid. */
import { expect, test } from "bun:test";
import { resolveConfig, resolveProfilesDir } from "../../src/config/runner-config.ts";
import { configError } from "../support/config-error.ts";

test.each(["state-dir", "project-dir", "profiles-dir"] as const)("--%s '' is a ConfigError naming the flag", (flag) => {
  for (const value of ["", "  "]) {
    const error = configError(() => resolveConfig({ [flag]: value }, {}));
    expect(error.message).toBe(`--${flag} is empty: expected a directory`);
  }
});

test("--profiles-dir '' is refused for --profile-list too", () => {
  expect(configError(() => resolveProfilesDir({ "profiles-dir": "" }, {})).message).toBe(
    "--profiles-dir is empty: expected a directory",
  );
});

test("an empty variable is unset, as for every flag: the default applies", () => {
  const config = resolveConfig({}, { AGENT_RUNNER_STATE_DIR: "", PROJECT_DIR: "", AGENT_RUNNER_PROFILES_DIR: "" });
  expect(config.projectDir).toBe(process.cwd());
  expect(config.profilesDir).toBeUndefined();
  expect(config.stateDir).not.toBe(process.cwd());
});
