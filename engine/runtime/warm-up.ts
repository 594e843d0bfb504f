/**
 * Warming the kernels up while the run starts.
 *
 * JavaScriptCore runs a WebAssembly function in its baseline tier (BBQ) until the function has run
 * enough, then compiles it with its optimising tier (OMG) on a compiler thread. Until that code
 * arrives, a training step of mlp:784-256-128-10 on 64 rows takes about ten times its steady time
 * (13–15 ms against 1.4–1.7), so the first epoch pays a fixed warm-up cost. Paid inside the epoch, two
 * workers joined by a barrier pay it twice (each waits for the other's slow steps).
 *
 * The optimised code belongs to the compiled module, not to an instance or a thread: every instance
 * of the one WebAssembly.Module (each worker's, on the run's memory) runs what any of them got
 * compiled. So one worker warms the module up on a memory of its own while the main thread loads the
 * data and draws the initial weights: the core that start-up leaves idle does the work the first
 * epoch would otherwise do on the critical path.
 *
 * The warm-up never sees the run's memory: it plans and allocates a private arena (weights, two
 * gradients, their sum, the optimizer's state, one workspace, a few samples) and runs a training step
 * of the run's own network there, so the same kernels run on the same shapes: gathering a batch,
 * gradients, the sum of block gradients a synchronous step makes, and the run's optimizer update. The
 * first step of a cold run spends about as long in the sum and the update (streaming loops, in the low
 * tiers until compiled) as in its gradients beyond their steady time. Weights, sample orders and random
 * streams of the run are untouched by construction.
 *
 * Before that, the warming worker has the kernel map the run's own pages that the workers would touch
 * first inside the first epoch (gradients, optimizer state, activations, scratch: a fresh memory's pages
 * are mapped at their first write, 2–3 µs each, about 1500 of them for mlp:784-256-128-10 at two
 * workers). It writes each page with an atomic compare-exchange of 0 for 0, which changes no byte
 * whatever the main thread writes at the same time: a word that is not 0 is left as it is, atomically.
 */
import { UserError } from "../errors.ts";
import type { KernelExports } from "../kernels/abi.ts";
import { instantiateKernels } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32, u8, type ArenaPlan, type RegionKind } from "../memory/arena.ts";
import type { Shape } from "../model/layers.ts";
import { Network } from "../model/network.ts";
import { applyUpdate, planOptimizerState, updateRegion, type OptimizerConfig } from "../optim/optimizer.ts";

/**
 * Whether a run warms up unless told: on, SKEIN_WARM_UP=0 turns it off (1, or unset or empty, leaves it
 * on). Measured on the 2-core machine other jobs load (load 1.6–2.1), 2 workers, mlp:784-256-128-10,
 * pairs of processes alternating (bench/user-wall.ts): the whole process's wall time, warm-up minus
 * none, median of 12 pairs in each of two runs: sync128 −38 and −6 ms, sync256 −18 and −21, Hogwild!
 * −28 and +2; the first epoch 0 to 25 ms shorter. A warm-up over 64-row steps without the update and
 * the page mapping had not shortened the whole process (its start-up grew by what epoch 0 lost).
 */
export function warmUpByDefault(value: string | undefined = process.env.SKEIN_WARM_UP): boolean {
  if (value === undefined || value === "" || value === "1") return true;
  if (value === "0") return false;
  throw new UserError(`SKEIN_WARM_UP=${value}: expected 0 or 1`);
}

/** The network the run trains, the rows of one worker's block, how samples are stored and the update rule: what the warm-up computes on. */
export interface WarmUpSpec {
  model: string;
  inputShape: Shape;
  classes: number;
  rows: number;
  /** Bytes of one stored sample, and the u8 → f32 normalisation the gather applies (the run's data layout's). */
  sampleBytes: number;
  scale: number;
  shift: number;
  optimizer: OptimizerConfig;
}

/** What a warm-up did: pages of the run's memory mapped, training steps, and the first and last step's milliseconds. */
export interface WarmUpReport {
  calls: number;
  firstMs: number;
  lastMs: number;
  pages: number;
}

/**
 * A bound on the warm-up where start-up is long (a large data set): past this, the core it uses may
 * be wanted by the main thread, and the module is warm by then. The main thread ends it sooner
 * through `stop` when it is done with its own start-up.
 */
export const WARM_UP_MAX_MS = 150;
/**
 * Rows of the warm-up's batch, at most. The main thread's stop is read between layers, and the first
 * steps run in the low tiers: at 64 rows one layer of mlp:784-256-128-10 held the warming worker's
 * start 10–15 ms past the stop (first step 33–39 ms against 17–27 at 4–8 rows). JavaScriptCore tiers a
 * function up by its loop iterations and calls, and one 8-row step of a 784-wide layer makes tens of
 * thousands, so a small batch warms the same code.
 */
export const WARM_UP_ROWS = 8;
export const WARM_UP_MAX_CALLS = 64;

/** The run's regions whose pages the warm-up maps: what the workers write first, never the main thread's start-up alone. */
const PREFAULT_KINDS: readonly RegionKind[] = ["gradients", "optimizerState", "activations", "scratch"];

/** The run's memory and the byte ranges (offset, bytes, offset, bytes, …) whose pages the warm-up maps first. */
export interface PrefaultSpec {
  memory: WebAssembly.Memory;
  ranges: number[];
}

export function prefaultRanges(plan: ArenaPlan): number[] {
  return plan.regions.filter((r) => PREFAULT_KINDS.includes(r.kind) && r.bytes > 0).flatMap((r) => [r.offset, r.bytes]);
}

