/**
 * `skein calibrate`, the memory step: what a byte costs by how long ago its program touched it (the
 * cost table's MemoryModel, see engine/runtime/cache-model.ts).
 *
 *  - The curve: for each working-set size F, axpy (y += a·x) walks round a ring of vector pairs that
 *    together take F bytes, so each pair was last touched F bytes ago; seconds per byte = time per call
 *    / bytes the call touches. Small F stays in the core's own caches, the largest comes from memory.
 *  - Per streaming kernel (the optimizer updates, averaging, copies), its own curve: its operands (vectors
 *    of a small model's size) walked round a ring of each working-set size from twice its call's bytes up, against
 *    the same call repeated on operands in cache, per byte; the ring of 128 MiB (all from memory) is
 *    also its coldSecondsPerByte. Kernels differ by far more than their bytes say, and they start
 *    paying at different distances: on the 2-core development machine a mixing step (weighted_sum of
 *    three vectors, four streams) pays 5–15 ps per byte at 16 MiB, 46–64 at 24 and 65–73 from memory,
 *    where axpy (two streams) pays 1, 3–6 and 10–18, and copy 1, 2–3 and 11–25.
 *  - Per GEMM, on the shapes of a small model's first layer at a training batch (64 rows, 784 → 256:
 *    a weight matrix of 800 KB), its own curve: C, A and B walked round a ring of each working-set
 *    size against the same call repeated, per operand byte. A decentralized worker's nodes each hold
 *    such a matrix and the other nodes' vectors push it out before its node comes round again. The
 *    axpy curve does not say what that costs a GEMM: axpy streams from the last-level cache as fast
 *    as from the core's own (80 GB/s flat to 16 MiB here), while a GEMM re-reads B once per block
 *    of A's rows and pays as soon as B has left the core's own cache (gemm_nn: +1.6 ps/B at 2 MiB,
 *    +39 at 8, +78 at 16, +90 at 128 MiB).
 *  - The gather (batch assembly) from memory: its cost there is latency (random rows), not bandwidth.
 *    gather_batch takes consecutive batches of a shuffled order over a data set of 128 MiB against one
 *    of the size the kernel fit timed it on (DATA_SAMPLES rows, in the last-level cache here), per
 *    gathered byte.
 */
import { GEMM_PACK_FLOATS } from "../kernels/abi.ts";
import { instantiateKernels } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../memory/arena.ts";
import { gemmOperandBytes, RING_FLOATS, STREAMING_KERNELS, STREAMING_OPERANDS, type MemoryModel } from "../runtime/cache-model.ts";
import { streamingArgs, type SumTable } from "./calibrate-streaming.ts";
import { Rng } from "../rng.ts";
import { DATA_SAMPLES } from "./step-replay.ts";

/**
 * Working-set sizes measured: 64 KiB (first-level cache) to 128 MiB (beyond any last-level cache
 * here), and 24 MiB between 16 and 32, where a mixing step's cost rises most steeply here (weighted_sum
 * of mlp-sized vectors: +5–15 ps per byte at 16 MiB, +46–64 at 24, +54–67 at 32).
 */
export const MEMORY_FOOTPRINTS = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 24576, 32768, 65536, 131072].map((k) => k * 1024);

/** Bytes of one vector of the axpy ring (at most): 256 KiB. */
const VECTOR_BYTES = 256 * 1024;

/** Floats per operand when timing a streaming kernel by distance (see RING_FLOATS). */
const COLD_FLOATS = RING_FLOATS;

/**
 * The GEMMs timed cold, each on the shapes a training step of a 784-256 layer at 64 rows gives it:
 * forward C[64×256] = X[64×784]·W[784×256], the input's gradient dX[64×784] = dY[64×256]·W[784×256]ᵀ,
 * the weight's gradient dW[784×256] = X[64×784]ᵀ·dY[64×256]. [M, K, N] as the kernels take them.
 */
export const COLD_GEMMS: Record<"gemm_nn" | "gemm_nt" | "gemm_tn", [M: number, K: number, N: number]> = {
  gemm_nn: [64, 784, 256],
  gemm_nt: [64, 256, 784],
  gemm_tn: [784, 64, 256],
};


