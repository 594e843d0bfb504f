/**
 * `skein experiment <suite>`: run one of the comparison suites (engine/experiments/suites.ts), one run
 * folder per run plus results.json and results.csv; a line per run on stderr, a table (or with
 * --json, one summary object as the last line) on stdout.
 */
import { UserError } from "../errors.ts";
import { runExperiment, type ResultRow } from "../experiments/run.ts";
import { SUITE_NAMES, SUITES } from "../experiments/suites.ts";
import { formatHelp, formatSection, parseFlags, type FlagSpec } from "./flags.ts";

export const EXPERIMENT_FLAGS: FlagSpec[] = [
  { name: "quick", type: "bool", help: "the smoke-test form: few configs, 1 epoch, under a minute" },
  { name: "out", type: "string", valueName: "DIR", help: "experiment folder (default runs/experiment-<name>-<timestamp>)" },
  { name: "seeds", type: "string", valueName: "LIST", help: "comma-separated seeds, replacing the suite's (e.g. 1,2)" },
  { name: "json", type: "bool", help: "print {suite, out, rows, seconds} as one JSON object on the last line of stdout" },
];

export const EXPERIMENT_HELP = formatHelp(
  "skein experiment <suite> [--quick] [--out DIR] [--seeds 1,2] [--json]",
  "Run a suite of training runs that compare algorithms on the same model, data and cores.",
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
  const { out, rows } = await runExperiment(name, {
    quick: Boolean(v.quick),
    out: v.out === undefined ? undefined : String(v.out),
    seeds,
    onRun: (line) => process.stderr.write(line + "\n"),
  });
  const seconds = (performance.now() - started) / 1000;
  if (json) process.stdout.write(JSON.stringify({ suite: name, out, rows: rows.length, seconds }) + "\n");
  else process.stdout.write(formatTable(rows) + `\n${rows.length} runs in ${seconds.toFixed(1)} s; results in ${out}/results.json and results.csv\n`);
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

function formatTable(rows: ResultRow[]): string {
  const header = ["run", "seed", "test acc", "samples/s", "seconds", "notes"];
  const body = rows.map((r) => [
    r.label,
    String(r.seed),
    r.testAccuracy === null ? "–" : `${(r.testAccuracy * 100).toFixed(2)}%`,
    r.samplesPerSec === null ? "–" : r.samplesPerSec.toFixed(0),
    r.seconds.toFixed(1),
    notes(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ").trimEnd();
  return [line(header), ...body.map(line)].join("\n");
}

function notes(r: ResultRow): string {
  if (r.diverged !== undefined) return "diverged";
  const parts: string[] = [];
  if (r.stalenessMean !== undefined) parts.push(`staleness ${r.stalenessMean.toFixed(2)} (max ${r.stalenessMax})`);
  if (r.beta !== undefined) parts.push(`β ${r.beta.toFixed(2)}`);
  if (r.inconsistency) parts.push(`inconsistency ${r.inconsistency.map((x) => x.toExponential(1)).join(" ")}`);
  if (r.consensusDistance !== undefined) parts.push(`consensus ${r.consensusDistance.toExponential(1)}`);
  if (r.nodeTestAccuracy !== undefined) parts.push(`node acc ${(r.nodeTestAccuracy * 100).toFixed(1)}%`);
  return parts.join(", ");
}
