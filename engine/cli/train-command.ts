/**
 * `skein train`: flags → TrainConfig → run, with progress on stderr and results on stdout
 * (with --json, the last stdout line is the summary object).
 */
import { UserError } from "../errors.ts";
import { checkThreads, validateTrainConfig } from "../config-check.ts";
import { defaultOptimizer, OPTIMIZERS, parseOptimizerKind } from "../optim/optimizer.ts";
import { openResume, train, type TrainConfig, type TrainOptions } from "../train.ts";
import type { LoadedCheckpoint } from "../checkpoint/checkpoint.ts";
import { EXECUTORS, type ExecutorName } from "../runtime/executor.ts";
import { SIMULATION_FLAGS, withSimulationFlags } from "./simulation-flags.ts";
import type { Family } from "../algorithms/algorithm.ts";
import { ALGORITHMS, ALGORITHM_NAMES, algorithmNamed } from "../algorithms/registry.ts";
import { overallStaleness } from "../algorithms/async/staleness.ts";
import { formatHelp, formatSection, parseFlags, type FlagSpec } from "./flags.ts";
import { pipelineScheduleFlags } from "../algorithms/pipeline/pipeline-flags.ts";
import { formatRate, ProgressDisplay } from "./progress.ts";
import { defaultWorkersAcross, PROCESS_FLAGS, processesOf } from "./process-flags.ts";
import { trainAcrossProcesses } from "../run-processes.ts";
import { flopLine, profileLine } from "./profile-line.ts";

const MAX_WORKERS = 64;

export const TRAIN_FLAGS: FlagSpec[] = [
  { name: "algo", type: "string", default: "sync", choices: ALGORITHM_NAMES, valueName: "NAME", help: "the training algorithm (listed below)" },
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
  { name: "staleness-lr", type: "bool", help: "hogwild, lap, lpp, layerwise: apply a gradient τ ≥ 1 versions old with lr/τ (Zhang et al. 2016)" },
  { name: "dc-lambda", type: "number", min: 0, max: 1e6, help: "hogwild, lap, lpp, layerwise: DC-ASGD delay compensation g + λ·g⊙g⊙(w_now − w_read) (Zheng et al. 2017; default 0, off)" },
  { name: "topology", type: "string", valueName: "NAME", help: "pmsgd, dsgd, dmsgd, decentlam: the mixing graph (see skein topology --help; default ring)" },
  { name: "nodes", type: "int", min: 1, max: 1024, help: "gossip algorithms: logical nodes, each with its own model, dealt to the workers (default 8)" },
  { name: "partition", type: "string", valueName: "SPEC", help: "gossip algorithms: iid | sorted | dirichlet:ALPHA split of the training data across nodes (default iid)" },
  { name: "force", type: "bool", help: "decentlam: run with momentum on a non-symmetric topology although it is known to diverge" },
  { name: "local-steps", type: "int", min: 1, max: 100000, help: "localsgd, slowmo: local steps τ between exact averages (default 8)" },
  { name: "slow-momentum", type: "number", min: 0, max: 0.9999, help: "slowmo: slow momentum β (default 0.5)" },
  { name: "slow-lr", type: "number", above: 0, help: "slowmo: slow learning rate α (default 1)" },
  { name: "stages", type: "int", min: 1, max: 64, help: "gpipe, 1f1b, pipedream, 2bw, spectrain, pipeoptim: pipeline stages, one worker each (default 2)" },
  { name: "microbatches", type: "int", min: 1, max: 4096, help: "pipelines: microbatches per batch (default 4; --batch is split into them)" },
  { name: "schedule", type: "string", valueName: "NAME|FILE", help: "pipelines: run this schedule one window per batch: a built-in one (zb-h1, interleaved:V, …, at --stages and --microbatches) or JSON as skein schedule --json prints; an invalid one is refused" },
  { name: "pipeline-unit", type: "string", choices: ["microbatch", "batch"], help: "pipedream, spectrain, pipeoptim: update once per microbatch (default) or once per batch of --batch samples, as gpipe, 1f1b, 2bw do" },
  { name: "executor", type: "string", default: "threads", choices: EXECUTORS, help: "threads: one worker thread each; deterministic: all workers interleaved in one thread by a seeded scheduler; simulated: deterministic on virtual clocks, times from a cost table" },
  ...SIMULATION_FLAGS,
  ...PROCESS_FLAGS,
  { name: "seed", type: "int", default: 1, min: 0, max: 2 ** 31 - 1, help: "seed of initial weights and data order" },
  { name: "out", type: "string", valueName: "DIR", help: "run folder: metrics.jsonl, summary.json (status: running, completed, stopped, failed, diverged), checkpoint.safetensors, trace.json; a folder holding another run is refused (see --overwrite, --resume)" },
  { name: "resume", type: "string", valueName: "DIR", help: "continue the run whose checkpoint is in DIR (its config; --epochs, --workers, --out may change)" },
  { name: "overwrite", type: "bool", help: "replace the run already in --out (otherwise such a folder is refused; --resume continues it instead)" },
  { name: "json", type: "bool", help: "print the summary as one JSON object on the last line of stdout" },
  { name: "profile", type: "bool", help: "time every kernel call; the summary's controlOverhead is the share of busy time outside kernels" },
];

