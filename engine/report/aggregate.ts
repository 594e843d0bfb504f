/**
 * Runs that differ only in their seed form one series (a "method"): their final figures become
 * mean, standard deviation and range over seeds, their curves a mean curve with a min–max band.
 * Diverged runs stay in the count (and in the curves for the epochs they finished); they never
 * silently vanish from a mean.
 */
import { spread, type Spread } from "./stats.ts";

/** One epoch of one run, as much of it as the run recorded. */
export interface CurvePoint {
  epoch: number;
  testAccuracy?: number;
  elapsedSeconds?: number;
  trainLoss?: number;
  consensusDistance?: number;
}

/** The figures a run ends with (a diverged run has none of the accuracy ones). */
export type FinalMetric = "finalAccuracy" | "samplesPerSec" | "seconds" | "stalenessMean" | "consensusDistance" | "inconsistency";
/** Everything a claim or the table can compare: the final figures and the time to the target accuracy. */
export type Metric = FinalMetric | "timeToTarget";

export interface MetricInfo {
  /** Column heading and claim wording. */
  label: string;
  better: "higher" | "lower";
  /** How a value reads: accuracies as percentages, the rest with 3 significant digits. */
  kind: "fraction" | "seconds" | "rate" | "small";
}

export const METRICS: Record<Metric, MetricInfo> = {
  finalAccuracy: { label: "final test accuracy", better: "higher", kind: "fraction" },
  timeToTarget: { label: "time to target accuracy", better: "lower", kind: "seconds" },
  samplesPerSec: { label: "samples/s", better: "higher", kind: "rate" },
  seconds: { label: "run time", better: "lower", kind: "seconds" },
  stalenessMean: { label: "mean staleness", better: "lower", kind: "small" },
  consensusDistance: { label: "consensus distance", better: "lower", kind: "small" },
  inconsistency: { label: "weight inconsistency", better: "lower", kind: "small" },
};

export interface RunRecord {
  /** The series it belongs to: runs with the same method differ only in seed. */
  method: string;
  /** The panel it is drawn in when a suite has too many methods for one chart. */
  group?: string;
  /** The run's own name (method and seed). */
  label: string;
  seed?: number;
  /** Why it stopped, when it diverged. */
  diverged?: string;
  final: Partial<Record<FinalMetric, number>>;
  curve: CurvePoint[];
}

/** Wall time (elapsedSeconds) of the first epoch at or above `target`; Infinity if the run never got there. */
export function timeToTarget(curve: readonly CurvePoint[], target: number): number {
  for (const p of curve) if (p.testAccuracy !== undefined && p.testAccuracy >= target && p.elapsedSeconds !== undefined) return p.elapsedSeconds;
  return Infinity;
}

/**
 * A run's value of `metric` for comparisons: a diverged run is the worst possible (−∞ accuracy, +∞
 * time to target), a finished run that never reached the target takes +∞; undefined where unknown.
 */
