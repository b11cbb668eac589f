#!/usr/bin/env bun
import { EXECUTOR_ENTRY, runBuiltinExecutor } from "./src/executors/builtin.ts";

// A built-in executor (`agent-runner __executor <name>`) is dispatched before the CLI's modules
// (citty, consola, the config) load: it uses none of them.
if (process.argv[2] === EXECUTOR_ENTRY) process.exit(await runBuiltinExecutor(process.argv.slice(3)));
const { main } = await import("./src/cli/main.ts");
await main();
