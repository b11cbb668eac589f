import { setDefaultTimeout } from "bun:test";
import { installTeardown } from "./teardown.ts";

// Tests start real processes and servers; slow CI machines need more than the 5 s default.
setDefaultTimeout(30_000);
// What a test starts is ended after it (see teardown.ts).
installTeardown();
