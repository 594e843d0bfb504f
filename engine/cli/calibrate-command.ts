/**
 * `skein calibrate`: measure the simulated executor's cost table on this machine.
 *
 *  1. Kernels: record every call a training step makes (forward, loss, backward, evaluation, and the
 *     backward split into input- and weight-gradient steps) for each model at batch sizes 1…256, and
 *     for a residual network (resnet:8:b) and two small transformers whose kernels those models do not
 *     call, plus the optimizer, prediction and vector kernels over vector sizes the algorithms use; time each distinct call (median of repeated batches), then fit per kernel
 *     seconds = fixed + perUnit · work by least squares on relative error, and report the fit's error.
 *  2. Training steps replayed on k threads at once, k = 1…cores (see step-replay.ts): speedup(k) is
 *     their total throughput over one thread's, and one thread's step time over the sum of its calls'
 *     isolated costs is the factor by which kernels run slower in a step than in a timing loop.
 *     Steps timed one by one give the spread of a call's time (the jitter that moves real threads of
 *     equal work out of phase), and two threads handing a turn back and forth through Atomics.wait
 *     and notify give the wake-up latency.
 *  3. Whole epochs of one worker thread: the seconds per kernel call spent outside the kernels.
 */
import { fit } from "./cost-fit.ts";
import { rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { TrainConfig } from "../algorithms/config.ts";
import { defaultOptimizer } from "../optim/optimizer.ts";
import type { SimulatedExecutor } from "../runtime/simulated.ts";
import { TrainingSession } from "../session.ts";
import { loadDataset } from "../data/index.ts";
import { UserError } from "../errors.ts";
import type { KernelExports, Ptr } from "../kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8 } from "../memory/arena.ts";
import type { Shape } from "../model/layers.ts";
import { Network, type Workspace } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { wrapKernels } from "../runtime/kernel-timer.ts";
import { checkCostTable, COSTS_FORMAT, kernelCostFunction, WORK, type CostTable, type KernelCost } from "../runtime/costs.ts";
import { DATA_SAMPLES, measureWakeSeconds, StepReplay } from "./step-replay.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";

const CALIBRATE_FLAGS: FlagSpec[] = [
  { name: "out", type: "string", default: "costs.json", valueName: "FILE", help: "where to write the cost table (JSON)" },
  { name: "models", type: "string", default: "mlp:784-256-128-10,lenet", valueName: "LIST", help: "comma-separated model specs whose shapes to time" },
  { name: "data", type: "string", default: "digits", valueName: "SPEC", help: "the data the models read (for their input shape)" },
  { name: "quick", type: "bool", help: "fewer shapes and shorter timings (a table in a few seconds, noisier)" },
  { name: "json", type: "bool", help: "print the table on stdout instead of the fit report" },
];

export const CALIBRATE_HELP = formatHelp(
  "skein calibrate [flags]",
  "Time every kernel over the shapes the models use and k programs computing at once, and write the cost table the simulated executor reads (--executor simulated --costs FILE).",
  CALIBRATE_FLAGS,
  "Example: skein calibrate --out runs/costs.json && skein train --executor simulated --costs runs/costs.json --workers 16",
);


interface Call {
  name: string;
  args: number[];
}

interface Timed extends Call {
  seconds: number;
  work: number;
  bytes?: number;
}

export async function calibrateCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("calibrate", argv, CALIBRATE_FLAGS);
  if (flags.help) {
    process.stdout.write(CALIBRATE_HELP);
    return 0;
  }
  const v = flags.values;
  const quick = Boolean(v.quick);
  const models = String(v.models).split(",").filter((m) => m.length > 0);
  if (models.length === 0) throw new UserError("--models: give at least one model spec");
  const say = (line: string) => (v.json ? process.stderr.write(line + "\n") : process.stdout.write(line + "\n"));
  const table = await calibrate({ models, data: String(v.data), quick, say });
  const text = JSON.stringify(table, null, 2) + "\n";
  writeFileSync(String(v.out), text);
  if (v.json) process.stdout.write(text);
  else say(`wrote ${v.out}`);
  return 0;
}