/** What a resumed run may change: how long it goes on, and where it runs and writes. */
const RESUME_MAY_CHANGE = new Set(["epochs", "workers", "executor", "out", "json", "resume", "profile", "overwrite", ...SIMULATION_FLAGS.map((f) => f.name), ...PROCESS_FLAGS.map((f) => f.name)]);

const FAMILY_TITLES: Record<Family, string> = {
  sync: "Synchronous",
  async: "Asynchronous (shared weights, replicas, decoupled threads)",
  pipeline: "Pipeline parallel (--stages, --microbatches)",
  gossip: "Decentralized gossip (--nodes, --topology, --partition)",
};

/** The algorithms, family by family, each with what it does; generated from the registry. */
function algorithmsHelp(): string {
  return (Object.keys(FAMILY_TITLES) as Family[])
    .map((family) => formatSection(FAMILY_TITLES[family], ALGORITHMS.filter((a) => a.family === family).map((a) => [a.name, a.about] as const)))
    .join("\n\n");
}

export const TRAIN_HELP = formatHelp(
  "skein train [flags]",
  "Train a model on CPU workers that share one WebAssembly memory, evaluating on the test split after every epoch.",
  TRAIN_FLAGS,
  `Algorithms (--algo):\n\n${algorithmsHelp()}\n\nExample: skein train --model lenet --epochs 10 --workers 2 --out runs/lenet`,
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
    const algorithm = algorithmNamed(String(v.algo));
    config = {
      algo: algorithm.name,
      model: String(v.model),
      data: String(v.data),
      epochs: Number(v.epochs),
      batch: Number(v.batch),
      workers: 1,
      ...familyOptions(algorithm.name, flags.given, v),
      executor: v.executor as ExecutorName,
      seed: Number(v.seed),
      optimizer,
    };
    // --schedule NAME|FILE and --pipeline-unit: read and checked by the pipeline family itself.
    const pipeline = pipelineScheduleFlags(flags.given, v, config.pipeline ?? {});
    if (Object.keys(pipeline).length > 0) config.pipeline = { ...config.pipeline, ...pipeline };
    config.workers = workersFor(config, v.workers ?? defaultWorkersAcross(flags.given, v, algorithm.name));
    checkThreads(config);
  }
  config = withSimulationFlags(config, flags.given, v);
  const json = Boolean(v.json);
  const out = v.out !== undefined ? String(v.out) : resume ? resumeFolder(String(v.resume)) : undefined;
  const display = new ProgressDisplay();
  // With --json, stdout carries only the summary: epoch lines go to stderr with the progress.
  const say = (text: string) => (json ? display.line(text) : (display.clear(), process.stdout.write(text + "\n")));
  const options: TrainOptions = {
    out,
    overwrite: Boolean(v.overwrite),
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
  const across = processesOf(flags.given, v);
  const summary = across ? await trainAcrossProcesses(config, options, across) : await train(config, options);
  display.clear();
  if (json) process.stdout.write(JSON.stringify(summary) + "\n");
  else {
    say(`test accuracy: ${(summary.testAccuracy * 100).toFixed(2)}%  (${summary.simulated ? `${summary.seconds.toPrecision(3)} s simulated` : `${summary.seconds.toFixed(1)} s`}, ${formatRate(summary.samplesPerSec)} samples/s, kernels: ${summary.kernels})`);
    if (summary.flops) say(flopLine(summary.flops));
    const profile = profileLine(summary);
    if (profile) say(profile);
    if (summary.out) say(`run folder: ${summary.out}`);
  }
  return 0;
}

