/**
 * The schema of a training configuration, checked field by field: what a checkpoint's metadata claims
 * is read like user input, because it is (a hand-edited or damaged file). Every problem is one
 * UserError naming the file and the field: `runs/a/checkpoint.safetensors: config.batch is 0, want a
 * whole number in 1..65536`. The ranges are those of the `skein train` flags, so a resumed run gets
 * exactly the limits a new one gets.
 */
import { UserError } from "./errors.ts";
import { OPTIMIZERS, type OptimizerConfig } from "./optim/optimizer.ts";
import { EXECUTORS } from "./runtime/executor.ts";
import type { TrainConfig } from "./algorithms/config.ts";
import { ALGORITHM_NAMES, algorithmNamed } from "./algorithms/registry.ts";
import { PIPELINE_UNITS } from "./algorithms/pipeline/pipeline.ts";
import { parseScheduleJson } from "./algorithms/pipeline/schedule-file.ts";
import { MACHINES } from "./runtime/costs.ts";

/**
 * Threads one run may start, whatever mix of flags asks for them (layerwise: replicas × (forward +
 * backward threads); pipelines: stages). Each thread is a Bun worker with its own heap and kernel
 * instance; past a few dozen on a CPU box they only contend.
 */
export const MAX_THREADS = 64;

type Check = (value: unknown, field: string) => void;

const describe = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : Array.isArray(v) ? "a list" : v === null ? "null" : typeof v === "object" ? "an object" : String(v));

function integer(lo: number, hi: number): Check {
  return (v, field) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) throw new Failure(field, v, `a whole number in ${lo}..${hi}`);
  };
}

function number(lo: number, hi: number, { above = false } = {}): Check {
  return (v, field) => {
    const ok = typeof v === "number" && Number.isFinite(v) && (above ? v > lo : v >= lo) && v <= hi;
    if (!ok) throw new Failure(field, v, `a number ${above ? ">" : "≥"} ${lo}${hi < Infinity ? ` and ≤ ${hi}` : ""}`);
  };
}

function oneOf(choices: readonly string[]): Check {
  return (v, field) => {
    if (typeof v !== "string" || !choices.includes(v)) throw new Failure(field, v, `one of ${choices.join(", ")}`);
  };
}

const text: Check = (v, field) => {
  if (typeof v !== "string" || v.length === 0 || v.length > 4096) throw new Failure(field, v, "a non-empty string");
};

const bool: Check = (v, field) => {
  if (typeof v !== "boolean") throw new Failure(field, v, "true or false");
};

function object(fields: Record<string, Check>, required: string[]): Check {
  return (v, field) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Failure(field, v, "an object");
    for (const [key, value] of Object.entries(v)) {
      const check = Object.hasOwn(fields, key) ? fields[key] : undefined;
      if (!check) throw new UserErrorAt(`${field}.${key} is not a known setting (known: ${Object.keys(fields).join(", ")})`);
      check(value, `${field}.${key}`);
    }
    for (const key of required) if (!Object.hasOwn(v, key)) throw new UserErrorAt(`${field}.${key} is missing`);
  };
}

/** A problem found inside the value; `validateTrainConfig` adds where the value came from. */
class UserErrorAt extends Error {}
class Failure extends UserErrorAt {
  constructor(field: string, value: unknown, want: string) {
    super(`${field} is ${describe(value)}, want ${want}`);
  }
}

// The limits of the `skein train` flags of the same names.
const OPTIMIZER: Record<keyof OptimizerConfig, Check> = {
  kind: oneOf(OPTIMIZERS),
  lr: number(0, Infinity, { above: true }),
  momentum: number(0, 0.9999),
  alpha: number(0, 1),
  weightDecay: number(0, Infinity),
  beta1: number(0, 1),
  beta2: number(0, 1),
  eps: number(0, 1, { above: true }),
};

/** A saved pipeline schedule is checked as a --schedule file would be. */
const schedule: Check = (v, field) => {
  try {
    parseScheduleJson(JSON.stringify(v), field, field);
  } catch (e) {
    throw new UserErrorAt(e instanceof Error ? e.message : String(e));
  }
};

const configSchema = (): Record<keyof TrainConfig, Check> => ({
  algo: oneOf(ALGORITHM_NAMES),
  model: text,
  data: text,
  epochs: integer(0, 100_000),
  batch: integer(1, 65_536),
  workers: integer(1, MAX_THREADS),
  executor: oneOf(EXECUTORS),
  seed: integer(0, 2 ** 31 - 1),
  optimizer: object(OPTIMIZER, Object.keys(OPTIMIZER)),
  async: object(
    {
      replicas: integer(1, 64),
      avgEvery: integer(1, 1_000_000),
      fwdThreads: integer(1, 32),
      bwdThreads: integer(1, 32),
      queue: integer(1, 256),
      lppWarmup: integer(0, 100_000),
      stalenessLr: bool,
      dcLambda: number(0, 1e6),
    },
    [],
  ),
  gossip: object(
    { topology: text, nodes: integer(1, 1024), partition: text, force: bool, localSteps: integer(1, 100_000), slowMomentum: number(0, 0.9999), slowLr: number(0, Infinity, { above: true }) },
    [],
  ),
  simulation: object({ costs: text, machine: oneOf(MACHINES), network: text, procs: integer(1, 1024) }, []),
  pipeline: object(
    { stages: integer(1, 64), microbatches: integer(1, 4096), unit: oneOf(PIPELINE_UNITS), schedule, prediction: bool, measureEvery: integer(1, 1_000_000) },
    [],
  ),
});

const REQUIRED: (keyof TrainConfig)[] = ["algo", "model", "data", "epochs", "batch", "workers", "executor", "seed", "optimizer"];

/** `raw` as a TrainConfig, or a UserError "`where`: config.FIELD is VALUE, want ...". */
export function validateTrainConfig(raw: unknown, where: string): TrainConfig {
  try {
    object(configSchema(), REQUIRED)(raw, "config");
    const config = raw as TrainConfig;
    checkThreads(config);
    return config;
  } catch (e) {
    if (e instanceof UserErrorAt || e instanceof UserError) throw new UserError(`${where}: ${e.message}`);
    throw e;
  }
}

/** Total threads a configuration starts, against MAX_THREADS (flags multiply: replicas × threads). */
export function checkThreads(config: TrainConfig): void {
  const algorithm = algorithmNamed(config.algo);
  const threads = algorithm.programs(config);
  if (threads > MAX_THREADS) {
    throw new UserError(`${threads} threads asked for (${config.algo}: ${algorithm.programsFrom ?? "--workers"}); at most ${MAX_THREADS} per run`);
  }
}
