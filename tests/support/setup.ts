import { afterAll, setDefaultTimeout } from "bun:test";
import { killAbandonedCgroups, probeCgroups } from "../../src/process/cgroups.ts";
import { installTeardown } from "./teardown.ts";

// Tests start real processes and servers; slow CI machines need more than the 5 s default.
setDefaultTimeout(30_000);
// What a test starts is ended after it (see teardown.ts).
installTeardown();
// Runners the tests killed leave their (emptied) run cgroups; a runner's next start would remove them.
afterAll(() => {
  const probe = probeCgroups();
  if (probe.ok) killAbandonedCgroups(probe.home);
});