/** Where each family flag goes in the configuration. */
const FAMILY_FLAGS: Record<string, { section: "async" | "gossip" | "pipeline"; option: string }> = {
  replicas: { section: "async", option: "replicas" },
  "avg-every": { section: "async", option: "avgEvery" },
  "fwd-threads": { section: "async", option: "fwdThreads" },
  "bwd-threads": { section: "async", option: "bwdThreads" },
  queue: { section: "async", option: "queue" },
  "lpp-warmup": { section: "async", option: "lppWarmup" },
  "staleness-lr": { section: "async", option: "stalenessLr" },
  "dc-lambda": { section: "async", option: "dcLambda" },
  topology: { section: "gossip", option: "topology" },
  nodes: { section: "gossip", option: "nodes" },
  partition: { section: "gossip", option: "partition" },
  force: { section: "gossip", option: "force" },
  "local-steps": { section: "gossip", option: "localSteps" },
  "slow-momentum": { section: "gossip", option: "slowMomentum" },
  "slow-lr": { section: "gossip", option: "slowLr" },
  stages: { section: "pipeline", option: "stages" },
  microbatches: { section: "pipeline", option: "microbatches" },
};

/** The family options given; a flag the chosen algorithm does not accept (its registry entry says) is an error. */
function familyOptions(algo: string, given: Set<string>, v: Record<string, unknown>): Pick<TrainConfig, "async" | "gossip" | "pipeline"> {
  const sections: Record<"async" | "gossip" | "pipeline", Record<string, unknown>> = { async: {}, gossip: {}, pipeline: {} };
  const accepts = algorithmNamed(algo).flags;
  // Any flag some algorithm declares belongs to those algorithms only (the registry says which).
  for (const flag of given) {
    const takers = ALGORITHMS.filter((a) => a.flags.includes(flag)).map((a) => a.name);
    if (takers.length > 0 && !accepts.includes(flag)) throw new UserError(`--${flag} applies to --algo ${takers.join("|")}, not ${algo}`);
  }
  for (const [flag, { section, option }] of Object.entries(FAMILY_FLAGS)) if (given.has(flag)) sections[section][option] = v[flag];
  return sections as Pick<TrainConfig, "async" | "gossip" | "pipeline">;
}

/**
 * The worker count: --workers, or without it the algorithm's own program count (layerwise: its
 * threads; pipelines: its stages), where a --workers that disagrees is refused. New runs and resumed
 * ones both come through here, so they get the same message.
 */
function workersFor(config: TrainConfig, given: unknown): number {
  const algorithm = algorithmNamed(config.algo);
  const programs = algorithm.programs({ ...config, workers: given === undefined ? 1 : Number(given) });
  if (algorithm.programsFrom && given !== undefined && Number(given) !== programs) {
    throw new UserError(`--workers ${given}: ${algorithm.name} runs ${algorithm.programsFrom} = ${programs} here; drop --workers or match it`);
  }
  return given !== undefined ? Number(given) : programs;
}

/** Mean over all applied updates, and the largest, across layers. */
function stalenessLine(layers: Parameters<typeof overallStaleness>[0]): string {
  const { mean, max } = overallStaleness(layers);
  return `mean ${mean.toFixed(2)} max ${max}`;
}

/**
 * The configuration a resumed run continues with: the checkpoint's, validated like a new run's
 * (schema, then the same cross-checks with the same messages), and only flags that may change.
 */
function resumedConfig(resume: LoadedCheckpoint, given: Set<string>, v: Record<string, unknown>): TrainConfig {
  const saved = validateTrainConfig(resume.state.config, resume.path);
  for (const name of given) {
    if (!RESUME_MAY_CHANGE.has(name)) {
      throw new UserError(`--${name} cannot change when resuming: the run continues with the configuration saved in ${resume.path}`);
    }
  }
  try {
    workersFor(saved, saved.workers);
    algorithmNamed(saved.algo).check?.(saved);
  } catch (e) {
    throw e instanceof UserError ? new UserError(`${resume.path}: its config does not hold together: ${e.message}`) : e;
  }
  const done = resume.state.epochsDone;
  if (done > saved.epochs) throw new UserError(`${resume.path}: epochsDone ${done} is more than the ${saved.epochs} epochs its config asks for`);
  // A finished run resumed without --epochs is evaluated again; an --epochs that trains nothing is a mistake.
  if (given.has("epochs") && Number(v.epochs) <= done) {
    throw new UserError(`--epochs ${v.epochs}: ${resume.path} has ${done} epoch${done === 1 ? "" : "s"} done already; want --epochs above ${done}`);
  }
  const epochs = given.has("epochs") ? Number(v.epochs) : saved.epochs;
  const config: TrainConfig = {
    ...saved,
    epochs,
    workers: given.has("workers") ? workersFor(saved, v.workers) : saved.workers,
    executor: given.has("executor") ? (v.executor as ExecutorName) : saved.executor,
  };
  checkThreads(config);
  return config;
}

function resumeFolder(path: string): string {
  return path.endsWith(".safetensors") ? path.slice(0, Math.max(0, path.lastIndexOf("/"))) || "." : path;
}
