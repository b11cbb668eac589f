/**
 * Kubernetes and KEDA manifests checked against the API's schemas, with the models of the
 * `kubernetes-models` and `@kubernetes-models/keda` packages. Their `validate()` checks types,
 * required fields and enums, but lets unknown fields through (a typo such as `imagePulPolicy`
 * passes), and the packages ship compiled validators, not the JSON schemas. So each manifest is
 * also written out as a TypeScript object literal typed with the model's interface (generated from
 * the same OpenAPI schema) and type-checked with tsc: an object literal may only name known
 * properties, at any depth. tsc names the first unknown field of each manifest.
 */
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ScaledJob, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { Deployment } from "kubernetes-models/apps/v1";
import { Job } from "kubernetes-models/batch/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { Secret } from "kubernetes-models/v1";
import { REPO_ROOT, runProcess } from "./processes.ts";

interface ModelClass {
  new (data: never): { validate(): void };
}

/** Every kind the deploy files may use: its model class, and its interface for tsc. */
const MODELS: Record<string, { model: ModelClass; module: string; type: string }> = {
  "apps/v1 Deployment": { model: Deployment, module: "kubernetes-models/apps/v1/Deployment", type: "IDeployment" },
  "batch/v1 Job": { model: Job, module: "kubernetes-models/batch/v1/Job", type: "IJob" },
  "v1 Secret": { model: Secret, module: "kubernetes-models/v1/Secret", type: "ISecret" },
  "policy/v1 PodDisruptionBudget": {
    model: PodDisruptionBudget,
    module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    type: "IPodDisruptionBudget",
  },
  "keda.sh/v1alpha1 ScaledJob": {
    model: ScaledJob,
    module: "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledJob",
    type: "IScaledJob",
  },
  "keda.sh/v1alpha1 TriggerAuthentication": {
    model: TriggerAuthentication,
    module: "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication",
    type: "ITriggerAuthentication",
  },
};

export interface Manifest {
  /** Where it comes from, for messages (e.g. `deployment.yaml #2`). */
  name: string;
  doc: Record<string, unknown>;
}

const kindOf = (doc: Record<string, unknown>) => `${doc.apiVersion} ${doc.kind}`;

/** The model's own validation (types, required fields, enums): one message per refused manifest. */
export function modelProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  for (const { name, doc } of manifests) {
    const entry = MODELS[kindOf(doc)];
    if (!entry) {
      problems.push(`${name}: no model for ${kindOf(doc)} (known: ${Object.keys(MODELS).join(", ")})`);
      continue;
    }
    try {
      new entry.model(structuredClone(doc) as never).validate();
    } catch (error) {
      problems.push(`${name}: ${(error as Error).message}`);
    }
  }
  return problems;
}

/**
 * Fields the models do not know, found by tsc: one message per manifest that has one (its first),
 * naming the manifest, the field and the type it is not part of.
 */
export async function unknownFieldProblems(manifests: Manifest[]): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "ar-manifest-types-"));
  try {
    // The packages resolve from here as from the repository.
    symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"));
    const lines: string[] = [];
    const names: string[] = [];
    manifests.forEach(({ doc }, index) => {
      const entry = MODELS[kindOf(doc)];
      if (!entry) return;
      lines.push(`import type { ${entry.type} as T${index} } from "${entry.module}";`);
    });
    manifests.forEach(({ name, doc }, index) => {
      if (!MODELS[kindOf(doc)]) return;
      names[lines.length + 1] = name;
      lines.push(`export const m${index}: T${index} = ${JSON.stringify(doc)};`);
    });
    writeFileSync(join(dir, "manifests.ts"), `${lines.join("\n")}\n`);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          module: "Preserve",
          moduleResolution: "bundler",
          skipLibCheck: true,
          types: [],
        },
        files: ["manifests.ts"],
      }),
    );
    const tsc = await runProcess([join(REPO_ROOT, "node_modules", ".bin", "tsc"), "-p", dir], { cwd: dir });
    const output = tsc.stdout + tsc.stderr;
    const problems = output
      .split("\n")
      .map((line) => /^manifests\.ts\((\d+),\d+\): error TS\d+: (.*)$/.exec(line))
      .filter((match) => match !== null)
      .map((match) => `${names[Number(match[1])] ?? `line ${match[1]}`}: ${match[2]}`);
    if (tsc.exitCode !== 0 && problems.length === 0) throw new Error(`tsc failed:\n${output}`);
    return problems;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
