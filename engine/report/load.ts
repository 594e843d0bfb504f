/**
 * Reading run folders (summary.json + metrics.jsonl) and experiment folders (results.json, one row
 * per run naming its runDir, and experiment.json: the suite's target accuracy, claims and panels).
 * Everything read is user input: sizes are checked before anything is read or allocated, and every
 * problem is one UserError naming the file.
 */
import { overallStaleness } from "../algorithms/async/staleness.ts";
import { existsSync, statSync } from "node:fs";
import { basename, isAbsolute, join, resolve } from "node:path";
import { UserError } from "../errors.ts";
import { readUserTextFile } from "../user-file.ts";
import { readSafetensors } from "../checkpoint/safetensors.ts";
import type { EpochMetrics, Summary } from "../train.ts";
import type { CurvePoint, RunRecord } from "./aggregate.ts";
import type { Claim } from "./claims.ts";

export interface RunData {
  label: string;
  /** The series it belongs to (runs of one method differ only in seed). */
  method: string;
  seed?: number;
  dir: string;
  summary: Summary;
  metrics: EpochMetrics[];
  /** The run's configuration from its checkpoint's metadata, when there is one. */
  config?: { pipeline?: { stages?: number; microbatches?: number } };
}

/** What an experiment folder says about itself (experiment.json, written by `skein experiment`). */
export interface ExperimentMeta {
  suite: string;
  mode?: string;
  about?: string;
  /** The accuracy "time to target" is measured at. */
  target?: number;
  /** Run label → panel, for suites with more methods than one chart can tell apart. */
  groups?: Record<string, string>;
  claims?: Claim[];
}

export interface Experiment {
  dir: string;
  meta?: ExperimentMeta;
  /** Run label → method name in this report. */
  methodOf: (label: string) => string;
  /** Methods of this experiment, in order. */
  methods: string[];
}

export interface Loaded {
  /** Finished runs, in the order given. */
  runs: RunData[];
  /** Every run, diverged ones included (their curve up to where they stopped). */
  records: RunRecord[];
  experiments: Experiment[];
}

/** Run files past this are not ours (a run of 10⁴ epochs writes a few MB). */
const MAX_FILE_BYTES = 64 << 20;
/** A checkpoint is read whole for its metadata; past this the report goes without its config. */
const MAX_CHECKPOINT_BYTES = 64 << 20;

/** What one report may read in all (run files are read whole and kept until the page is built). */
export const MAX_TOTAL_BYTES = 512 << 20;

/** Bytes still allowed to be read for the report being built. */
interface Budget {
  total: number;
  left: number;
}

/** The file's size, checked against the per-file limit and the report's budget before it is read. */
function sizeChecked(path: string, budget: Budget): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (e) {
    throw new UserError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`);
  }
  if (size > MAX_FILE_BYTES) throw new UserError(`${path}: ${size} bytes, more than a run writes (limit ${MAX_FILE_BYTES})`);
  if (size > budget.left) throw new UserError(`${path}: the report's inputs pass ${budget.total} bytes in all; give fewer folders`);
  budget.left -= size;
}

/** Through the bounded reader: a named pipe or a device in a folder is refused, not waited on. */
async function readText(path: string, budget: Budget): Promise<string> {
  sizeChecked(path, budget);
  return readUserTextFile(path, path, MAX_FILE_BYTES);
}

async function readJson(path: string, budget: Budget): Promise<unknown> {
  const text = await readText(path, budget);
  try {
    return JSON.parse(text);
  } catch {
    throw new UserError(`${path}: not valid JSON`);
  }
}

export const isObject = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

async function readSummary(dir: string, budget: Budget): Promise<Summary> {
  const path = join(dir, "summary.json");
  const s = await readJson(path, budget);
  if (!isObject(s) || typeof s.algo !== "string") throw new UserError(`${path}: not a run summary (no "algo")`);
  return s as unknown as Summary;
}

