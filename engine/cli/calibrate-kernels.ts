/**
 * `skein calibrate`, step 1: the kernels. Record every call a training step makes (forward, loss,
 * backward, evaluation, and the backward split into input- and weight-gradient steps) for each model
 * at batch sizes 1…256, and for a residual network (resnet:8:b) and two small transformers whose
 * kernels those models do not call, plus the optimizer, prediction and vector kernels over vector
 * sizes the algorithms use; time each distinct call (median of repeated batches), then fit per kernel
 * seconds = fixed + perUnit · work by least squares on relative error.
 */
import { fit } from "./cost-fit.ts";
import { loadDataset } from "../data/index.ts";
import type { KernelExports, Ptr } from "../kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8 } from "../memory/arena.ts";
import type { Shape } from "../model/layers.ts";
import { Network, type Workspace } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { wrapKernels } from "../runtime/kernel-timer.ts";
import type { KernelCost } from "../runtime/costs.ts";
import { WORK } from "../runtime/kernel-work.ts";
import { DATA_SAMPLES } from "./step-replay.ts";

interface Call {
  name: string;
  args: number[];
}

interface Timed extends Call {
  seconds: number;
  work: number;
  bytes?: number;
  more?: number[];
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
  const coverage = coverageModels(dataset.shape, o.models).map(({ spec, shape, classes }) => {
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
  // weighted_sum's inputs: eight distinct vectors (a gossip node mixes its neighbours' messages, all
  // different memory; inputs that repeat a vector are cheaper to read and fitted weighted_sum 1.47×
  // short of a mixing step of mlp's size).
  const sumInputs = planner.floats("scratch", "sum.inputs", 8 * maxVector);
  const sumTable = planner.reserve("control", "sum.tensors", 8 * 4);
  const sumWeights = planner.reserve("control", "sum.weights", 8 * 4);
  const memory = createSharedMemory(planner.finish());
  const k = instantiateKernels(module, memory);
  fillInputs(memory, { bytes, labelBytes, indices, vectors, sumInputs, sumTable, sumWeights, maxRows, sampleBytes, maxVector, classes: dataset.classes });

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
    // At most twice a largest vector in all, so the operands stay in the last-level cache as the fit assumes.
    for (const parts of [2, 4, 8]) if (n * parts <= maxVector * 2) add("weighted_sum", [d, sumTable, sumWeights, parts, n]);
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
    timed.push({ ...call, seconds: medianCallSeconds(run, o.quick), work: w.work(call.args), ...(w.bytes ? { bytes: w.bytes(call.args) } : {}), ...(w.more ? { more: w.more.map((m) => m.of(call.args)) } : {}) });
  }
  const kernels: Record<string, KernelCost> = {};
  for (const name of Object.keys(WORK).filter(wanted)) {
    const mine = timed.filter((t) => t.name === name);
    if (mine.length === 0) throw new Error(`calibrate: no call of kernel ${name} was timed (the models used do not call it)`);
    kernels[name] = fit(mine);
  }
  return kernels;
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
 * Models whose kernels the default models (mlp, lenet) never call, and LeNet where the list lacks it:
 * a residual network with projection shortcuts on the data's images (or 28×28 digits' shape when the
 * data has none), which
 * covers batch norm, both shortcuts, global pooling, Winograd and strided im2col convolutions; and two
 * small transformers of different context and width (attention's cost grows with T² and C), which
 * cover embeddings, layer norms and attention.
 */
function coverageModels(dataShape: number[], models: string[]): { spec: string; shape: Shape; classes: number }[] {
  const image = dataShape.length === 3 && dataShape[1]! >= 4 && dataShape[2]! >= 4 ? dataShape : [1, 28, 28];
  // LeNet too when the user's list leaves it out: its bias+activation, pooling and 5×5 convolutions
  // are charged kernels that nothing else calls.
  const lenet = models.includes("lenet") ? [] : [{ spec: "lenet", shape: [1, 28, 28], classes: 10 }];
  return [
    ...lenet,
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
  o: { bytes: Ptr; labelBytes: Ptr; indices: Ptr; vectors: Ptr[]; sumInputs: Ptr; sumTable: Ptr; sumWeights: Ptr; maxRows: number; sampleBytes: number; maxVector: number; classes: number },
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
  // weighted_sum of up to 8 distinct vectors, weights 1/k
  const inputs = f32(memory, o.sumInputs, 8 * o.maxVector);
  for (let i = 0; i < inputs.length; i++) inputs[i] = 0.01 + 0.001 * (i % 89);
  const table = new Int32Array(memory.buffer, o.sumTable, 8);
  for (let i = 0; i < 8; i++) table[i] = o.sumInputs + i * 4 * o.maxVector;
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
