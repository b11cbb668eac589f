/** Small statistics shared by the bench sections. */
export type Percentiles = { p50: number; p95: number; p99: number };

export const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Nearest-rank percentiles (no interpolation: every value reported was measured). */
export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? NaN);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99) };
}

export function median(values: number[]): number {
  return percentiles(values).p50;
}