/**
 * Step 1 alone: every kernel in WORK timed over the shapes the models (and the coverage models) use,
 * and its fit. `only` restricts the timing to some kernels (adding kernels to an existing table).
 */
export async function calibrateKernels(o: { models: string[]; data: string; quick: boolean; say: (line: string) => void; only?: string[] }): Promise<Record<string, KernelCost>> {
  const { module, variant } = await loadKernelModule();
  const dataset = await loadDataset(o.data);
  const calls = new Map<string, Call>();
  const rowsList = o.quick ? [1, 8, 32, 128] : [1, 2, 4, 8, 16, 32, 64, 128, 256];
  const vectorSizes = o.quick ? [1024, 65536, 1 << 20] : [256, 4096, 65536, 262144, 1 << 20];
  const maxRows = Math.max(...rowsList);
  const maxVector = Math.max(...vectorSizes);

  // One arena for everything: per model its parameters, gradients and a workspace; vectors for the rest.
  const planner = new ArenaPlanner();
  const nets = models(o.models, dataset.shape, dataset.classes).map((net) => ({
    net,
    params: planner.floats("parameters", `${net.specText}.params`, net.paramFloats),
    grads: planner.floats("gradients", `${net.specText}.grads`, net.paramFloats),
    ws: net.planWorkspace(planner, net.specText, maxRows, { splitBackward: true }),
  }));
  const coverageRows = o.quick ? [1, 8, 32] : [1, 4, 16, 64];
  const coverage = coverageModels(dataset.shape).map(({ spec, shape, classes }) => {
    const net = new Network(spec, shape, classes);
    const rows = Math.max(...coverageRows);
    return {
      net,
      params: planner.floats("parameters", `${spec}.params`, net.paramFloats),
      grads: planner.floats("gradients", `${spec}.grads`, net.paramFloats),
      ws: net.planWorkspace(planner, spec, rows, { splitBackward: true }),
    };
  });
  const sampleBytes = dataset.shape.reduce((a, b) => a * b, 1);
  const bytes = planner.reserve("data", "samples", DATA_SAMPLES * sampleBytes);
  const labelBytes = planner.reserve("data", "labels", DATA_SAMPLES);
  const indices = planner.reserve("activations", "indices", DATA_SAMPLES * 4);
  const vectors = Array.from({ length: 4 }, (_, i) => planner.floats("scratch", `vector${i}`, maxVector));
  const sumTable = planner.reserve("control", "sum.tensors", 8 * 4);
  const sumWeights = planner.reserve("control", "sum.weights", 8 * 4);
  const memory = createSharedMemory(planner.finish());
  const k = instantiateKernels(module, memory);
  fillInputs(memory, { bytes, labelBytes, indices, vectors, sumTable, sumWeights, maxRows, sampleBytes, maxVector, classes: dataset.classes });

  // 1a. the calls a training step makes, per model and batch size
  const recorder = wrapKernels(k, (name, call, args) => {
    const key = `${name}(${args.join(",")})`;
    if (!calls.has(key)) calls.set(key, { name, args: args as number[] });
    return call();
  });
  for (const { net, params, grads, ws } of nets) {
    net.initialize(f32(memory, params, net.paramFloats), Rng.derive(1, "calibrate", net.specText));
    for (const rows of rowsList) {
      recorder.gather_batch(ws.input, ws.labels, bytes, labelBytes, indices, rows, sampleBytes, 1 / 255, 0);
      recordStep(recorder, net, params, grads, ws, rows);
    }
  }
  // 1a'. residual-network and transformer kernels: their models on inputs made here (tokens: valid ids)
  for (const { net, params, grads, ws } of coverage) {
    net.initialize(f32(memory, params, net.paramFloats), Rng.derive(1, "calibrate", net.specText));
    fillModelInput(memory, net, ws, Math.max(...coverageRows));
    for (const rows of coverageRows) recordStep(recorder, net, params, grads, ws, rows);
  }
  // 1b. the vector kernels (updates, prediction, averaging, copies) over the sizes algorithms use
  const [a, b, c, d] = vectors as [Ptr, Ptr, Ptr, Ptr];
  for (const n of [...vectorSizes, ...nets.map((m) => m.net.paramFloats)]) {
    const add = (name: string, args: number[]) => calls.set(`${name}(${args.join(",")})`, { name, args });
    add("sgd_update", [a, b, n, 1e-6, 0]);
    add("momentum_update", [a, b, c, n, 1e-6, 0.9, 0, 0, 0]);
    add("adam_update", [a, b, c, d, n, 1e-6, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.001]);
    add("rmsprop_update", [a, b, c, n, 1e-6, 0.99, 1e-8, 0]);
    add("predict_linear", [d, a, b, n, 1e-6]);
    add("predict_nesterov", [d, a, b, c, n, 1e-6, 0.9]);
    add("predict_adam", [d, a, b, c, n, 1e-6, 0.1, 0.001, 1e-8]);
    add("predict_rmsprop", [d, a, b, c, n, 1e-6, 1e-8]);
    add("axpy", [a, b, n, 1e-6]);
    add("scale", [d, n, 1]);
    add("copy", [d, a, n]);
    add("fill_zero", [d, n]);
    add("delay_compensate", [d, a, b, n, 1e-6]);
    add("squared_distance", [a, b, n]);
    for (const parts of [2, 4, 8]) if (n * parts <= maxVector * 4) add("weighted_sum", [d, sumTable, sumWeights, parts, Math.floor(n / 2)]);
  }
  // Average pooling: no preset model uses it, so the shapes of a pooling layer after a convolution.
  for (const planes of [8, 64, 512]) {
    for (const side of [8, 24]) {
      calls.set(`avgpool_forward(${planes},${side})`, { name: "avgpool_forward", args: [d, a, planes, side, side, 2, 2] });
      calls.set(`avgpool_backward(${planes},${side})`, { name: "avgpool_backward", args: [d, a, planes, side, side, 2, 2] });
    }
  }
  for (const iters of [100, 1000, 10000]) calls.set(`fma_ceiling(${iters})`, { name: "fma_ceiling", args: [iters] });

  const wanted = (name: string) => name in WORK && (!o.only || o.only.includes(name));
  for (const [key, call] of calls) if (!wanted(call.name)) calls.delete(key);
  o.say(`calibrate: timing ${calls.size} distinct kernel calls (${variant} kernels, models ${[...o.models, ...coverage.map((m) => m.net.specText)].join(", ")})`);
  const timed: Timed[] = [];
  const exports = k as unknown as Record<string, (...args: number[]) => unknown>;
  for (const call of calls.values()) {
    const fn = exports[call.name]!;
    const w = WORK[call.name]!;
    const run = call.name === "gather_batch" ? gatherCall(fn, call.args) : () => fn(...call.args);
    timed.push({ ...call, seconds: medianCallSeconds(run, o.quick), work: w.work(call.args), ...(w.bytes ? { bytes: w.bytes(call.args) } : {}) });
  }
  const kernels: Record<string, KernelCost> = {};
  for (const name of Object.keys(WORK).filter(wanted)) {
    const mine = timed.filter((t) => t.name === name);
    if (mine.length === 0) throw new Error(`calibrate: no call of kernel ${name} was timed (the models used do not call it)`);
    kernels[name] = fit(mine);
  }
  return kernels;
}