export function metricOf(run: RunRecord, metric: Metric, target?: number): number | undefined {
  if (metric === "timeToTarget") {
    if (target === undefined) return undefined;
    return run.diverged !== undefined ? Infinity : timeToTarget(run.curve, target);
  }
  if (run.diverged !== undefined) return metric === "finalAccuracy" ? -Infinity : undefined;
  const v = run.final[metric];
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

export interface CurveAggregate {
  epoch: number;
  /** Runs that recorded this epoch. */
  n: number;
  testAccuracy?: Spread;
  elapsedSeconds?: Spread;
  trainLoss?: Spread;
  consensusDistance?: Spread;
}

export interface MethodAggregate {
  method: string;
  group?: string;
  runs: number;
  finished: number;
  diverged: number;
  /** "label: reason" of each diverged run. */
  divergedRuns: string[];
  seeds: number[];
  /** Over finished runs; time to target over the runs that reached it. */
  metrics: Partial<Record<Metric, Spread>>;
  /** Runs that reached the target accuracy (when there is a target). */
  reached?: number;
  curve: CurveAggregate[];
}

const CURVE_FIELDS = ["testAccuracy", "elapsedSeconds", "trainLoss", "consensusDistance"] as const;

/** One entry per method, in order of first appearance. */
export function aggregate(records: readonly RunRecord[], target?: number): MethodAggregate[] {
  const byMethod = new Map<string, RunRecord[]>();
  for (const r of records) {
    const list = byMethod.get(r.method);
    if (list) list.push(r);
    else byMethod.set(r.method, [r]);
  }
  return [...byMethod].map(([method, runs]) => {
    const finished = runs.filter((r) => r.diverged === undefined);
    const metrics: Partial<Record<Metric, Spread>> = {};
    for (const m of Object.keys(METRICS) as Metric[]) {
      if (m === "timeToTarget") continue;
      const s = spread(finished.flatMap((r) => (typeof r.final[m] === "number" ? [r.final[m]!] : [])));
      if (s) metrics[m] = s;
    }
    let reached: number | undefined;
    if (target !== undefined) {
      const times = runs.map((r) => metricOf(r, "timeToTarget", target)!);
      reached = times.filter(Number.isFinite).length;
      const s = spread(times);
      if (s) metrics.timeToTarget = s;
    }
    // Each run's first point per epoch, looked up by epoch (linear in the points, however many epochs).
    const byEpoch = runs.map((r) => {
      const m = new Map<number, CurvePoint>();
      for (const p of r.curve) if (!m.has(p.epoch)) m.set(p.epoch, p);
      return m;
    });
    const epochs = [...new Set(byEpoch.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
    const curve = epochs.map((epoch): CurveAggregate => {
      const points = byEpoch.flatMap((m) => (m.has(epoch) ? [m.get(epoch)!] : []));
      const agg: CurveAggregate = { epoch, n: points.length };
      for (const f of CURVE_FIELDS) {
        const s = spread(points.flatMap((p) => (typeof p[f] === "number" ? [p[f]!] : [])));
        if (s) agg[f] = s;
      }
      return agg;
    });
    return {
      method,
      ...(runs[0]!.group !== undefined ? { group: runs[0]!.group } : {}),
      runs: runs.length,
      finished: finished.length,
      diverged: runs.length - finished.length,
      divergedRuns: runs.filter((r) => r.diverged !== undefined).map((r) => `${r.label}: ${r.diverged}`),
      seeds: runs.flatMap((r) => (r.seed !== undefined ? [r.seed] : [])),
      metrics,
      ...(reached !== undefined ? { reached } : {}),
      curve,
    };
  });
}

/** A value as the tables print it. */
export function formatValue(x: number | undefined, kind: MetricInfo["kind"]): string {
  if (x === undefined || Number.isNaN(x)) return "–";
  if (x === Infinity) return "never";
  if (x === -Infinity) return "diverged";
  if (kind === "fraction") return `${(x * 100).toFixed(2)}%`;
  if (kind === "rate") return x >= 100 ? x.toFixed(0) : String(Number(x.toPrecision(3)));
  if (kind === "small" && x !== 0 && (Math.abs(x) < 1e-2 || Math.abs(x) >= 1e4)) return x.toExponential(2);
  return `${Number(x.toPrecision(3))}${kind === "seconds" ? " s" : ""}`;
}

/** A difference as the claim tables print it: accuracies in percentage points. */
export function formatDifference(x: number | undefined, kind: MetricInfo["kind"]): string {
  if (x === undefined || Number.isNaN(x)) return "–";
  if (kind === "fraction") return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)} pt`;
  const text = formatValue(x, kind);
  return x > 0 && !text.startsWith("+") ? `+${text}` : text;
}

/** "mean ± std" (just the value for one run). */
export function formatSpread(s: Spread | undefined, kind: MetricInfo["kind"]): string {
  if (!s) return "–";
  if (s.n === 1) return formatValue(s.mean, kind);
  if (kind === "fraction") return `${formatValue(s.mean, kind)} ± ${(s.std * 100).toFixed(2)} pt`;
  if (kind === "seconds") return `${Number(s.mean.toPrecision(3))} ± ${Number(s.std.toPrecision(2))} s`;
  return `${formatValue(s.mean, kind)} ± ${formatValue(s.std, kind === "rate" ? "rate" : "small")}`;
}

/** "min–max" (empty for one run). */
export function formatRange(s: Spread | undefined, kind: MetricInfo["kind"]): string {
  if (!s || s.n === 1) return "";
  return `${formatValue(s.min, kind)}–${formatValue(s.max, kind)}`;
}
