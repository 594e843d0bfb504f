/**
 * `skein train`: flags → TrainConfig → run, with progress on stderr and results on stdout
 * (with --json, the last stdout line is the summary object).
 */
import { UserError } from "../errors.ts";
import { defaultOptimizer, OPTIMIZERS, parseOptimizerKind } from "../optim/optimizer.ts";
import { ALGORITHMS, openResume, train, type EpochMetrics, type TrainConfig, type TrainOptions } from "../train.ts";
import type { LoadedCheckpoint } from "../checkpoint/checkpoint.ts";
import { EXECUTORS, type ExecutorName } from "../runtime/executor.ts";
import { DEFAULT_ASYNC, type AsyncOptions } from "../algorithms/algorithm.ts";
import { DEFAULT_GOSSIP, isGossip, type GossipConfig } from "../algorithms/gossip/setup.ts";
import { DEFAULT_PIPELINE, isPipeline, PIPELINE_ALGORITHMS, type PipelineOptions } from "../algorithms/pipeline/pipeline.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";
import { formatRate, ProgressDisplay } from "./progress.ts";

const MAX_WORKERS = 64;

export const TRAIN_FLAGS: FlagSpec[] = [
  { name: "algo", type: "string", default: "sync", choices: ALGORITHMS, help: "sync: gradients all-reduced every step; hogwild: lock-free shared weights; lap/lpp: replicas of hogwild groups averaged every --avg-every batches (lpp: plus partial chunk steps); layerwise: decoupled forward/backward threads, layer-wise updates" },
  { name: "model", type: "string", default: "mlp:784-256-128-10", valueName: "SPEC", help: "mlp:IN-H1-...-OUT[:relu|tanh|gelu], lenet, resnet:N (N = 6n + 2: 8, 20, 32, ...) or gpt:LAYERS-HEADS-EMBED-CONTEXT" },
  { name: "data", type: "string", default: "digits", valueName: "SPEC", help: "digits (embedded MNIST digits), idx:DIR, cifar10:DIR, synthetic[:N], text:brown|names|FILE[:CONTEXT] (characters, for gpt)" },
  { name: "epochs", type: "int", default: 5, min: 0, max: 100000, help: "passes over the training split" },
  { name: "batch", type: "int", default: 64, min: 1, max: 65536, help: "sync: global batch per step, split across the workers; hogwild, lap, lpp, layerwise: each worker's batch; gossip algorithms: each node's batch per round" },
  { name: "optimizer", type: "string", default: "momentum", choices: OPTIMIZERS, help: "update rule" },
  { name: "lr", type: "number", above: 0, help: "learning rate (default 0.02 for sgd/momentum/nesterov, 0.001 for adam/adamw/rmsprop)" },
  { name: "momentum", type: "number", min: 0, max: 0.9999, help: "momentum μ for momentum/nesterov (default 0.9)" },
  { name: "weight-decay", type: "number", min: 0, help: "L2 penalty; decoupled for adamw (default 0, adamw 0.01)" },
  { name: "workers", type: "int", min: 1, max: MAX_WORKERS, help: "worker threads sharing the memory (default 1; layerwise: replicas × (fwd + bwd threads))" },
  { name: "replicas", type: "int", min: 1, max: 64, help: "lap, lpp, layerwise: model replicas, each trained by its own threads (default 1)" },
  { name: "avg-every", type: "int", min: 1, max: 1_000_000, help: "lap, lpp, layerwise with replicas: average the replicas every K batches of each (default 8)" },
  { name: "fwd-threads", type: "int", min: 1, max: 32, help: "layerwise: forward threads per replica (default 1)" },
  { name: "bwd-threads", type: "int", min: 1, max: 32, help: "layerwise: backward threads per replica (default 2; the paper's 1:2 for β ≈ 2)" },
  { name: "queue", type: "int", min: 1, max: 256, help: "layerwise: activation slots in flight per replica; bounds staleness by queue − 1 (default 4)" },
  { name: "lpp-warmup", type: "int", min: 0, max: 100000, help: "lpp: epochs of full steps before partial steps start (default 1)" },
  { name: "topology", type: "string", valueName: "NAME", help: "pmsgd, dsgd, dmsgd, decentlam: the mixing graph (see skein topology --help; default ring)" },
  { name: "nodes", type: "int", min: 1, max: 1024, help: "gossip algorithms: logical nodes, each with its own model, dealt to the workers (default 8)" },
  { name: "partition", type: "string", valueName: "SPEC", help: "gossip algorithms: iid | sorted | dirichlet:ALPHA split of the training data across nodes (default iid)" },
  { name: "force", type: "bool", help: "decentlam: run with momentum on a non-symmetric topology although it is known to diverge" },
  { name: "stages", type: "int", min: 1, max: 64, help: "gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim: pipeline stages, one worker each (default 2)" },
  { name: "microbatches", type: "int", min: 1, max: 4096, help: "pipelines: microbatches per batch (default 4; --batch is split into them)" },
  { name: "executor", type: "string", default: "threads", choices: EXECUTORS, help: "threads: one worker thread each; deterministic: all workers interleaved in one thread by a seeded scheduler" },
  { name: "seed", type: "int", default: 1, min: 0, max: 2 ** 31 - 1, help: "seed of initial weights and data order" },
  { name: "out", type: "string", valueName: "DIR", help: "run folder: metrics.jsonl, summary.json, checkpoint.safetensors" },
  { name: "resume", type: "string", valueName: "DIR", help: "continue the run whose checkpoint is in DIR (its config; --epochs, --workers, --out may change)" },
  { name: "json", type: "bool", help: "print the summary as one JSON object on the last line of stdout" },
  { name: "profile", type: "bool", help: "time every kernel call; the summary's controlOverhead is the share of busy time outside kernels" },
];

