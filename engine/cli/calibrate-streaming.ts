/**
 * `skein calibrate`, step 1b: the streaming kernels (optimizer updates, prediction, averaging, copies)
 * warm, by their call's footprint.
 *
 * A warm call (the same operands again and again, as a timing loop and a run's repeated update of one
 * parameter vector have them) costs per byte what the nearest cache that holds all its operands
 * streams at, and that steps up where the footprint leaves a cache level: on the 2-core development
 * machine (48 KiB first-level, 1 MiB second-level per core, 32 MiB shared last level) a three-input
 * weighted_sum of a small model's size (3.8 MB) took 65–71 µs where a fit affine in the element
 * count over all calibrated sizes charged 46–48, and copy 15 against 8.4; copy's warm rate per byte
 * doubles from 512 KiB to 2 MiB and doubles again beyond 16 MiB. So these kernels are timed at
 * footprints a power of two apart from 4 KiB to 64 MiB (WARM_FOOTPRINTS, and two below the first so
 * the fit can tell a call's fixed cost from its bytes) and at each model's parameter count, and
 * fitted (cost-fit.ts, fitByFootprint) as fixed + bytes × secondsPerByte(footprint), piecewise
 * linear in log(footprint).
 *
 * The operands lie end to end as a run's arena lays out its vectors, with a few cache lines between
 * them: vectors a power of two apart fall into the same cache sets and run slower than any run's
 * (a three-input weighted_sum on 1 MiB vectors 4 MiB apart: 86–114 µs warm against 65–67 on the
 * small model's vectors).
 */
import { instantiateKernels } from "../kernels/load.ts";
import { alignUp, ArenaPlanner, createSharedMemory, f32 } from "../memory/arena.ts";
import { STREAMING_KERNELS, STREAMING_OPERANDS, streamingFootprint, type StreamingKernel } from "../runtime/cache-model.ts";

/** The knots of a streaming kernel's warm cost by footprint: 4 KiB to 64 MiB, a power of two apart. */
export const WARM_FOOTPRINTS = Array.from({ length: 15 }, (_, i) => 4096 << i);

/** Footprints below the first knot, timed too: there the cost is fixed + a constant per byte, which tells the two apart. */
const BELOW_KNOTS = [1024, 2048];

/** Cache lines left between two operands (an odd count: operands do not share cache sets whatever n is). */
const GAP_LINES = 7;

/** weighted_sum's inputs when timed by footprint: a ring's mixing step (self and two neighbours). */
const SWEEP_PARTS = 3;

export interface StreamingCall {
  name: StreamingKernel;
  /** Elements per operand. */
  n: number;
  /** weighted_sum: its inputs (k); others: unused. */
  parts: number;
}

export interface StreamingPoint extends StreamingCall {
  /** The kernel's arguments as timed. */
  args: number[];
  seconds: number;
  footprint: number;
}

const operandsOf = (c: StreamingCall): number => (c.name === "weighted_sum" ? c.parts + 1 : STREAMING_OPERANDS[c.name]);

/**
 * The calls to time: each kernel at every footprint of WARM_FOOTPRINTS (and the two below), and at
 * each of `sizes` (elements per operand: each model's parameters);
 * weighted_sum also with 2, 4 and 8 inputs at `sizes` while its inputs take at most `mixedCap` floats.
 */
export function streamingCalls(sizes: number[], mixedCap: number, kernels: readonly StreamingKernel[] = STREAMING_KERNELS): StreamingCall[] {
  const calls: StreamingCall[] = [];
  for (const name of kernels) {
    const operands = operandsOf({ name, n: 0, parts: SWEEP_PARTS });
    for (const footprint of [...BELOW_KNOTS, ...WARM_FOOTPRINTS]) {
      calls.push({ name, n: sweepFloats(footprint, operands), parts: SWEEP_PARTS });
      // weighted_sum of two inputs runs a loop of its own: its own curve.
      if (name === "weighted_sum") calls.push({ name, n: sweepFloats(footprint, 3), parts: 2 });
    }
    for (const n of sizes) {
      calls.push({ name, n, parts: SWEEP_PARTS });
      if (name === "weighted_sum") for (const parts of [2, 4, 8]) if (n * parts <= mixedCap) calls.push({ name, n, parts });
    }
  }
  return calls;
}

/**
 * Floats per operand for a footprint: a whole number of 16-float steps, one step short of the
 * footprint, so never a power of two (a three-input weighted_sum on vectors of 2^20 floats took
 * 732–901 µs warm, 44–55 ps per byte, where 2^21 took 25 and 2^19 20).
 */
const sweepFloats = (footprint: number, operands: number): number => Math.max(16, Math.floor(footprint / 4 / operands / 16) * 16 - 16);

/** weighted_sum's table of input pointers (written per call) and of their weights. */
export interface SumTable {
  pointers: Int32Array;
  tensors: number;
  weights: number;
}