async function readMetrics(dir: string, budget: Budget): Promise<EpochMetrics[]> {
  const path = join(dir, "metrics.jsonl");
  const text = await readText(path, budget);
  const rows: EpochMetrics[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new UserError(`${path}:${i + 1}: not valid JSON`);
    }
    if (!isObject(row) || typeof row.epoch !== "number") throw new UserError(`${path}:${i + 1}: not an epoch's metrics (no "epoch")`);
    rows.push(row as unknown as EpochMetrics);
  });
  return rows;
}

/** The config in the checkpoint's metadata; optional, so any problem with the checkpoint means none. */
async function readCheckpointConfig(dir: string): Promise<RunData["config"]> {
  const path = join(dir, "checkpoint.safetensors");
  try {
    if (!existsSync(path) || statSync(path).size > MAX_CHECKPOINT_BYTES) return undefined;
    const config = JSON.parse((await readSafetensors(path)).metadata.config ?? "null");
    return isObject(config) ? (config as RunData["config"]) : undefined;
  } catch {
    return undefined;
  }
}

/** Over layers: mean weighted by applied updates, and the largest. */
export function stalenessOf(s: Summary): { mean: number; max: number } | undefined {
  return s.staleness?.length ? overallStaleness(s.staleness) : undefined;
}

const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
const num = (x: unknown): number | undefined => (typeof x === "number" && Number.isFinite(x) ? x : undefined);

function curveOf(metrics: EpochMetrics[]): CurvePoint[] {
  return metrics.map((m) => {
    const p: CurvePoint = { epoch: m.epoch };
    for (const k of ["testAccuracy", "elapsedSeconds", "trainLoss", "consensusDistance"] as const) {
      const v = num(m[k]);
      if (v !== undefined) p[k] = v;
    }
    return p;
  });
}

export function recordOf(r: RunData, group?: string): RunRecord {
  const s = r.summary;
  const final: RunRecord["final"] = {};
  const set = (k: keyof RunRecord["final"], v: unknown) => {
    const x = num(v);
    if (x !== undefined) final[k] = x;
  };
  set("finalAccuracy", s.testAccuracy);
  set("samplesPerSec", s.samplesPerSec);
  set("seconds", s.seconds);
  set("stalenessMean", stalenessOf(s)?.mean);
  set("consensusDistance", s.consensusDistance);
  const inc = Array.isArray(s.inconsistency) ? s.inconsistency.filter((x) => num(x) !== undefined) : [];
  if (inc.length) set("inconsistency", mean(inc));
  return { method: r.method, label: r.label, ...(r.seed !== undefined ? { seed: r.seed } : {}), ...(group !== undefined ? { group } : {}), final, curve: curveOf(r.metrics) };
}

function parseMeta(path: string, x: unknown): ExperimentMeta {
  if (!isObject(x) || typeof x.suite !== "string") throw new UserError(`${path}: not an experiment description (no "suite")`);
  const meta: ExperimentMeta = { suite: x.suite };
  if (typeof x.mode === "string") meta.mode = x.mode;
  if (typeof x.about === "string") meta.about = x.about;
  if (x.target !== undefined) {
    if (typeof x.target !== "number" || !(x.target > 0 && x.target <= 1)) throw new UserError(`${path}: "target" must be an accuracy in (0, 1]`);
    meta.target = x.target;
  }
  if (isObject(x.groups)) meta.groups = Object.fromEntries(Object.entries(x.groups).filter(([, g]) => typeof g === "string")) as Record<string, string>;
  if (x.claims !== undefined) {
    if (!Array.isArray(x.claims)) throw new UserError(`${path}: "claims" must be an array`);
    meta.claims = x.claims.map((c, i) => {
      const ok = isObject(c) && ["text", "metric", "a", "b", "relation"].every((k) => typeof c[k] === "string") && ["<", ">", "<=", ">="].includes(c.relation as string);
      if (!ok) throw new UserError(`${path}: claim ${i + 1} needs text, metric, a, b and a relation (<, >, <=, >=)`);
      return c as unknown as Claim;
    });
  }
  return meta;
}

