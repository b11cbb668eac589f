/**
 * A process that contains its executors the way the runner does (containment.ts), for tests: its
 * own process, since a child subreaper and orphans adopted by it must not touch the test runner.
 * CONTAINMENT=cgroup or subreaper says which mechanism is wanted (the other is turned off where
 * it can be); it fails at once if that one does not hold. Commands come as JSON lines on stdin,
 * events go out as lines on stdout:
 *   {"op":"start","id":"a","script":"…","env":{…}}  → started a <pid> <cgroup or ->, out a <line>…, exited a <status>
 *                                                     (or "argv":[…] instead of a bash script; refused a <why>)
 *   {"op":"stop","id":"a","graceMs":500}            → stopped a <signal> <ms>
 *   {"op":"kill","id":"a"}
 */

import { describeContainment, setUpContainment } from "../../src/process/containment.ts";
import { ExecutorProcess } from "../../src/process/executor-process.ts";

const wanted = process.env.CONTAINMENT;
const containment = setUpContainment({ cgroups: wanted === "cgroup" });
if (wanted === "cgroup" ? !containment.cgroups : !containment.subreaper) {
  console.log(`unavailable ${describeContainment(containment)}`);
  process.exit(1);
}
console.log(`containment ${describeContainment(containment)}`);

const executors = new Map<string, ExecutorProcess>();
const say = (line: string) => console.log(line);

type Command =
  | { op: "start"; id: string; script?: string; argv?: string[]; env?: Record<string, string> }
  | { op: "stop"; id: string; graceMs: number }
  | { op: "kill"; id: string };

function handle(command: Command): void {
  if (command.op === "start") {
    let executor: ExecutorProcess;
    try {
      executor = new ExecutorProcess({
        argv: command.argv ?? ["bash", "-c", command.script ?? ""],
        input: "",
        env: { PATH: process.env.PATH, ...command.env },
        stdout: "lines",
        onOutput: (stream, line) => stream === "stdout" && say(`out ${command.id} ${line}`),
      });
    } catch (error) {
      say(`refused ${command.id} ${(error as Error).message}`);
      return;
    }
    executors.set(command.id, executor);
    say(`started ${command.id} ${executor.pid} ${executor.cgroup ?? "-"}`);
    void executor.exited.then((status) => say(`exited ${command.id} ${JSON.stringify(status)}`));
  } else if (command.op === "stop") {
    const from = performance.now();
    void executors
      .get(command.id)
      ?.stop(command.graceMs)
      .then((signal) => say(`stopped ${command.id} ${signal} ${Math.round(performance.now() - from)}`));
  } else executors.get(command.id)?.kill();
}

let partial = "";
for await (const chunk of Bun.stdin.stream()) {
  const lines = (partial + new TextDecoder().decode(chunk)).split("\n");
  partial = lines.pop() ?? "";
  for (const line of lines) if (line.trim()) handle(JSON.parse(line) as Command);
}
