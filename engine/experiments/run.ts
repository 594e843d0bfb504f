/**
 * Runs a suite: every (seed, run) pair in turn — seeds outer, so every run sees every stretch of this
 * shared machine's speed — each into its own run folder, then one row per run in results.json and
 * results.csv. A run that diverges is a result (a row with `diverged`), not a failure of the suite.
 * experiment.json says what the suite claims; at the end aggregate.csv (one row per method, over
 * seeds) and claims.csv (each claim with its verdict) sum it up.
 */
import { overallStaleness } from "../algorithms/async/staleness.ts";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { writeFileAtomic } from "../checkpoint/atomic-file.ts";
import { join } from "node:path";
import { DivergedError, UserError } from "../errors.ts";
import { train, type Summary, type TrainConfig } from "../train.ts";
import { SUITE_NAMES, SUITES, type RunSpec, type SuiteName } from "./suites.ts";
import { experimentMeta, summarizeExperiment, writeSummary, type ExperimentSummary } from "./summary.ts";

export interface ExperimentOptions {
  quick?: boolean;
  /** The experiment folder (default runs/experiment-<name>-<timestamp>). */
  out?: string;
  /** Replace the suite's seeds. */
  seeds?: number[];
  /** One line per finished run (the CLI writes them to stderr). */
  onRun?: (line: string, row: ResultRow) => void;
  /** Replace the suite's runs (tests: a config known to diverge). */
  runs?: RunSpec[];
}

export interface ResultRow {
  suite: string;
  label: string;
  seed: number;
  algo: string;
  model: string;
  data: string;
  workers: number;
  epochs: number;
  batch: number;
  lr: number;
  /** null when the run diverged. */
  testAccuracy: number | null;
  trainLoss: number | null;
  samplesPerSec: number | null;
  /** Wall time of the whole run (start-up, training, evaluation, checkpoints). */
  seconds: number;
  updatesPerSec: number | null;
  /** Asynchronous algorithms: staleness over all applied updates and layers. */
  stalenessMean?: number;
  stalenessMax?: number;
  /** layerwise: backward / forward time per batch. */
  beta?: number;
  /** Pipelines: per stage, ‖W_F − W_B‖² of the last epoch. */
  inconsistency?: number[];
  consensusDistance?: number;
  nodeTestAccuracy?: number;
  /** The RunError message of a run that diverged. */
  diverged?: string;
  /** The run folder, relative to the experiment folder. */
  runDir: string;
}

export const COLUMNS: (keyof ResultRow)[] = [
  "suite", "label", "seed", "algo", "model", "data", "workers", "epochs", "batch", "lr",
  "testAccuracy", "trainLoss", "samplesPerSec", "seconds", "updatesPerSec",
  "stalenessMean", "stalenessMax", "beta", "inconsistency", "consensusDistance", "nodeTestAccuracy", "diverged", "runDir",
];

export function isSuiteName(name: string): name is SuiteName {
  return (SUITE_NAMES as readonly string[]).includes(name);
}

/** What the folder says about the whole suite (run folders are replaced one by one as they run). */
const SUMMARY_FILES = ["results.json", "results.csv", "aggregate.csv", "claims.csv"];

export function defaultOut(name: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, "").replace(/[-:]/g, "").replace("T", "-");
  return join("runs", `experiment-${name}-${stamp}`);
}

