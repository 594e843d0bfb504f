/**
 * `skein calibrate`, step 1: the kernels. Record every call a training step makes (forward, loss,
 * backward, evaluation, and the backward split into input- and weight-gradient steps) for each model
 * at batch sizes 1…256, and for a residual network (resnet:8:b) and two small transformers whose
 * kernels those models do not call; time each distinct call (median of repeated batches), then fit per
 * kernel seconds = fixed + perUnit · work by least squares on relative error. The streaming kernels
 * (optimizer updates, prediction, averaging, copies) are also timed over footprints from 1 KiB to
 * 64 MiB and at each model's parameter count, and fitted per byte by their call's footprint
 * (calibrate-streaming.ts).
 */
import { fit, fitByFootprint } from "./cost-fit.ts";
import { medianCallSeconds, streamingCalls, timeStreaming, WARM_FOOTPRINTS } from "./calibrate-streaming.ts";
import { loadDataset } from "../data/index.ts";
import type { KernelExports, Ptr } from "../kernels/abi.ts";
import { instantiateKernels, loadKernelModule } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8 } from "../memory/arena.ts";
import type { Shape } from "../model/layers.ts";
import { Network, type Workspace } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { wrapKernels } from "../runtime/kernel-timer.ts";
import { kernelCostFunction, type KernelCost } from "../runtime/costs.ts";
import { isStreamingKernel, STREAMING_KERNELS, streamingFootprint } from "../runtime/cache-model.ts";
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
  const maxRows = Math.max(...rowsList);

  // One arena for everything: per model its parameters, gradients and a workspace; the data; pooling's planes.
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
  // Average pooling's two planes of values (see below): the larger is its input forward, its output backward.
  const poolFloats = 512 * 24 * 24;
  const poolA = planner.floats("scratch", "pool.a", poolFloats);
  const poolB = planner.floats("scratch", "pool.b", poolFloats);
  const memory = createSharedMemory(planner.finish());
  const k = instantiateKernels(module, memory);
  fillInputs(memory, { bytes, labelBytes, indices, poolA, poolFloats, sampleBytes, classes: dataset.classes });

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
  // Average pooling: no preset model uses it, so the shapes of a pooling layer after a convolution.
  for (const planes of [8, 64, 512]) {
    for (const side of [8, 24]) {
      calls.set(`avgpool_forward(${planes},${side})`, { name: "avgpool_forward", args: [poolB, poolA, planes, side, side, 2, 2] });
      calls.set(`avgpool_backward(${planes},${side})`, { name: "avgpool_backward", args: [poolB, poolA, planes, side, side, 2, 2] });
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
  // 1b. the streaming kernels warm by their call's footprint, over footprints from 1 KiB to 64 MiB and
  // at each model's parameter count (calibrate-streaming.ts), besides the calls the models' steps make.
  const streaming = STREAMING_KERNELS.filter(wanted);
  const modelSizes = nets.map((m) => m.net.paramFloats);
  const sweep = timeStreaming(module, streamingCalls(modelSizes, 2 * (1 << 20), streaming), o.quick, o.quick ? 1 : 2);
  o.say(`calibrate: ${sweep.length} calls of the ${streaming.length} streaming kernels by footprint`);
  const kernels: Record<string, KernelCost> = {};
  for (const name of streaming) {
    const points = [...timed.filter((t) => t.name === name).map((t) => ({ ...t, footprint: streamingFootprint(name, t.args) })), ...sweep.filter((p) => p.name === name)].map((p) => ({
      seconds: p.seconds,
      footprint: p.footprint,
      two: name === "weighted_sum" && p.args[3] === 2,
    }));
    kernels[name] = fitByFootprint(points, WARM_FOOTPRINTS);
    const cost = kernelCostFunction({ contextFactor: 1, callSeconds: 0, kernels }, name);
    const at = sweep.filter((p) => p.name === name && modelSizes.includes(p.n) && p.parts === 3).map((p) => `${(cost(p.args) / p.seconds).toFixed(2)} at ${p.n}`);
    const two = sweep.filter((p) => p.name === name && modelSizes.includes(p.n) && p.parts === 2).map((p) => `${(cost(p.args) / p.seconds).toFixed(2)} at ${p.n} (two inputs)`);
    o.say(`  ${name.padEnd(18)} fit error ${(kernels[name]!.fitError * 100).toFixed(1)}% over ${points.length} calls; fit / measured ${[...at, ...two].join(", ")} (the models' parameter counts)`);
  }
  for (const name of Object.keys(WORK).filter((n) => wanted(n) && !isStreamingKernel(n))) {
    const mine = timed.filter((t) => t.name === name);
    if (mine.length === 0) throw new Error(`calibrate: no call of kernel ${name} was timed (the models used do not call it)`);
    kernels[name] = fit(mine);
  }
  // In WORK's order, as tables have always listed them.
  return Object.fromEntries(Object.keys(WORK).filter(wanted).map((name) => [name, kernels[name]!]));
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
  o: { bytes: Ptr; labelBytes: Ptr; indices: Ptr; poolA: Ptr; poolFloats: number; sampleBytes: number; classes: number },
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
  const x = f32(memory, o.poolA, o.poolFloats);
  for (let i = 0; i < x.length; i++) x[i] = 0.01 + 0.001 * (i % 97);
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