/** Rows per gathered batch when timing the gather: a training batch. */
const GATHER_ROWS = 64;

export function calibrateMemory(module: WebAssembly.Module, o: { quick: boolean; sampleBytes: number }): MemoryModel {
  const largest = MEMORY_FOOTPRINTS[MEMORY_FOOTPRINTS.length - 1]!;
  const planner = new ArenaPlanner();
  const ring = planner.reserve("scratch", "memory.ring", largest);
  const pack = planner.floats("scratch", "memory.gemmPack", Math.max(...Object.values(COLD_GEMMS).map(([M, K, N]) => GEMM_PACK_FLOATS(M, K, N))));
  const tensors = planner.reserve("control", "memory.tensors", 16);
  const weights = planner.reserve("control", "memory.weights", 16);

  const memory = createSharedMemory(planner.finish());
  f32(memory, ring, largest / 4).fill(0.5);
  f32(memory, weights, 3).fill(1 / 3);
  const table: SumTable = { tensors, weights, pointers: new Int32Array(memory.buffer, tensors, 3) };
  const k = instantiateKernels(module, memory) as unknown as Record<string, (...a: number[]) => unknown>;
  const ms = o.quick ? 20 : 60;

  const timeRound = (slots: number, call: (slot: number) => void, trials = 5) => fastestSecondsPerCall(ms, slots, call, trials);
  /**
   * A kernel's own curve by distance: `call(s)` on the operands of slot s (`bytes` of them), round a
   * ring of each footprint against slot 0 again and again (the warm call), per operand byte. A ring of
   * fewer than two calls' operands is the warm call itself; further away never costs less (a dip is noise).
   */
  const coldCurve = (bytes: number, call: (slot: number) => void, ringTrials = 5): number[] => {
    const warm = timeRound(1, () => call(0));
    const curve = MEMORY_FOOTPRINTS.map((footprint) => (footprint < 2 * bytes ? 0 : Math.max(0, (timeRound(Math.floor(footprint / bytes), call, ringTrials) - warm) / bytes)));
    for (let i = 1; i < curve.length; i++) curve[i] = Math.max(curve[i]!, curve[i - 1]!);
    return curve;
  };

  const secondsPerByte: number[] = [];
  for (const footprint of MEMORY_FOOTPRINTS) {
    const vectorBytes = Math.min(VECTOR_BYTES, footprint / 2);
    const n = vectorBytes / 4;
    const seconds = timeRound(footprint / (2 * vectorBytes), (s) => k.axpy!(ring + s * 2 * vectorBytes, ring + s * 2 * vectorBytes + vectorBytes, n, 1e-9));
    secondsPerByte.push(seconds / (2 * vectorBytes));
  }
  // Further away never costs less: a dip is noise (other load at a smaller size).
  for (let i = 1; i < secondsPerByte.length; i++) secondsPerByte[i] = Math.max(secondsPerByte[i]!, secondsPerByte[i - 1]!);

  // Per streaming kernel, its own curve by distance (operands walked round rings of each size from
  // twice its call's bytes up, against the same call repeated); the last point, from memory, is also
  // its coldSecondsPerByte. Some 100 rings: --quick takes the faster of 2 trials, not the fastest of 5,
  // to stay within a few seconds of what it took without these curves.
  const coldSecondsPerByte: Record<string, number> = {};
  const coldCurves: Record<string, number[]> = {};
  const vector = COLD_FLOATS * 4;
  for (const name of STREAMING_KERNELS) {
    // weighted_sum mixes three inputs, a ring's mixing step.
    const operands = name === "weighted_sum" ? 4 : STREAMING_OPERANDS[name];
    const kernel = k[name]!;
    const at = (s: number) => Array.from({ length: operands }, (_, i) => ring + (s * operands + i) * vector);
    const curve = coldCurve(operands * vector, (s) => kernel(...streamingArgs(name, at(s), COLD_FLOATS, 3, table)), o.quick ? 2 : 5);
    coldCurves[name] = curve;
    coldSecondsPerByte[name] = curve[curve.length - 1]!;
  }

  f32(memory, ring, largest / 4).fill(0.5); // what the streaming kernels left there: no denormals, no NaN
  for (const [name, shape] of Object.entries(COLD_GEMMS)) {
    const [M, K, N] = shape;
    const sizes = gemmOperandBytes(shape);
    const bytes = sizes.reduce((a, b) => a + b, 0);
    const gemm = k[name]!;
    // Slot s holds C, A, B one after another.
    coldCurves[name] = coldCurve(bytes, (s) => gemm(ring + s * bytes, ring + s * bytes + sizes[0], ring + s * bytes + sizes[0] + sizes[1], M, K, N, 0, pack));
  }

  const gather = calibrateGather(module, o);
  coldSecondsPerByte.gather_batch = gather.coldSecondsPerByte;
  return { footprints: [...MEMORY_FOOTPRINTS], secondsPerByte, coldSecondsPerByte, coldCurves, gatherFootprint: gather.footprint };
}