export async function calibrate(o: { models: string[]; data: string; quick: boolean; say: (line: string) => void }): Promise<CostTable> {
  const { module, variant } = await loadKernelModule();
  const dataset = await loadDataset(o.data);
  const kernels = await calibrateKernels(o);

  const cores = Math.max(1, Math.min(navigator.hardwareConcurrency, 64));
  const kernelsOnly: CostTable = {
    format: COSTS_FORMAT,
    measuredOn: `${new Date().toISOString()}: ${cores} cores (load average ${loadavg()[0]!.toFixed(1)} at the start), ${variant} kernels, Bun ${Bun.version}, ${process.platform}/${process.arch}`,
    machine: { cores, speedup: [1] },
    wakeSeconds: 0,
    contextFactor: 1,
    callSeconds: 0,
    kernels,
    networks: {},
  };
  o.say("calibrate: training steps replayed on k threads at once");
  const replay = StepReplay.build(module, o.models, dataset.shape, dataset.classes, cores);
  let contextFactor: number;
  try {
    await replay.start();
    kernelsOnly.machine.speedup = await replay.speedup(cores, o.quick ? 150 : 400);
    report(kernelsOnly, o.say);
    contextFactor = await kernelsInContext(kernelsOnly, replay, o.quick ? 150 : 400, o.say);
    kernelsOnly.jitter = callJitter(kernelsOnly, replay, o.quick ? 100 : 300, o.say);
    kernelsOnly.wakeSeconds = await measureWakeSeconds(o.quick ? 500 : 2000);
    o.say(`  a sleeping thread resumes ${(kernelsOnly.wakeSeconds * 1e6).toFixed(1)} µs after the notify (ping-pong of two threads)`);
  } finally {
    replay.close();
  }
  o.say("calibrate: whole epochs of one worker thread against the kernels' costs in context");
  const table = { ...kernelsOnly, contextFactor, callSeconds: await fitCallSeconds({ ...kernelsOnly, contextFactor }, o) };
  return checkCostTable(table, "calibrate");
}

