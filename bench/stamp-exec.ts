#!/usr/bin/env bun
// Fallback stamp executor when there is no C compiler: same protocol as stamp-exec.c (much slower
// to start, but the floor uses the same program, so the runner/floor ratios stay fair).
import { appendFileSync } from "node:fs";
import { monoNs } from "./clock.ts";

const input = await Bun.stdin.bytes();
const got = monoNs();
const file = process.env.BENCH_STAMP_FILE;
if (file) appendFileSync(file, `${process.env.AGENT_SESSION_ID ?? "-"} ${got} ${monoNs()} ${input.byteLength}\n`);