const PAGE_BYTES = 4096;

/** Writes every page of `ranges` once, changing no byte (compare-exchange 0 → 0); stops early when told. Returns the pages written. */
export function prefault({ memory, ranges }: PrefaultSpec, stopped: () => boolean): number {
  const words = new Int32Array(memory.buffer);
  let pages = 0;
  for (let i = 0; i + 1 < ranges.length; i += 2) {
    const end = ranges[i]! + ranges[i + 1]!;
    for (let at = ranges[i]!; at < end; at += PAGE_BYTES) {
      if ((pages & 63) === 0 && stopped()) return pages;
      Atomics.compareExchange(words, at >> 2, 0, 0);
      pages++;
    }
  }
  return pages;
}

/**
 * Maps the pages of `run` (when given), then training steps of `spec`'s network on a private memory until `words[0]` (stop) is set, WARM_UP_MAX_MS
 * have passed or WARM_UP_MAX_CALLS calls are done. Every worker is asked; the first to get to it
 * claims `words[1]` and warms, the others return at once (one warm module serves them all, and the
 * main thread keeps the other core). Stop is read between layers, so a worker the main thread
 * needs starts at most one layer's time later.
 */
export function warmUp(module: WebAssembly.Module, spec: WarmUpSpec, words: Int32Array, run: PrefaultSpec | null = null): WarmUpReport {
  const report: WarmUpReport = { calls: 0, firstMs: 0, lastMs: 0, pages: 0 };
  const stopped = () => Atomics.load(words, 0) !== 0;
  if (stopped() || Atomics.compareExchange(words, 1, 0, 1) !== 0) return report;
  if (run) report.pages = prefault(run, stopped);
  const net = new Network(spec.model, spec.inputShape, spec.classes);
  const rows = Math.min(spec.rows, WARM_UP_ROWS);
  const planner = new ArenaPlanner();
  const params = planner.floats("parameters", "warmUp.params", net.paramFloats);
  const grads = [planner.floats("gradients", "warmUp.grads0", net.paramFloats), planner.floats("gradients", "warmUp.grads1", net.paramFloats)];
  const gradSum = planner.floats("gradients", "warmUp.gradSum", net.paramFloats);
  const state = planOptimizerState(planner, net.paramFloats, spec.optimizer.kind, "warmUp.optimizer");
  const ws = net.planWorkspace(planner, "warmUp", rows);
  const images = planner.reserve("data", "warmUp.images", rows * spec.sampleBytes);
  const labels = planner.reserve("data", "warmUp.labels", rows);
  const indices = planner.reserve("activations", "warmUp.indices", rows * 4);
  const sumTable = planner.reserve("scratch", "warmUp.sumTable", 2 * 4);
  const sumWeights = planner.reserve("scratch", "warmUp.sumWeights", 2 * 4);
  const memory = createSharedMemory(planner.finish());
  const k: KernelExports = instantiateKernels(module, memory);
  // Small weights of both signs, so pre-activations take both sides of every branch; sample bytes 0
  // and 1 (valid pixels, and valid token ids for a language model); labels stay 0, a valid class.
  // Nothing here is drawn from the run's random streams.
  repeat(f32(memory, params, net.paramFloats), Float32Array.from({ length: 17 }, (_, i) => (i - 8) / 256));
  repeat(u8(memory, images, rows * spec.sampleBytes), Uint8Array.of(0, 1));
  new Int32Array(memory.buffer, indices, rows).set(Array.from({ length: rows }, (_, i) => i));
  new Int32Array(memory.buffer, sumTable, 2).set(grads);
  new Float32Array(memory.buffer, sumWeights, 2).fill(1);
  const layers = net.layers.length;
  const firstTrainable = net.trainableLayers[0] ?? layers;
  const started = performance.now();
  while (report.calls < WARM_UP_MAX_CALLS && !stopped() && performance.now() - started < WARM_UP_MAX_MS) {
    // One training step as a worker makes it: gather, Network.gradient layer by layer (into the two
    // block gradients in turn), the sum of the blocks, the update.
    const t = performance.now();
    const g = grads[report.calls % 2]!;
    k.gather_batch(ws.input, ws.labels, images, labels, indices, rows, spec.sampleBytes, spec.scale, spec.shift);
    for (let i = 0; i < layers && !stopped(); i++) net.forwardLayer(k, i, params, ws, rows);
    if (stopped()) break;
    net.lossAndGradient(k, ws, rows, 1 / rows);
    for (let i = layers - 1; i >= firstTrainable && !stopped(); i--) net.backwardLayer(k, i, params, g, ws, rows, false);
    if (stopped()) break;
    k.weighted_sum(gradSum, sumTable, sumWeights, 2, net.paramFloats);
    applyUpdate(k, spec.optimizer, updateRegion(params, gradSum, state, 0, net.paramFloats), report.calls + 1);
    report.lastMs = performance.now() - t;
    if (report.calls++ === 0) report.firstMs = report.lastMs;
  }
  return report;
}

/** Fills `to` with copies of `pattern` (doubling copies, not a loop in JavaScript's slowest tier). */
function repeat<T extends Float32Array | Uint8Array>(to: T, pattern: T): void {
  if (to.length === 0) return;
  to.set(pattern.subarray(0, Math.min(pattern.length, to.length)) as never);
  for (let have = Math.min(pattern.length, to.length); have < to.length; have *= 2) to.copyWithin(have, 0, Math.min(have, to.length - have));
}