/**
 * The gather from memory: seconds per gathered byte beyond its cost on a data set of DATA_SAMPLES rows
 * (`footprint` bytes, the size calibrate's kernel timing gathers from), when the rows are drawn from
 * 128 MiB.
 */
export function calibrateGather(module: WebAssembly.Module, o: { quick: boolean; sampleBytes: number }): { coldSecondsPerByte: number; footprint: number } {
  const largest = MEMORY_FOOTPRINTS[MEMORY_FOOTPRINTS.length - 1]!;
  const rowsFar = Math.floor(largest / o.sampleBytes);
  const planner = new ArenaPlanner();
  const samples = planner.reserve("data", "memory.samples", rowsFar * o.sampleBytes);
  const labels = planner.reserve("data", "memory.labels", rowsFar);
  const indices = planner.reserve("activations", "memory.indices", rowsFar * 4);
  const batch = planner.reserve("activations", "memory.batch", GATHER_ROWS * o.sampleBytes * 4);
  const batchLabels = planner.reserve("activations", "memory.batchLabels", GATHER_ROWS * 4);
  const memory = createSharedMemory(planner.finish());
  new Uint8Array(memory.buffer, samples, rowsFar * o.sampleBytes).fill(128);
  new Uint8Array(memory.buffer, labels, rowsFar).fill(3);
  const k = instantiateKernels(module, memory) as unknown as Record<string, (...a: number[]) => unknown>;
  const ms = o.quick ? 20 : 60;
  const order = new Int32Array(memory.buffer, indices, rowsFar);
  /** Seconds per call over consecutive batches of a shuffled order of `rows` rows (as an epoch does): the fastest of five trials. */
  const gather = (rows: number): number => {
    const rng = Rng.derive(1, "calibrate gather", rows);
    for (let i = 0; i < rows; i++) order[i] = i;
    for (let i = rows - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const slots = Math.floor(rows / GATHER_ROWS);
    return fastestSecondsPerCall(ms, slots, (s) => k.gather_batch!(batch, batchLabels, samples, labels, indices + s * GATHER_ROWS * 4, GATHER_ROWS, o.sampleBytes, 1 / 255, 0));
  };
  const near = gather(DATA_SAMPLES);
  const far = gather(rowsFar);
  return { coldSecondsPerByte: Math.max(0, (far - near) / (GATHER_ROWS * o.sampleBytes)), footprint: DATA_SAMPLES * o.sampleBytes };
}

/**
 * Seconds per call of `call` cycling over `slots` operand sets, after touching them all once: the
 * fastest of `count` trials of `ms` each (other load only ever slows a trial down).
 */
function fastestSecondsPerCall(ms: number, slots: number, call: (slot: number) => void, count = 5): number {
  for (let s = 0; s < slots; s++) call(s);
  const trials: number[] = [];
  for (let t = 0; t < count; t++) {
    let calls = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      for (let s = 0; s < slots; s++) call(s);
      calls += slots;
    }
    trials.push((performance.now() - t0) / 1000 / calls);
  }
  return Math.min(...trials);
}