/** What a resumed run may change: how long it goes on, and where it runs and writes. */
const RESUME_MAY_CHANGE = new Set(["epochs", "workers", "executor", "out", "json", "resume", "profile"]);

export const TRAIN_HELP = formatHelp(
  "skein train [flags]",
  "Train a model on CPU workers that share one WebAssembly memory, evaluating on the test split after every epoch.",
  TRAIN_FLAGS,
  "Example: skein train --model lenet --epochs 10 --workers 2 --out runs/lenet",
);

export async function trainCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("train", argv, TRAIN_FLAGS);
  if (flags.help) {
    process.stdout.write(TRAIN_HELP);
    return 0;
  }
  const v = flags.values;
  let resume: LoadedCheckpoint | undefined;
  let config: TrainConfig;
  if (v.resume !== undefined) {
    resume = await openResume(String(v.resume));
    config = resumedConfig(resume, flags.given, v);
  } else {
    const kind = parseOptimizerKind(String(v.optimizer));
    const optimizer = defaultOptimizer(kind);
    if (v.lr !== undefined) optimizer.lr = Number(v.lr);
    if (v.momentum !== undefined) optimizer.momentum = Number(v.momentum);
    if (v["weight-decay"] !== undefined) optimizer.weightDecay = Number(v["weight-decay"]);
    const algo = v.algo as TrainConfig["algo"];
    const async = asyncFlags(algo, flags.given, v);
    const gossip = gossipFlags(algo, flags.given, v);
    const pipeline = pipelineFlags(algo, flags.given, v);
    config = {
      algo,
      model: String(v.model),
      data: String(v.data),
      epochs: Number(v.epochs),
      batch: Number(v.batch),
      workers: workersFor(algo, async, v.workers, gossip, pipeline),
      async,
      gossip,
      pipeline,
      executor: v.executor as ExecutorName,
      seed: Number(v.seed),
      optimizer,
    };
  }
  const json = Boolean(v.json);
  const out = v.out !== undefined ? String(v.out) : resume ? resumeFolder(String(v.resume)) : undefined;
  const display = new ProgressDisplay();
  // With --json, stdout carries only the summary: epoch lines go to stderr with the progress.
  const say = (text: string) => (json ? display.line(text) : (display.clear(), process.stdout.write(text + "\n")));
  const options: TrainOptions = {
    out,
    resume,
    profileKernels: Boolean(v.profile),
    onStart: () => {
      if (!json) say(`skein train: ${config.algo} on ${config.workers} worker${config.workers > 1 ? "s" : ""}, ${config.model} on ${config.data}, ${config.epochs} epoch${config.epochs === 1 ? "" : "s"}, batch ${config.batch}, ${config.optimizer.kind} lr ${config.optimizer.lr}`);
    },
    onProgress: (p) => display.update(p),
    onEpoch: (m) =>
      say(
        `epoch ${m.epoch}/${config.epochs}  train loss ${m.trainLoss.toFixed(4)}  test loss ${m.testLoss.toFixed(4)}  ` +
          `test accuracy ${(m.testAccuracy * 100).toFixed(2)}%  ${formatRate(m.samplesPerSec)} samples/s` +
          (m.staleness ? `  staleness ${stalenessLine(m.staleness)}` : ""),
      ),
  };
  const summary = await train(config, options);
  display.clear();
  if (json) process.stdout.write(JSON.stringify(summary) + "\n");
  else {
    say(`test accuracy: ${(summary.testAccuracy * 100).toFixed(2)}%  (${summary.seconds.toFixed(1)} s, ${formatRate(summary.samplesPerSec)} samples/s, kernels: ${summary.kernels})`);
    if (summary.out) say(`run folder: ${summary.out}`);
  }
  return 0;
}

const ASYNC_FLAGS: Record<string, { option: keyof AsyncOptions; algos: string[] }> = {
  replicas: { option: "replicas", algos: ["lap", "lpp", "layerwise"] },
  "avg-every": { option: "avgEvery", algos: ["lap", "lpp", "layerwise"] },
  "fwd-threads": { option: "fwdThreads", algos: ["layerwise"] },
  "bwd-threads": { option: "bwdThreads", algos: ["layerwise"] },
  queue: { option: "queue", algos: ["layerwise"] },
  "lpp-warmup": { option: "lppWarmup", algos: ["lpp"] },
};