export async function runExperiment(name: string, opts: ExperimentOptions = {}): Promise<{ out: string; rows: ResultRow[]; summary: ExperimentSummary }> {
  if (!isSuiteName(name)) throw new UserError(`unknown experiment '${name}' (one of ${SUITE_NAMES.join(", ")})`);
  const variant = SUITES[name][opts.quick ? "quick" : "full"];
  const seeds = opts.seeds ?? variant.seeds;
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s) || s < 0 || s > 2 ** 31 - 1)) {
    throw new UserError(`--seeds ${seeds.join(",")}: want comma-separated whole numbers in 0..2147483647`);
  }
  const specs = opts.runs ?? variant.runs;
  const out = opts.out ?? defaultOut(name);
  try {
    await mkdir(out, { recursive: true });
  } catch (e) {
    throw new UserError(`--out ${out}: cannot create the experiment folder (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  // Running again into the same folder: the last run's summaries go first, so a suite stopped half-way
  // leaves results of this run alone, never beside aggregates and claims of the one before.
  for (const file of SUMMARY_FILES) await rm(join(out, file), { force: true });
  const meta = experimentMeta(name, opts.quick ? "quick" : "full", SUITES[name].about, { ...variant, seeds, runs: specs });
  await writeFileAtomic(join(out, "experiment.json"), JSON.stringify(meta, null, 2) + "\n");
  const plan = seeds.flatMap((seed) => specs.map((spec) => ({ spec, seed })));
  const width = String(plan.length).length;
  const rows: ResultRow[] = [];
  for (const [i, { spec, seed }] of plan.entries()) {
    const runDir = `${String(i + 1).padStart(width, "0")}-${slug(spec.label)}-s${seed}`;
    const row = await runOne(name, spec, seed, join(out, runDir), runDir);
    rows.push(row);
    // Rewritten after every run: a long suite stopped half-way keeps what it measured.
    await writeResults(out, rows);
    const outcome = row.diverged !== undefined ? "diverged" : `${(row.testAccuracy! * 100).toFixed(1)}%`;
    const seedNote = seeds.length > 1 ? ` seed ${seed}` : "";
    opts.onRun?.(`[${i + 1}/${plan.length}] ${name} ${spec.label}${seedNote}: ${outcome} in ${row.seconds.toFixed(1)} s`, row);
  }
  if (plan.length === 0) await writeResults(out, rows);
  // Read back from the folder, so these are the numbers the report will show.
  const summary = await summarizeExperiment(out, meta);
  await writeSummary(out, summary);
  return { out, rows, summary };
}

async function runOne(suite: string, spec: RunSpec, seed: number, dir: string, runDir: string): Promise<ResultRow> {
  const config: TrainConfig = { ...spec.config, seed };
  const head = {
    suite,
    label: spec.label,
    seed,
    algo: config.algo,
    model: config.model,
    data: config.data,
    workers: config.workers,
    epochs: config.epochs,
    batch: config.batch,
    lr: config.optimizer.lr,
  };
  const started = performance.now();
  let summary: Summary;
  try {
    // The experiment owns its run folders: running it again into the same folder replaces them.
    summary = await train(config, { out: dir, overwrite: true });
  } catch (e) {
    if (!(e instanceof DivergedError)) throw e;
    // The folder holds the epochs that finished (metrics.jsonl); say why it stops there.
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "diverged.txt"), e.message + "\n");
    const seconds = (performance.now() - started) / 1000;
    return { ...head, testAccuracy: null, trainLoss: null, samplesPerSec: null, seconds, updatesPerSec: null, diverged: e.message, runDir };
  }
  return {
    ...head,
    data: summary.data,
    workers: summary.workers,
    testAccuracy: summary.testAccuracy,
    trainLoss: summary.trainLoss,
    samplesPerSec: summary.samplesPerSec,
    seconds: summary.seconds,
    updatesPerSec: summary.updatesPerSec,
    ...stalenessOf(summary),
    ...(summary.beta !== undefined ? { beta: summary.beta } : {}),
    ...(summary.inconsistency ? { inconsistency: summary.inconsistency } : {}),
    ...(summary.consensusDistance !== undefined ? { consensusDistance: summary.consensusDistance } : {}),
    ...(summary.nodeTestAccuracy !== undefined ? { nodeTestAccuracy: summary.nodeTestAccuracy } : {}),
    runDir,
  };
}

/** Mean over every applied update of every layer, and the largest staleness seen. */
function stalenessOf(s: Summary): { stalenessMean?: number; stalenessMax?: number } {
  if (!s.staleness || s.staleness.length === 0) return {};
  const { mean, max } = overallStaleness(s.staleness);
  return { stalenessMean: mean, stalenessMax: max };
}

const slug = (label: string) =>
  label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");

async function writeResults(out: string, rows: ResultRow[]): Promise<void> {
  await writeFileAtomic(join(out, "results.json"), JSON.stringify(rows, null, 2) + "\n");
  await writeFileAtomic(join(out, "results.csv"), toCsv(rows));
}

/** RFC 4180: a header line, then one line per row; fields with a comma, quote or newline are quoted. */
export function toCsv(rows: ResultRow[], columns: (keyof ResultRow)[] = COLUMNS): string {
  const lines = [columns.join(",")];
  for (const row of rows) lines.push(columns.map((c) => csvField(row[c])).join(","));
  return lines.join("\n") + "\n";
}

function csvField(value: unknown): string {
  if (value === undefined || value === null) return "";
  const text = Array.isArray(value) ? value.join(" ") : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
