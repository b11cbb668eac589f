/**
 * The files in deploy/ pass only flags and variables the runner knows, with values it accepts,
 * and keep their promises (probes on the health address, stop timeouts above what a drain takes),
 * so the examples cannot rot as flags change. systemd-analyze checks the unit itself.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "citty";
import { parseAllDocuments } from "yaml";
import { assertKnownFlags, commandArgs } from "../../src/cli/args.ts";
import { DEFAULT_POLL_TIMEOUT_SECONDS } from "../../src/config/defaults.ts";
import { type FlagValues, runnerEnvironmentVariables, runnerFlags } from "../../src/config/flags.ts";
import { loadProfile } from "../../src/config/profiles.ts";
import { type RunnerConfig, resolveConfig } from "../../src/config/runner-config.ts";
import { modelProblems, unknownFieldProblems } from "../support/manifest-schema.ts";
import { REPO_ROOT, runProcess, TempDirs } from "../support/processes.ts";

const DEPLOY = join(REPO_ROOT, "deploy");
const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const RUNNER_ARGS = commandArgs(runnerFlags);
const AUTH_VARIABLES = ["AUTH0_DOMAIN", "AUTH0_RUNNER_CLIENT_ID", "AUTH0_RUNNER_CLIENT_SECRET", "AUTH0_AUDIENCE"];
/** Variables for the executors, which the README documents, and HOME (Claude Code keeps its state there). */
const EXECUTOR_VARIABLES = [
  "ANTHROPIC_API_KEY",
  "ANTHROPIC_BASE_URL",
  "CLAUDE_CONFIG_DIR",
  "CLAUDE_CODE_EXECUTABLE",
  "IS_SANDBOX",
];
const KNOWN_VARIABLES = new Set([...runnerEnvironmentVariables(), ...AUTH_VARIABLES, ...EXECUTOR_VARIABLES, "HOME"]);

const temp = new TempDirs();
afterAll(() => temp.cleanup());

/** Computed on first use, inside a test: a broken file fails the tests that read it, by name. */
function lazy<T>(make: () => T): () => T {
  let value: { made: T } | undefined;
  return () => {
    value ??= { made: make() };
    return value.made;
  };
}

/**
 * The runner's config from a deployment's arguments and environment, exactly as the runner
 * resolves it (so every value is checked); the project dir, which exists only where it is
 * deployed, is swapped for a local one.
 */
function runnerConfig(args: string[], env: Record<string, string>): RunnerConfig {
  for (const name of Object.keys(env)) expect(KNOWN_VARIABLES, `unknown variable ${name}`).toContain(name);
  assertKnownFlags(args, RUNNER_ARGS);
  const values = parseArgs(args, RUNNER_ARGS) as FlagValues<typeof runnerFlags>;
  const config = resolveConfig(values, { ...env, PROJECT_DIR: temp.make("ar-deploy-") });
  if (values.profile !== undefined) loadProfile(values.profile);
  return config;
}

/** Seconds a drain can take: the in-flight poll, the longest run, the stop grace. */
function drainSeconds(config: RunnerConfig): number {
  return (
    (config.pollTimeoutSeconds ?? DEFAULT_POLL_TIMEOUT_SECONDS) +
    (config.runTimeoutSeconds ?? 0) +
    config.stopGraceSeconds
  );
}

test("the executors' variables used here are the ones the README documents", () => {
  const undocumented = EXECUTOR_VARIABLES.filter((name) => !new RegExp(`\`${name}[\`=]`).test(README));
  expect(undocumented).toEqual([]);
});