/** The asynchronous options given; a flag that means nothing for the chosen algorithm is an error. */
function asyncFlags(algo: string, given: Set<string>, v: Record<string, unknown>): Partial<AsyncOptions> {
  const out: Partial<AsyncOptions> = {};
  for (const [flag, { option, algos }] of Object.entries(ASYNC_FLAGS)) {
    if (!given.has(flag)) continue;
    if (!algos.includes(algo)) throw new UserError(`--${flag} applies to --algo ${algos.join("|")}, not ${algo}`);
    out[option] = Number(v[flag]);
  }
  return out;
}

const GOSSIP_FLAGS: Record<string, keyof GossipConfig> = { topology: "topology", nodes: "nodes", partition: "partition", force: "force" };

/** The gossip options given; they mean nothing to the other algorithms. */
function gossipFlags(algo: string, given: Set<string>, v: Record<string, unknown>): Partial<GossipConfig> {
  const out: Record<string, unknown> = {};
  for (const [flag, option] of Object.entries(GOSSIP_FLAGS)) {
    if (!given.has(flag)) continue;
    if (!isGossip(algo)) throw new UserError(`--${flag} applies to --algo pmsgd|dsgd|dmsgd|decentlam, not ${algo}`);
    out[option] = v[flag];
  }
  return out as Partial<GossipConfig>;
}

/** --stages and --microbatches; pipelines run one worker per stage. */
function pipelineFlags(algo: string, given: Set<string>, v: Record<string, unknown>): Partial<PipelineOptions> {
  const out: Partial<PipelineOptions> = {};
  for (const flag of ["stages", "microbatches"] as const) {
    if (!given.has(flag)) continue;
    if (!isPipeline(algo)) throw new UserError(`--${flag} applies to --algo ${PIPELINE_ALGORITHMS.join("|")}, not ${algo}`);
    out[flag] = Number(v[flag]);
  }
  return out;
}

/** Worker count: given, or for layerwise derived from its threads (and checked when given). */
function workersFor(algo: string, async: Partial<AsyncOptions>, given: unknown, gossip: Partial<GossipConfig>, pipeline: Partial<PipelineOptions>): number {
  const o = { ...DEFAULT_ASYNC, ...async };
  if (isPipeline(algo)) {
    const stages = pipeline.stages ?? DEFAULT_PIPELINE.stages;
    if (given !== undefined && Number(given) !== stages) throw new UserError(`--workers ${given}: a pipeline runs one worker per stage (--stages ${stages}); drop --workers`);
    return stages;
  }
  if (algo === "layerwise") {
    const threads = o.replicas * (o.fwdThreads + o.bwdThreads);
    if (given !== undefined && Number(given) !== threads) {
      throw new UserError(`--workers ${given}: layerwise runs --replicas × (--fwd-threads + --bwd-threads) = ${threads} threads; drop --workers or match it`);
    }
    return threads;
  }
  const workers = given === undefined ? 1 : Number(given);
  const nodes = { ...DEFAULT_GOSSIP, ...gossip }.nodes;
  if (isGossip(algo) && workers > nodes) throw new UserError(`--workers ${workers} is more than --nodes ${nodes}: every worker needs at least one node`);
  if ((algo === "lap" || algo === "lpp") && workers % o.replicas !== 0) {
    throw new UserError(`--workers ${workers} is not a multiple of --replicas ${o.replicas}: every replica needs the same number of workers`);
  }
  return workers;
}

/** Mean over all applied updates, and the largest, across layers. */
function stalenessLine(layers: NonNullable<EpochMetrics["staleness"]>): string {
  const applied = layers.reduce((a, l) => a + l.applied, 0);
  const mean = layers.reduce((a, l) => a + l.mean * l.applied, 0) / Math.max(applied, 1);
  return `mean ${mean.toFixed(2)} max ${Math.max(...layers.map((l) => l.max))}`;
}

function resumedConfig(resume: LoadedCheckpoint, given: Set<string>, v: Record<string, unknown>): TrainConfig {
  const saved = resume.state.config as TrainConfig;
  if (!saved || typeof saved !== "object" || typeof saved.model !== "string" || !saved.optimizer) {
    throw new UserError(`${resume.path}: the checkpoint's config is incomplete`);
  }
  for (const name of given) {
    if (!RESUME_MAY_CHANGE.has(name)) {
      throw new UserError(`--${name} cannot change when resuming: the run continues with the configuration saved in ${resume.path}`);
    }
  }
  return {
    ...saved,
    epochs: given.has("epochs") ? Number(v.epochs) : saved.epochs,
    workers: given.has("workers") ? Number(v.workers) : saved.workers,
    executor: given.has("executor") ? (v.executor as ExecutorName) : saved.executor,
  };
}

function resumeFolder(path: string): string {
  return path.endsWith(".safetensors") ? path.slice(0, Math.max(0, path.lastIndexOf("/"))) || "." : path;
}