/**
 * Kernels in a training step run slower than alone in a timing loop: per model, one thread's replayed
 * step over the sum of its calls' isolated costs; the table keeps the mean over the models.
 */
async function kernelsInContext(table: CostTable, replay: StepReplay, ms: number, say: (line: string) => void): Promise<number> {
  const ratios: number[] = [];
  for (const [m, { model, from, to }] of replay.perModel.entries()) {
    const alone = replay.calls[0]!.slice(from, to).reduce((a, [name, args]) => a + kernelCostFunction(table, name)(args), 0);
    const step = replay.stepSeconds(m, ms);
    ratios.push(step / alone);
    say(`  ${model.padEnd(30)} step ${(step * 1e3).toFixed(3)} ms  kernels alone ${(alone * 1e3).toFixed(3)} ms  ×${(step / alone).toFixed(3)}`);
  }
  const factor = ratios.reduce((a, r) => a + r, 0) / ratios.length;
  say(`  kernels in context: ×${factor.toFixed(3)}`);
  return factor;
}

/** The relative spread of a kernel call's time: the median over the models (see StepReplay.callJitter). */
function callJitter(table: CostTable, replay: StepReplay, steps: number, say: (line: string) => void): number {
  const cost = ([name, args]: [string, number[]]) => kernelCostFunction(table, name)(args);
  const spreads = replay.perModel.map((_, m) => replay.callJitter(m, steps, cost)).sort((x, y) => x - y);
  // At most 0.5: a spread beyond it is other load on the machine, not the kernels.
  const jitter = Math.min(0.5, Math.round(spreads[(spreads.length - 1) >> 1]! * 1000) / 1000);
  say(`  a kernel call's time spreads by ${(jitter * 100).toFixed(1)}% (per model: ${spreads.map((x) => (x * 100).toFixed(1) + "%").join(", ")})`);
  return jitter;
}

/**
 * Time outside the kernels: one program trains whole epochs on one thread (the threaded executor's
 * code: batch bookkeeping, counters, the orchestrator's call), the same epochs are simulated with the
 * kernels' costs in context, and each call gets the median over the runs of the difference per call
 * (≥ 0). Each real epoch is the fastest of several (other load only ever slows one down).
 */