describe("kubernetes/", () => {
  type Manifest = Record<string, any>;
  const manifests: Array<{ file: string; name: string; doc: Manifest }> = readdirSync(join(DEPLOY, "kubernetes"))
    .filter((file) => file.endsWith(".yaml"))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(DEPLOY, "kubernetes", file), "utf8")).map((doc, index) => {
        expect(doc.errors, file).toEqual([]);
        return { file, name: `${file} #${index + 1}`, doc: doc.toJS() as Manifest };
      }),
    );
  const ofKind = (kind: string) => manifests.filter(({ doc }) => doc.kind === kind);
  const byName = (kind: string, name: string | undefined) =>
    ofKind(kind).find(({ doc }) => doc.metadata.name === name)?.doc;
  /** Workloads and where their pod template is: a ScaledJob's is in its jobTargetRef. */
  const workloads = manifests
    .filter(({ doc }) => ["Deployment", "Job", "ScaledJob"].includes(doc.kind))
    .map((entry) => ({
      ...entry,
      template: (entry.doc.kind === "ScaledJob" ? entry.doc.spec.jobTargetRef : entry.doc.spec).template,
    }));
  /** The Secrets runners read with envFrom: every key becomes a variable of the runner. */
  const envSecrets = new Set(
    workloads.flatMap(({ template }) =>
      template.spec.containers.flatMap((c: Manifest) => (c.envFrom ?? []).map((e: Manifest) => e.secretRef?.name)),
    ),
  );

  test("there is a Deployment, a Job and a ScaledJob, and every file parses", () => {
    expect(workloads.map(({ doc }) => doc.kind).sort()).toEqual(["Deployment", "Job", "ScaledJob"]);
  });

  test("every manifest passes its Kubernetes or KEDA model's validation", () => {
    expect(modelProblems(manifests)).toEqual([]);
  });

  test("no manifest has a field its model does not know", async () => {
    expect(await unknownFieldProblems(manifests)).toEqual([]);
  });

  test("the schema checks refuse a wrong type, an unknown field and an unknown kind, naming them", async () => {
    const deployment = structuredClone(ofKind("Deployment")[0]!.doc);
    deployment.spec.replicas = "3";
    const typo = structuredClone(ofKind("Deployment")[0]!.doc);
    const container = typo.spec.template.spec.containers[0];
    container.imagePulPolicy = container.imagePullPolicy;
    delete container.imagePullPolicy;
    const scaled = structuredClone(ofKind("ScaledJob")[0]!.doc);
    scaled.spec.pollingIntervl = 10;
    const broken = [
      { name: "wrong type", doc: deployment },
      { name: "typo", doc: typo },
      { name: "keda typo", doc: scaled },
      { name: "unknown kind", doc: { apiVersion: "v1", kind: "Sekret", metadata: { name: "x" } } },
    ];
    expect(modelProblems(broken)).toEqual([
      "wrong type: data/spec/replicas must be integer",
      "unknown kind: no model for v1 Sekret (known: apps/v1 Deployment, batch/v1 Job, v1 Secret, policy/v1 PodDisruptionBudget, keda.sh/v1alpha1 ScaledJob, keda.sh/v1alpha1 TriggerAuthentication)",
    ]);
    const unknown = await unknownFieldProblems(broken);
    expect(unknown).toHaveLength(3);
    expect(unknown[0]).toStartWith("wrong type: ");
    expect(unknown[1]).toMatch(/^typo: .*imagePulPolicy.* does not exist in type 'IContainer'/);
    expect(unknown[2]).toMatch(/^keda typo: .*pollingIntervl.* does not exist in type 'IScaledJobSpec'/);
  });

  test("each Secret read with envFrom holds only variables the runner or its executors read", () => {
    expect(envSecrets.size).toBeGreaterThan(0);
    for (const name of envSecrets) {
      const secret = byName("Secret", name);
      expect(secret, `envFrom names a Secret not in deploy/kubernetes: ${name}`).toBeDefined();
      for (const key of Object.keys(secret!.stringData ?? secret!.data ?? {})) expect(KNOWN_VARIABLES).toContain(key);
    }
  });

  for (const { file, doc, template } of workloads) {
    describe(`${file} (${doc.kind})`, () => {
      const pod = template.spec;
      const container = pod.containers[0];
      const config = lazy(() => {
        const env: Record<string, string> = {};
        for (const variable of container.env ?? []) env[variable.name] = String(variable.value);
        for (const source of container.envFrom ?? [])
          Object.assign(env, byName("Secret", source.secretRef?.name)?.stringData);
        return runnerConfig(container.args ?? [], env);
      });

      test("its flags and variables exist and their values are accepted", () => {
        expect(config().auth).toBeDefined();
        expect(config().healthAddr).toBeDefined();
        expect(pod.containers).toHaveLength(1);
      });

      test("the image has a fixed tag and a pull policy", () => {
        expect(container.image).toMatch(/:[\w.-]+$/);
        expect(container.image).not.toEndWith(":latest");
        expect(container.imagePullPolicy).toBe("IfNotPresent");
      });

      test("the probes ask the health address: /healthz for liveness, /readyz for readiness", () => {
        const port = config().healthAddr!.port;
        expect(config().healthAddr!.host).toBe("0.0.0.0");
        expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port });
        expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port });
        expect(container.ports).toContainEqual({ name: "health", containerPort: port });
      });

      test("terminationGracePeriodSeconds is longer than a drain", () => {
        expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(drainSeconds(config()));
      });

      test("credentials come from a Secret, never inline", () => {
        for (const name of AUTH_VARIABLES)
          expect(container.env.map((v: { name: string }) => v.name)).not.toContain(name);
      });

      test("resources and a non-root user are set", () => {
        expect(container.resources.requests).toBeDefined();
        expect(container.resources.limits.memory).toBeDefined();
        expect(pod.securityContext.runAsNonRoot).toBe(true);
      });

      if (doc.kind === "Deployment") {
        test("a long-lived fleet: replicas, readiness gating the rollout, a disruption budget for its pods", () => {
          expect(doc.spec.replicas).toBeGreaterThan(1);
          expect(config().maxRuns).toBeUndefined();
          const budgets = ofKind("PodDisruptionBudget").map((entry) => entry.doc);
          const budget = budgets.find((b) =>
            Object.entries(b.spec.selector.matchLabels).every(([k, v]) => template.metadata.labels[k] === v),
          );
          expect(budget, "a PodDisruptionBudget selecting the Deployment's pods").toBeDefined();
          expect(budget!.spec.maxUnavailable).toBe(1);
          expect(doc.spec.selector).toEqual(budget!.spec.selector);
        });
      } else {
        test("ephemeral runners: one run each, pods not restarted", () => {
          expect(config().maxRuns).toBe(1);
          expect(config().exitAfterIdleSeconds).toBeGreaterThan(0);
          expect(pod.restartPolicy).toBe("Never");
        });
      }

      if (doc.kind === "ScaledJob") {
        test("its pod template is job.yaml's: the same Secret, stop timeouts and limits", () => {
          const job = ofKind("Job")[0]!.doc;
          expect(template).toEqual(job.spec.template);
          expect(doc.spec.jobTargetRef.backoffLimit).toBe(job.spec.backoffLimit);
        });

        test("triggered by the coordinator's pending runs: GET /runs?status=pending, counted with runs.#", () => {
          const [trigger, ...others] = doc.spec.triggers;
          expect(others).toEqual([]);
          expect(trigger.type).toBe("metrics-api");
          expect(trigger.metadata).toMatchObject({
            url: `${config().coordinatorUrl}/runs?status=pending`,
            format: "json",
            // The reference coordinator's list_runs answers {"runs": [...]}; GJSON's # counts an array.
            valueLocation: "runs.#",
            targetValue: "1",
          });
          expect(doc.spec.scalingStrategy).toEqual({ strategy: "accurate", pendingPodConditions: ["Ready"] });
          expect(doc.spec.maxReplicaCount).toBeGreaterThan(0);
        });

        test("its bearer token comes from a Secret of its own, through a TriggerAuthentication in these files", () => {
          const trigger = doc.spec.triggers[0];
          expect(trigger.metadata.authMode).toBe("bearer");
          const auth = byName("TriggerAuthentication", trigger.authenticationRef.name);
          expect(auth).toBeDefined();
          expect(auth!.spec.secretTargetRef).toHaveLength(1);
          const { parameter, name, key } = auth!.spec.secretTargetRef[0];
          expect(parameter).toBe("token");
          expect(Object.keys(byName("Secret", name)?.stringData ?? {})).toEqual([key]);
          // Not a Secret the runners read: its token would reach them as a variable.
          expect(envSecrets.has(name)).toBe(false);
        });
      }
    });
  }
});

