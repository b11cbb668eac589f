#!/usr/bin/env bun
// Start-up code runs once: keep it in the interpreter rather than compile it (less memory and CPU;
// the compiled executable starts with the same policy, --compile-jit-policy in the build). The
// runner returns to the normal policy once registered (start-runner.ts); executors, exec and
// doctor are short-lived and keep it.
Bun.unsafe.setJITPolicy(1000);
const { EXECUTOR_ENTRY, runBuiltinExecutor } = await import("./src/executors/builtin.ts");
// A built-in executor (`agent-runner __executor <name>`) is dispatched before the CLI's modules
// (citty, consola, the config) load: it uses none of them.
if (process.argv[2] === EXECUTOR_ENTRY) process.exit(await runBuiltinExecutor(process.argv.slice(3)));
const { main } = await import("./src/cli/main.ts");
await main();