async function fitCallSeconds(table: CostTable, o: { models: string[]; data: string; quick: boolean; say: (line: string) => void }): Promise<number> {
  const runs: { what: string; wall: number; kernels: number; calls: number }[] = [];
  const costs = join(tmpdir(), `skein-calibrate-${process.pid}.json`);
  writeFileSync(costs, JSON.stringify(table));
  try {
    for (const model of o.models) {
      for (const algo of o.quick ? ["sync"] : ["sync", "hogwild"]) {
        const config: TrainConfig = { algo, model, data: o.data, epochs: 1, batch: 64, workers: 1, executor: "threads", seed: 1, optimizer: defaultOptimizer("momentum") };
        const real = await TrainingSession.open(config);
        let wall = Infinity;
        try {
          for (let i = 0; i < (o.quick ? 3 : 6); i++) {
            const e = await real.trainEpoch();
            if (i > 0) wall = Math.min(wall, e.seconds); // the first epoch warms the JIT
          }
        } finally {
          real.close();
        }
        const simulated = await TrainingSession.open({ ...config, executor: "simulated", simulation: { costs, machine: "ideal" } });
        try {
          await simulated.trainEpoch();
          const ex = simulated.executor as SimulatedExecutor;
          const before = ex.kernelCalls;
          const e = await simulated.trainEpoch();
          runs.push({ what: `${algo} ${model}`, wall, kernels: e.seconds, calls: ex.kernelCalls - before });
        } finally {
          simulated.close();
        }
      }
    }
  } finally {
    rmSync(costs, { force: true });
  }
  const perCall = runs.map((r) => Math.max(0, (r.wall - r.kernels) / r.calls)).sort((x, y) => x - y);
  const callSeconds = perCall.length % 2 ? perCall[perCall.length >> 1]! : (perCall[perCall.length / 2 - 1]! + perCall[perCall.length / 2]!) / 2;
  for (const r of runs) {
    const fitted = r.kernels + callSeconds * r.calls;
    o.say(`  ${r.what.padEnd(30)} real ${r.wall.toFixed(3)} s  kernels in context ${r.kernels.toFixed(3)} s  fitted ${fitted.toFixed(3)} s (${(((fitted - r.wall) / r.wall) * 100).toFixed(1)}%)`);
  }
  o.say(`  ${(callSeconds * 1e6).toFixed(2)} µs around each call`);
  return callSeconds;
}

/**
 * One batch as training makes it, recorded: a step (forward, loss, backward), an evaluation, and a
 * split backward (each layer's input-gradient step, then its weight-gradient step, as zero-bubble
 * pipelines run them), so conv2d_backward_input, winograd's halves and layernorm_backward_params are
 * timed at the shapes they run at.
 */
export function recordStep(k: KernelExports, net: Network, params: Ptr, grads: Ptr, ws: Workspace, rows: number): void {
  net.gradient(k, params, grads, ws, rows, 1 / rows);
  net.evaluate(k, params, ws, rows);
  net.forward(k, params, ws, rows);
  net.lossAndGradient(k, ws, rows, 1 / rows);
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;
  for (let i = net.layers.length - 1; i >= firstTrainable; i--) {
    net.backwardInputLayer(k, i, params, ws, rows);
    net.backwardWeightLayer(k, i, grads, ws, rows, false);
  }
}

/** Vocabulary of the coverage transformers: a character set's size (text data has at most 256). */
const COVERAGE_VOCAB = 65;

/**
 * Models whose kernels the default models (mlp, lenet) never call: a residual network with
 * projection shortcuts on the data's images (or 28×28 digits' shape when the data has none), which
 * covers batch norm, both shortcuts, global pooling, Winograd and strided im2col convolutions; and two
 * small transformers of different context and width (attention's cost grows with T² and C), which
 * cover embeddings, layer norms and attention.
 */
function coverageModels(dataShape: number[]): { spec: string; shape: Shape; classes: number }[] {
  const image = dataShape.length === 3 && dataShape[1]! >= 4 && dataShape[2]! >= 4 ? dataShape : [1, 28, 28];
  return [
    { spec: "resnet:8:b", shape: image, classes: 10 },
    { spec: "gpt:1-2-32-16", shape: [1, 1, 17], classes: COVERAGE_VOCAB },
    { spec: "gpt:1-4-64-64", shape: [1, 1, 65], classes: COVERAGE_VOCAB },
  ];
}

/**
 * A coverage model's input batch, written once: images as values in [0, 1), token windows as valid
 * token ids (f32, as the text loaders' gather writes them: byte · 1 + 0).
 */
function fillModelInput(memory: WebAssembly.Memory, net: Network, ws: Workspace, rows: number): void {
  const rng = Rng.derive(1, "calibrate model input", net.specText);
  const x = f32(memory, ws.input, rows * net.inputFloats);
  const tokens = net.positions > 1;
  for (let i = 0; i < x.length; i++) x[i] = tokens ? rng.int(net.classes) : rng.int(256) / 255;
  // Classifiers' labels (a transformer's come from its tokens)
  if (!tokens) {
    const labels = new Int32Array(memory.buffer, ws.labels, rows);
    for (let i = 0; i < rows; i++) labels[i] = rng.int(net.classes);
  }
}