/** A unit file's [Section] Key=value lines, in order (repeated keys kept). */
function unitEntries(text: string): Array<{ section: string; key: string; value: string }> {
  let section = "";
  const entries: Array<{ section: string; key: string; value: string }> = [];
  for (const line of text.split("\n")) {
    if (/^\s*([#;]|$)/.test(line)) continue;
    const header = /^\[(.+)\]$/.exec(line.trim());
    if (header) section = header[1]!;
    else {
      const at = line.indexOf("=");
      entries.push({ section, key: line.slice(0, at).trim(), value: line.slice(at + 1).trim() });
    }
  }
  return entries;
}

/** `A=1 B="two words"` as systemd splits an Environment= line. */
function assignments(value: string): Array<[string, string]> {
  return [...value.matchAll(/"([^"]*)"|(\S+)/g)].map((match) => {
    const word = match[1] ?? match[2]!;
    const at = word.indexOf("=");
    return [word.slice(0, at), word.slice(at + 1)];
  });
}

describe("systemd/agent-runner.service", () => {
  const unitPath = join(DEPLOY, "systemd", "agent-runner.service");
  const unit = readFileSync(unitPath, "utf8");
  const entries = unitEntries(unit);
  const service = (key: string) => entries.filter((e) => e.section === "Service" && e.key === key).map((e) => e.value);

  const env: Record<string, string> = {};
  for (const line of readFileSync(join(DEPLOY, "systemd", "agent-runner.env.example"), "utf8").split("\n")) {
    if (line.trim() && !line.startsWith("#")) Object.assign(env, Object.fromEntries(assignments(line)));
  }
  for (const value of service("Environment")) Object.assign(env, Object.fromEntries(assignments(value)));
  const [binary, ...args] = service("ExecStart")[0]!.split(/\s+/);
  const config = lazy(() => runnerConfig(args, env));

  test("its flags, its variables and the env file's are known, with accepted values", () => {
    expect(binary).toEndWith("/agent-runner");
    expect(service("EnvironmentFile")).toEqual(["/etc/agent-runner/agent-runner.env"]);
    expect(config().auth).toBeDefined();
  });

  test("KillMode=mixed, Delegate=yes, Restart=on-failure, and TimeoutStopSec longer than a drain", () => {
    expect(service("KillMode")).toEqual(["mixed"]);
    // A cgroup per run needs the service's cgroup delegated to its user.
    expect(service("Delegate")).toEqual(["yes"]);
    expect(service("Restart")).toEqual(["on-failure"]);
    expect(Number(service("TimeoutStopSec")[0])).toBeGreaterThan(drainSeconds(config()));
  });

  test("the secret stays out of the unit", () => {
    for (const name of AUTH_VARIABLES) expect(service("Environment").join(" ")).not.toContain(name);
  });

  const analyze = Bun.which("systemd-analyze");
  // The reason is printed by bun test as the skipped test's name.
  const verifyName = analyze
    ? "systemd-analyze verify accepts it (pointed at a real binary), and would catch a typo"
    : "systemd-analyze verify: SKIPPED, systemd-analyze is not installed (Debian package systemd; .ci/run installs it)";
  test.skipIf(!analyze)(verifyName, async () => {
    const dir = temp.make("ar-unit-");
    const copy = join(dir, "agent-runner.service");
    // verify refuses an ExecStart binary that does not exist here; any real executable will do.
    writeFileSync(copy, unit.replace(/^ExecStart=\S+/m, `ExecStart=${process.execPath}`));
    const verified = await runProcess([analyze!, "verify", copy]);
    expect({ exitCode: verified.exitCode, output: verified.stdout + verified.stderr }).toEqual({
      exitCode: 0,
      output: "",
    });

    const typo = join(dir, "typo.service");
    writeFileSync(typo, readFileSync(copy, "utf8").replace(/^KillMode=mixed$/m, "KillMod=mixed"));
    const caught = await runProcess([analyze!, "verify", typo]);
    expect(caught.stdout + caught.stderr).toContain("Unknown key 'KillMod'");
  });
});

describe("Dockerfile", () => {
  const text = readFileSync(join(DEPLOY, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const lines = text.split("\n").filter((line) => line.trim() && !line.trimStart().startsWith("#"));
  const runtime = lines.slice(lines.findLastIndex((line) => line.startsWith("FROM ")));
  const instruction = (name: string) =>
    runtime.filter((line) => line.startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());

  const env: Record<string, string> = {};
  for (const value of instruction("ENV")) Object.assign(env, Object.fromEntries(assignments(value)));
  const entrypoint = JSON.parse(instruction("ENTRYPOINT")[0]!) as string[];
  const cmd = JSON.parse(instruction("CMD")[0]!) as string[];
  const config = lazy(() => runnerConfig(cmd, env));

  test("multi-stage: the build stage builds the executable, the runtime stage copies it", () => {
    expect(lines.filter((line) => line.startsWith("FROM ")).length).toBeGreaterThanOrEqual(2);
    expect(text).toContain("RUN bun run build");
    expect(instruction("COPY").some((line) => line.startsWith("--from=build"))).toBe(true);
  });

  test("the runner is the entrypoint, run by a non-root user, stopped with SIGTERM", () => {
    expect(entrypoint.at(-1)).toBe("/opt/agent-runner/agent-runner");
    expect(instruction("USER")).toHaveLength(1);
    expect(instruction("USER")[0]).not.toMatch(/^(root|0)$/);
    expect(instruction("STOPSIGNAL")).toEqual(["SIGTERM"]);
  });

  test("the Claude Code binary lands in node_modules beside the executable, where the runner looks", () => {
    expect(text).toContain(
      "cp -R node_modules/@anthropic-ai/claude-agent-sdk-linux-* /out/node_modules/@anthropic-ai/",
    );
    expect(text).toContain("cp dist/agent-runner /out/");
  });

  test("its variables and CMD flags are known; HEALTHCHECK asks /healthz on HEALTH_ADDR's port", () => {
    expect(config().healthAddr).toEqual({ host: "0.0.0.0", port: 9464 });
    expect(instruction("HEALTHCHECK")[0]).toContain(`http://127.0.0.1:${config().healthAddr!.port}/healthz`);
  });
});
