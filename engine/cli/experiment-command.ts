/**
 * `skein experiment <suite>`: run one of the comparison suites (engine/experiments/suites.ts), one run
 * folder per run plus results.json and results.csv; a line per run on stderr; on stdout a table with
 * one row per method (over seeds) and each of the suite's claims with its verdict (or with --json,
 * one summary object as the last line).
 */
import { UserError } from "../errors.ts";
import { runExperiment } from "../experiments/run.ts";
import type { ExperimentSummary } from "../experiments/summary.ts";
import { formatDifference, formatRange, formatSpread, METRICS, type MethodAggregate, type Metric } from "../report/aggregate.ts";
import { claimFormula, verdictText } from "../report/claims.ts";
import { SUITE_NAMES, SUITES } from "../experiments/suites.ts";
import { formatHelp, formatSection, parseFlags, type FlagSpec } from "./flags.ts";

export const EXPERIMENT_FLAGS: FlagSpec[] = [
  { name: "quick", type: "bool", help: "the smoke-test form: few configs, 1 epoch, under a minute" },
  { name: "out", type: "string", valueName: "DIR", help: "experiment folder (default runs/experiment-<name>-<timestamp>)" },
  { name: "seeds", type: "string", valueName: "LIST", help: "comma-separated seeds, replacing the suite's (e.g. 1,2)" },
  { name: "json", type: "bool", help: "print {suite, out, rows, seconds, claims} as one JSON object on the last line of stdout" },
];

export const EXPERIMENT_HELP = formatHelp(
  "skein experiment <suite> [--quick] [--out DIR] [--seeds 1,2] [--json]",
  "Run a suite of training runs that compare algorithms on the same model, data and cores, then test the\nsuite's claims over the seeds. Writes results.json/.csv (per run), aggregate.csv (per method), claims.csv\n(per claim, with its verdict), experiment.json and one folder per run; `skein report DIR` draws them.",
  EXPERIMENT_FLAGS,
  `${formatSection("Suites", SUITE_NAMES.map((n) => [n, SUITES[n].about] as const))}\n\nExample: skein experiment all --quick --out runs/all-quick`,
);

export async function experimentCommand(argv: string[]): Promise<number> {
  const named = argv[0] !== undefined && !argv[0].startsWith("-");
  const name = named ? argv[0]! : undefined;
  const flags = parseFlags("experiment", named ? argv.slice(1) : argv, EXPERIMENT_FLAGS);
  if (flags.help) {
    process.stdout.write(EXPERIMENT_HELP);
    return 0;
  }
  if (name === undefined) throw new UserError(`missing suite name: skein experiment <${SUITE_NAMES.join("|")}> (see skein experiment --help)`);
  if (!(SUITE_NAMES as readonly string[]).includes(name)) throw new UserError(`unknown experiment '${name}' (one of ${SUITE_NAMES.join(", ")})`);
  const v = flags.values;
  const seeds = v.seeds === undefined ? undefined : parseSeeds(String(v.seeds));
  const json = Boolean(v.json);
  const started = performance.now();
  const { out, rows, summary } = await runExperiment(name, {
    quick: Boolean(v.quick),
    out: v.out === undefined ? undefined : String(v.out),
    seeds,
    onRun: (line) => process.stderr.write(line + "\n"),
  });
  const seconds = (performance.now() - started) / 1000;
  const verdicts = summary.claims.map((r) => ({ claim: r.claim.text, verdict: r.verdict, pairs: r.pairs }));
  if (json) process.stdout.write(JSON.stringify({ suite: name, out, rows: rows.length, seconds, claims: verdicts }) + "\n");
  else {
    const claims = formatClaims(summary);
    process.stdout.write(`${formatMethods(summary)}\n\n${claims ? `${claims}\n\n` : ""}${rows.length} runs in ${seconds.toFixed(1)} s; per run: ${out}/results.json and results.csv; per method: aggregate.csv; claims: claims.csv\n`);
  }
  return 0;
}

export function parseSeeds(text: string): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const seeds = parts.map(Number);
  if (parts.some((p) => p === "") || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > 2 ** 31 - 1)) {
    throw new UserError(`--seeds ${text}: want comma-separated whole numbers in 0..2147483647`);
  }
  return seeds;
}

/** One row per method: runs of a label over the seeds, mean ± sd (diverged runs counted in n). */
export function formatMethods(s: ExperimentSummary): string {
  const has = (m: Metric) => s.methods.some((a) => a.metrics[m]);
  const cols: { head: string; cell: (a: MethodAggregate) => string }[] = [
    { head: "method", cell: (a) => a.method },
    { head: "n", cell: (a) => `${a.runs}${a.diverged ? ` (${a.diverged} diverged)` : ""}` },
    { head: "final acc (mean ± sd)", cell: (a) => formatSpread(a.metrics.finalAccuracy, "fraction") },
    { head: "min–max", cell: (a) => formatRange(a.metrics.finalAccuracy, "fraction") },
    { head: `time to ${Number((s.target * 100).toFixed(1))}%`, cell: (a) => `${formatSpread(a.metrics.timeToTarget, "seconds")}${a.reached !== a.runs ? ` (${a.reached}/${a.runs} reached)` : ""}` },
    { head: "samples/s", cell: (a) => formatSpread(a.metrics.samplesPerSec, "rate") },
  ];
  if (has("stalenessMean")) cols.push({ head: "staleness", cell: (a) => formatSpread(a.metrics.stalenessMean, "small") });
  if (has("consensusDistance")) cols.push({ head: "consensus", cell: (a) => formatSpread(a.metrics.consensusDistance, "small") });
  if (has("inconsistency")) cols.push({ head: "inconsistency", cell: (a) => formatSpread(a.metrics.inconsistency, "small") });
  const body = s.methods.map((a) => cols.map((c) => c.cell(a)));
  const widths = cols.map((c, i) => Math.max(c.head.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(cols.map((c) => c.head)), ...body.map(line)].join("\n");
}

/** Each claim: its formula, the measured difference with its spread, both paired tests, and the verdict. */
export function formatClaims(s: ExperimentSummary): string {
  if (!s.claims.length) return "";
  const lines = [`Claims (runs paired by seed; t: 95% paired t-interval of A − B; sign: exact two-sided sign test, + = seeds on the claimed side):`];
  for (const r of s.claims) {
    const kind = METRICS[r.claim.metric].kind;
    const diff = r.difference ? `${formatDifference(r.difference.mean, kind)}${r.difference.n > 1 ? ` (sd ${formatDifference(r.difference.std, kind).replace(/^\+/, "")})` : ""}` : "–";
    const infinite = r.difference && r.difference.n < r.pairs ? `, ${r.pairs - r.difference.n} of ${r.pairs} pairs infinite` : "";
    const t = r.tInterval ? `t [${formatDifference(r.tInterval.lo, kind)}, ${formatDifference(r.tInterval.hi, kind)}]` : "t –";
    const sign = `sign ${r.sign.plus}+/${r.sign.minus}−/${r.sign.ties}= p=${r.sign.p.toPrecision(2)}`;
    lines.push(`  ${verdictText(r).toUpperCase().padEnd(22)} ${r.claim.text}`);
    lines.push(`  ${"".padEnd(22)} ${claimFormula(r.claim)}: A − B = ${diff}${infinite}; ${t}; ${sign}; n = ${r.pairs}${r.decidedBy !== "none" ? `; by ${r.decidedBy}` : ""}`);
  }
  return lines.join("\n");
}