function models(specs: string[], shape: number[], classes: number): Network[] {
  return specs.map((spec) => new Network(spec, shape as [number, number, number], classes));
}

/** Inputs that keep every kernel on its normal path: random bytes and labels, small nonzero vectors. */
function fillInputs(
  memory: WebAssembly.Memory,
  o: { bytes: Ptr; labelBytes: Ptr; indices: Ptr; vectors: Ptr[]; sumTable: Ptr; sumWeights: Ptr; maxRows: number; sampleBytes: number; maxVector: number; classes: number },
): void {
  const rng = Rng.derive(1, "calibrate inputs");
  const samples = u8(memory, o.bytes, DATA_SAMPLES * o.sampleBytes);
  for (let i = 0; i < samples.length; i++) samples[i] = rng.int(256);
  const labels = u8(memory, o.labelBytes, DATA_SAMPLES);
  for (let i = 0; i < labels.length; i++) labels[i] = rng.int(o.classes);
  // A shuffled epoch: every sample once, in random order (see gatherCall).
  const idx = new Int32Array(memory.buffer, o.indices, DATA_SAMPLES);
  for (let i = 0; i < idx.length; i++) idx[i] = i;
  for (let i = idx.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  for (const v of o.vectors) {
    const x = f32(memory, v, o.maxVector);
    for (let i = 0; i < x.length; i++) x[i] = 0.01 + 0.001 * (i % 97);
  }
  // weighted_sum of up to 8 halves of the first vectors, weights 1/k
  const table = new Int32Array(memory.buffer, o.sumTable, 8);
  for (let i = 0; i < 8; i++) table[i] = o.vectors[i % 3]! + (i >> 2) * 4 * Math.floor(o.maxVector / 2);
  new Float32Array(memory.buffer, o.sumWeights, 8).fill(0.125);
}

/**
 * A gather as an epoch makes them: each call takes the next rows of a shuffled order over the whole
 * data set, so its samples were not read just before (timing one batch over and over finds it in
 * cache: 2–3× faster than in a run).
 */
function gatherCall(fn: (...args: number[]) => unknown, args: number[]): () => unknown {
  const at = [...args];
  const rows = args[5]!;
  let next = 0;
  return () => {
    at[4] = args[4]! + next * 4;
    next = next + 2 * rows > DATA_SAMPLES ? 0 : next + rows;
    return fn(...at);
  };
}

/** Median seconds of one call over repeated batches, each long enough for the clock to resolve. */
function medianCallSeconds(call: () => unknown, quick: boolean): number {
  call(); // warm: first-touch of pages, JIT of the wrapper
  let reps = 1;
  const batchMs = quick ? 0.5 : 2;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) call();
    if (performance.now() - t >= batchMs || reps >= 1 << 16) break;
    reps *= 2;
  }
  const samples: number[] = [];
  for (let s = 0; s < (quick ? 3 : 7); s++) {
    const t = performance.now();
    for (let i = 0; i < reps; i++) call();
    samples.push((performance.now() - t) / 1000 / reps);
  }
  samples.sort((x, y) => x - y);
  return samples[samples.length >> 1]!;
}

function report(table: CostTable, say: (line: string) => void): void {
  say("kernel                      unit      shapes  fixed µs   per unit (+ per byte)         fit error");
  for (const [name, c] of Object.entries(table.kernels)) {
    const unit = WORK[name]!.unit;
    const rate = unit === "flops" ? `${(1e-9 / c.perUnit).toFixed(1)} GFLOP/s` : `${(c.perUnit * 1e9).toFixed(3)} ns/elem`;
    const bytes = c.perByte ? ` + ${(1e-9 / c.perByte).toFixed(1)} GB/s` : "";
    say(`${name.padEnd(28)}${unit.padEnd(10)}${String(c.shapes).padStart(6)}  ${(c.fixed * 1e6).toFixed(2).padStart(8)}   ${(rate + bytes).padEnd(30)}${(c.fitError * 100).toFixed(1).padStart(6)}%`);
  }
  say(`contention: speedup of k programs at once = ${table.machine.speedup.join(", ")} (k = 1…${table.machine.cores})`);
}

export { fit };