/**
 * A streaming kernel's arguments on operands p[0], p[1], … of n floats each: the one place calibrate
 * says how each is called (tiny step sizes, so repeated calls keep the values normal). weighted_sum
 * sums p[1..parts] into p[0] through `table`.
 */
export function streamingArgs(name: StreamingKernel, p: number[], n: number, parts: number, table: SumTable): number[] {
  switch (name) {
    case "copy": return [p[0]!, p[1]!, n];
    case "axpy": return [p[0]!, p[1]!, n, 1e-9];
    case "scale": return [p[0]!, n, 1];
    case "fill_zero": return [p[0]!, n];
    case "sgd_update": return [p[0]!, p[1]!, n, 1e-9, 0];
    case "momentum_update": return [p[0]!, p[1]!, p[2]!, n, 1e-9, 0.9, 0, 0, 0];
    case "adam_update": return [p[0]!, p[1]!, p[2]!, p[3]!, n, 1e-9, 0.9, 0.999, 1e-8, 0, 0, 0.1, 0.001];
    case "rmsprop_update": return [p[0]!, p[1]!, p[2]!, n, 1e-9, 0.99, 1e-8, 0];
    case "predict_linear": return [p[0]!, p[1]!, p[2]!, n, 1e-9];
    case "predict_nesterov": return [p[0]!, p[1]!, p[2]!, p[3]!, n, 1e-9, 0.9];
    case "predict_adam": return [p[0]!, p[1]!, p[2]!, p[3]!, n, 1e-9, 0.1, 0.001, 1e-8];
    case "predict_rmsprop": return [p[0]!, p[1]!, p[2]!, p[3]!, n, 1e-9, 1e-8];
    case "delay_compensate": return [p[0]!, p[1]!, p[2]!, n, 1e-9];
    case "squared_distance": return [p[0]!, p[1]!, n];
    case "weighted_sum":
      for (let i = 0; i < parts; i++) table.pointers[i] = p[i + 1]!;
      return [p[0]!, table.tensors, table.weights, parts, n];
  }
}

/** One memory for the largest call's operands, laid out as a run's arena would, and the kernels on it. */
export class StreamingOperands {
  private readonly k: Record<string, (...a: number[]) => unknown>;
  private readonly base: number;
  private readonly sums: SumTable;

  constructor(module: WebAssembly.Module, calls: StreamingCall[]) {
    const bytes = Math.max(...calls.map((c) => operandsOf(c) * (alignUp(4 * c.n) + 64 * GAP_LINES)));
    const planner = new ArenaPlanner();
    this.base = planner.reserve("scratch", "streaming.operands", bytes);
    const tensors = planner.reserve("control", "streaming.tensors", 8 * 4);
    const weights = planner.reserve("control", "streaming.weights", 8 * 4);
    const memory = createSharedMemory(planner.finish());
    // Small nonzero values: every kernel on its normal path (no denormals, no division by zero).
    const x = f32(memory, this.base, bytes / 4);
    for (let i = 0; i < x.length; i++) x[i] = 0.01 + 0.001 * (i % 89);
    f32(memory, weights, 8).fill(0.125);
    this.sums = { tensors, weights, pointers: new Int32Array(memory.buffer, tensors, 8) };
    this.k = instantiateKernels(module, memory) as unknown as Record<string, (...a: number[]) => unknown>;
  }

  /** The kernel's arguments for `c` on operands p[0], p[1], … (weighted_sum: its output, then its inputs through the pointer table). */
  args(c: StreamingCall): number[] {
    const stride = alignUp(4 * c.n) + 64 * GAP_LINES;
    const p = Array.from({ length: operandsOf(c) }, (_, i) => this.base + i * stride);
    return streamingArgs(c.name, p, c.n, c.parts, this.sums);
  }

  /** Median seconds of one warm call of `c` (see medianCallSeconds). */
  time(c: StreamingCall, quick: boolean): StreamingPoint {
    const args = this.args(c);
    const fn = this.k[c.name]!;
    return { ...c, args, seconds: medianCallSeconds(() => fn(...args), quick), footprint: streamingFootprint(c.name, args) };
  }
}

/** Every call of `calls` timed warm, in order: its fastest median over `rounds` passes. */
export function timeStreaming(module: WebAssembly.Module, calls: StreamingCall[], quick: boolean, rounds = 1): StreamingPoint[] {
  const operands = new StreamingOperands(module, calls);
  const points = calls.map((c) => operands.time(c, quick));
  // Each call's fastest median over the rounds: other load on the machine only ever slows a round down.
  for (let r = 1; r < rounds; r++) calls.forEach((c, i) => (points[i]!.seconds = Math.min(points[i]!.seconds, operands.time(c, quick).seconds)));
  return points;
}

/** Median seconds of one call over repeated batches, each long enough for the clock to resolve. */
export function medianCallSeconds(call: () => unknown, quick: boolean): number {
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
