/**
 * What an experiment folder adds up to: one row per method (aggregated over seeds) and one per claim
 * (with its verdict), read back from the folder itself so the CLI's table, aggregate.csv, claims.csv
 * and the HTML report all come from the same numbers.
 */
import { writeFileAtomic } from "../checkpoint/atomic-file.ts";
import { join } from "node:path";
import { aggregate, type MethodAggregate, type Metric } from "../report/aggregate.ts";
import { evaluateClaim, verdictText, type ClaimResult } from "../report/claims.ts";
import { loadFolders, type ExperimentMeta } from "../report/load.ts";
import type { Spread } from "../report/stats.ts";
import type { Suite, SuiteVariant } from "./suites.ts";

export interface ExperimentSummary {
  suite: string;
  target: number;
  /** Method names are the suite's run labels. */
  methods: MethodAggregate[];
  claims: ClaimResult[];
}

/** experiment.json: what the report needs to know about the suite beyond its runs. */
export function experimentMeta(suite: string, mode: "quick" | "full", about: Suite["about"], variant: SuiteVariant): ExperimentMeta {
  return {
    suite,
    mode,
    about,
    target: variant.target,
    groups: Object.fromEntries(variant.runs.flatMap((r) => (r.group !== undefined ? [[r.label, r.group]] : []))),
    // Only claims about runs this variant has (a test may replace the runs).
    claims: variant.claims.filter((c) => [c.a, c.b].every((l) => variant.runs.some((r) => r.label === l))),
  };
}

export async function summarizeExperiment(out: string, meta: ExperimentMeta): Promise<ExperimentSummary> {
  const { records } = await loadFolders([out]);
  const prefix = `${meta.suite}/`;
  const own = records.map((r) => ({ ...r, method: r.method.startsWith(prefix) ? r.method.slice(prefix.length) : r.method }));
  const target = meta.target ?? 1;
  return {
    suite: meta.suite,
    target,
    methods: aggregate(own, target),
    claims: (meta.claims ?? []).map((c) => evaluateClaim(c, own, target)),
  };
}

const AGGREGATE_METRICS: Metric[] = ["finalAccuracy", "timeToTarget", "samplesPerSec", "seconds", "stalenessMean", "consensusDistance", "inconsistency"];

const csvField = (value: unknown): string => {
  if (value === undefined || value === null || (typeof value === "number" && !Number.isFinite(value))) return "";
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
};
const csv = (header: string[], rows: unknown[][]) => [header.join(","), ...rows.map((r) => r.map(csvField).join(","))].join("\n") + "\n";

/** aggregate.csv: per method, n and for each metric mean, sd, min, max (time to target over the runs that reached it). */
export function aggregateCsv(s: ExperimentSummary): string {
  const stats = (x: Spread | undefined) => [x?.mean, x?.std, x?.min, x?.max];
  const header = ["suite", "method", "group", "runs", "finished", "diverged", "seeds", "target", "reachedTarget", ...AGGREGATE_METRICS.flatMap((m) => ["mean", "sd", "min", "max"].map((k) => `${m}_${k}`))];
  const rows = s.methods.map((m) => [s.suite, m.method, m.group, m.runs, m.finished, m.diverged, m.seeds.join(" "), s.target, m.reached, ...AGGREGATE_METRICS.flatMap((k) => stats(m.metrics[k]))]);
  return csv(header, rows);
}

/** claims.csv: per claim, the paired differences' mean and sd, the t-interval, the sign test and the verdict. */
export function claimsCsv(s: ExperimentSummary): string {
  const header = ["suite", "claim", "metric", "a", "b", "relation", "tolerance", "pairs", "a_mean", "b_mean", "difference_mean", "difference_sd", "t_lo", "t_hi", "sign_plus", "sign_minus", "sign_ties", "sign_p", "decided_by", "verdict"];
  const rows = s.claims.map((r) => [
    s.suite, r.claim.text, r.claim.metric, r.claim.a, r.claim.b, r.claim.relation, r.claim.tolerance ?? 0, r.pairs,
    r.a?.mean, r.b?.mean, r.difference?.mean, r.difference?.std, r.tInterval?.lo, r.tInterval?.hi,
    r.sign.plus, r.sign.minus, r.sign.ties, r.sign.p, r.decidedBy, verdictText(r),
  ]);
  return csv(header, rows);
}

export async function writeSummary(out: string, s: ExperimentSummary): Promise<void> {
  await writeFileAtomic(join(out, "aggregate.csv"), aggregateCsv(s));
  await writeFileAtomic(join(out, "claims.csv"), claimsCsv(s));
}
