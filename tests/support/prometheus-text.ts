/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4), for asserting on
 * /metrics: every line must be a comment, HELP, TYPE or a well-formed sample of a declared family,
 * or it throws naming the line. (The lenient parsers on npm accept garbage as untyped samples.)
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help?: string;
  samples: Sample[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = '([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"';
/** NaN in any case, as Prometheus reads it (prom-client writes `Nan`). */
const VALUE = "([Nn][Aa][Nn]|[+-]Inf|[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL},?)*)\\})? ${VALUE}(?: -?\\d+)?$`);
const LABELS = new RegExp(LABEL, "g");
const HELP = new RegExp(`^# HELP (${NAME})(?: (.*))?$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

const SUFFIXES: Record<MetricFamily["type"], string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

function unescapeText(text: string): string {
  return text.replace(/\\(.)/g, (_, char: string) => (char === "n" ? "\n" : char));
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

/** Parses the whole text; throws on the first line that does not follow the format. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline");
  const families = new Map<string, MetricFamily>();
  const seen = new Set<string>();
  const familyOf = (sampleName: string) => {
    for (const family of families.values()) {
      if (SUFFIXES[family.type].some((suffix) => `${family.name}${suffix}` === sampleName)) return family;
    }
    return undefined;
  };
  text
    .slice(0, -1)
    .split("\n")
    .forEach((line, index) => {
      const where = `line ${index + 1} ${JSON.stringify(line)}`;
      if (line === "") return;
      const help = HELP.exec(line);
      if (help) {
        const family = families.get(help[1]!);
        if (family?.help !== undefined) throw new Error(`${where}: second HELP for ${help[1]}`);
        if (family) family.help = unescapeText(help[2] ?? "");
        else
          families.set(help[1]!, { name: help[1]!, type: "untyped", help: unescapeText(help[2] ?? ""), samples: [] });
        return;
      }
      const type = TYPE.exec(line);
      if (type) {
        const family = families.get(type[1]!);
        if (family && (family.samples.length > 0 || family.type !== "untyped")) {
          throw new Error(`${where}: TYPE after samples or a second TYPE for ${type[1]}`);
        }
        const declared = type[2] as MetricFamily["type"];
        if (family) family.type = declared;
        else families.set(type[1]!, { name: type[1]!, type: declared, samples: [] });
        return;
      }
      if (line.startsWith("#")) {
        if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`${where}: malformed ${line.split(" ")[1]} line`);
        return;
      }
      const sample = SAMPLE.exec(line);
      if (!sample) throw new Error(`${where}: not a valid sample`);
      const [, name, labelText = "", , , valueText] = sample;
      const labels: Record<string, string> = {};
      for (const [, label, value] of labelText.matchAll(LABELS)) {
        if (label! in labels) throw new Error(`${where}: label ${label} twice`);
        labels[label!] = unescapeText(value!);
      }
      const family = familyOf(name!);
      if (!family) throw new Error(`${where}: sample of ${name} without a TYPE line before it`);
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`${where}: duplicate sample`);
      seen.add(key);
      family.samples.push({ name: name!, labels, value: parseValue(valueText!) });
    });
  for (const family of families.values()) if (family.type === "histogram") checkHistogram(family);
  return families;
}

/** Buckets never decrease, and the +Inf bucket holds every observation (`_count`). */
function checkHistogram(family: MetricFamily): void {
  const series = new Map<string, Sample[]>();
  for (const sample of family.samples.filter((s) => s.name.endsWith("_bucket"))) {
    const { le, ...rest } = sample.labels;
    if (le === undefined) throw new Error(`${family.name}: bucket without le`);
    const key = JSON.stringify(Object.entries(rest).sort());
    series.set(key, [...(series.get(key) ?? []), sample]);
  }
  for (const [key, buckets] of series) {
    const bounds = buckets.map((bucket) => parseValue(bucket.labels.le!));
    if (bounds.some((bound, i) => i > 0 && bound <= bounds[i - 1]!))
      throw new Error(`${family.name}: le not ascending`);
    if (bounds.at(-1) !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}${key}: no +Inf bucket`);
    if (buckets.some((bucket, i) => i > 0 && bucket.value < buckets[i - 1]!.value)) {
      throw new Error(`${family.name}${key}: bucket counts decrease`);
    }
    const count = family.samples.find(
      (s) => s.name === `${family.name}_count` && JSON.stringify(Object.entries(s.labels).sort()) === key,
    );
    if (count?.value !== buckets.at(-1)!.value) throw new Error(`${family.name}${key}: _count is not the +Inf bucket`);
  }
}

/** The value of one sample, found by name and (a subset of) its labels; undefined if absent. */
export function sampleValue(
  families: Map<string, MetricFamily>,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const family of families.values()) {
    const sample = family.samples.find(
      (s) => s.name === name && Object.entries(labels).every(([label, value]) => s.labels[label] === value),
    );
    if (sample) return sample.value;
  }
  return undefined;
}