/** Run folders and experiment folders → runs, in the order given. */
export async function loadFolders(dirs: string[], maxTotalBytes = MAX_TOTAL_BYTES): Promise<Loaded> {
  const runs: RunData[] = [];
  const records: RunRecord[] = [];
  const experiments: Experiment[] = [];
  const suitesSeen = new Map<string, number>();
  const budget: Budget = { total: maxTotalBytes, left: maxTotalBytes };
  const usedLabels = new Map<string, number>();
  /** Same names from different places: number them so legends stay unambiguous. */
  const unique = (label: string) => {
    const n = (usedLabels.get(label) ?? 0) + 1;
    usedLabels.set(label, n);
    return n > 1 ? `${label} (${n})` : label;
  };
  for (const dir of dirs) {
    if (existsSync(join(dir, "summary.json"))) {
      const [summary, metrics, config] = await Promise.all([readSummary(dir, budget), readMetrics(dir, budget), readCheckpointConfig(dir)]);
      const label = unique(basename(resolve(dir)));
      const run: RunData = { label, method: label, dir, summary, metrics, ...(config ? { config } : {}) };
      runs.push(run);
      records.push(recordOf(run));
      continue;
    }
    if (!existsSync(join(dir, "results.json"))) throw new UserError(`${dir}: neither a run folder (summary.json) nor an experiment folder (results.json)`);
    const path = join(dir, "results.json");
    const rows = await readJson(path, budget);
    if (!Array.isArray(rows)) throw new UserError(`${path}: expected an array of runs`);
    const metaPath = join(dir, "experiment.json");
    const meta = existsSync(metaPath) ? parseMeta(metaPath, await readJson(metaPath, budget)) : undefined;
    // A second folder of the same suite keeps its methods apart from the first's.
    const suite = meta?.suite ?? (rows.find((r) => isObject(r) && typeof r.suite === "string") as { suite?: string } | undefined)?.suite ?? "";
    const seen = suitesSeen.get(suite) ?? 0;
    suitesSeen.set(suite, seen + 1);
    const prefix = seen > 0 ? `${basename(resolve(dir))}:` : "";
    const methods: string[] = [];
    const methodOf = (label: string) => `${prefix}${[suite, label].filter((x) => x !== "").join("/")}`;
    for (const [i, row] of rows.entries()) {
      if (!isObject(row) || typeof row.runDir !== "string") throw new UserError(`${path}: run ${i + 1} has no "runDir"`);
      const runDir = isAbsolute(row.runDir) ? row.runDir : existsSync(join(dir, row.runDir)) ? join(dir, row.runDir) : resolve(row.runDir);
      const runLabel = typeof row.label === "string" && row.label !== "" ? row.label : basename(runDir);
      const method = row.suite === suite || row.suite === undefined ? methodOf(runLabel) : `${prefix}${row.suite}/${runLabel}`;
      if (!methods.includes(method)) methods.push(method);
      const seed = typeof row.seed === "number" ? row.seed : undefined;
      const label = unique(seed !== undefined ? `${method} seed ${seed}` : method);
      const group = meta?.groups?.[runLabel];
      if (typeof row.diverged === "string") {
        // Its folder holds the epochs that finished, when it got that far.
        const metrics = existsSync(join(runDir, "metrics.jsonl")) ? await readMetrics(runDir, budget) : [];
        records.push({ method, label, ...(seed !== undefined ? { seed } : {}), ...(group !== undefined ? { group } : {}), diverged: row.diverged, final: {}, curve: curveOf(metrics) });
        continue;
      }
      if (!existsSync(join(runDir, "summary.json"))) throw new UserError(`${path}: run ${i + 1}: ${join(runDir, "summary.json")} does not exist`);
      const [summary, metrics, config] = await Promise.all([readSummary(runDir, budget), readMetrics(runDir, budget), readCheckpointConfig(runDir)]);
      const run: RunData = { label, method, ...(seed !== undefined ? { seed } : {}), dir: runDir, summary, metrics, ...(config ? { config } : {}) };
      runs.push(run);
      records.push(recordOf(run, group));
    }
    experiments.push({ dir, ...(meta ? { meta } : {}), methodOf, methods });
  }
  return { runs, records, experiments };
}
