import { setDefaultTimeout } from "bun:test";

// Tests start real processes and servers; slow CI machines need more than the 5 s default.
setDefaultTimeout(30_000);
