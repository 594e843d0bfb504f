/**
 * What a kernel call pays for operands that are no longer in cache.
 *
 * Calibration times a kernel by calling it over and over on the same operands, so its fitted cost is
 * the cost with those operands in the nearest cache that holds them. A run does not always reuse so
 * soon: a decentralized run keeps n replicas of the model (parameters, momentum, messages) and a
 * worker walks through all of its nodes before it touches node i's vectors again, so they come from
 * the last-level cache or from memory. The model here is the classic one of reuse (stack) distance:
 *
 *  - the arena's regions (parameters, gradients, optimizer state, activations, scratch) are the units
 *    of reuse; a call touches the regions its pointer arguments point into;
 *  - the bytes of the distinct regions touched since region r was last touched (r
 *    included) are r's reuse distance D: what had to fit in a cache for r to still be there;
 *  - how much of an operand has left the caches at distance D is read off a curve `skein calibrate`
 *    measures by streaming over working sets of growing size: secondsPerByte(D) rises from the
 *    nearest cache's cost to memory's, and missed(D) = (secondsPerByte(D) − secondsPerByte(own)) /
 *    (memory's − nearest cache's), in [0, 1], where `own` is the call's own operand bytes: the working
 *    set of the timing loop that fitted the kernel's cost;
 *  - what a byte from memory costs a kernel beyond one from cache is the kernel's own (calibrate times
 *    the streaming kernels cold and warm; others pay what the curve's axpy pays);
 *  - the GEMMs and the streaming kernels have a curve of their own (coldCurves): the axpy curve's
 *    share does not say when a kernel starts to pay. A GEMM pays as soon as an operand leaves the
 *    core's own cache; a mixing step (weighted_sum of three vectors, four streams) pays most of its
 *    cost from memory at 24 MiB (+46–64 ps per byte of +65–72), where axpy (two streams) pays a
 *    third of its own (+3–6 of +10–18);
 *  - a call pays, per operand, bytes × that cost × missed(D);
 *  - a streaming kernel's warm cost is priced by its call's footprint F (costs.ts, KernelCost.warm),
 *    the rate of the nearest cache holding all its operands; an operand its own program has pushed
 *    out of the core's own caches since (first and second level, private to each core) pays that
 *    curve's rise from F to the operand's distance in the program's own bytes, up to the footprint of
 *    the warm call its curve by distance is measured against (the curve takes over there, over all
 *    programs' bytes). On the development machine a lenet momentum step (741 KB) after the backward's
 *    activations took 2.5–3× its warm cost on threads.
 *
 * The programs share one last-level cache: what the curves by distance charge for is that cache (flat through
 * the cores' own caches, rising where the last level ends), and the cores of one machine share it (one
 * per socket), so a program's operand is pushed out by every program's bytes touched since, not its
 * own alone: the reuse distances are over all programs' calls in virtual-time order. (Kept per
 * program, two gossip workers of four replicas each looked like one of four: mlp dmsgd at P = 2
 * charged weighted_sum less than at P = 1, 6.5 against 7.8 ms per epoch, where threads took 17.4
 * against 14.4.) Control words are left out. The data set is not followed region by region: a shuffled epoch reads each sample once, so a
 * row the gather reads was last read an epoch ago, and everything the programs touched since lies in
 * between: its reuse distance is the data set's bytes plus the run's whole footprint (every region
 * it has touched). The gather's cost from memory is latency (random rows), not the streaming kernels'
 * bandwidth: calibrate times it on rows drawn from a data set far beyond the caches against one of
 * the size its kernel fit was timed on (`gatherFootprint`), and the missed fraction at that distance
 * pays the difference per gathered byte. Everything is a function of the call sequence, so simulated
 * times stay reproducible.
 */
import type { ArenaPlan, Region } from "../memory/arena.ts";
import type { WarmCurve } from "./warm-costs.ts";
import { isStreamingKernel, ringCallFootprint } from "./streaming-kernels.ts";

// The streaming kernels' names, operand counts and footprints live in streaming-kernels.ts.
export { isStreamingKernel, ringCallFootprint, RING_FLOATS, STREAMING_KERNELS, STREAMING_OPERANDS, streamingFootprint, type StreamingKernel } from "./streaming-kernels.ts";

/** The cost of streaming a byte by the working set it comes from, measured on the machine. */
export interface MemoryModel {
  /** Working-set sizes, bytes, ascending. */
  footprints: number[];
  /** Seconds per byte an axpy streams when the working set is footprints[i] (non-decreasing). */
  secondsPerByte: number[];
  /**
   * Per streaming kernel: seconds per operand byte it pays beyond its cost in cache when every operand
   * comes from memory. Kernels not listed (nor in coldCurves): the curve's last value less its first.
   */
  coldSecondsPerByte: Record<string, number>;
  /**
   * Per kernel whose cost from further away the axpy curve does not predict (the GEMMs and the
   * streaming kernels): seconds per operand byte beyond its cost in cache when its operands were last
   * touched footprints[i] bytes ago (non-decreasing). Such a kernel pays bytes × its own curve at each operand's reuse distance, in
   * place of the shared curve's missed share × coldSecondsPerByte, less its curve at the call's own
   * working set. A streaming kernel's curve is measured against its warm call on a small model's
   * vectors, which its warm cost by footprint (costs.ts, KernelCost.warm) prices at that call's
   * footprint F: for that call, warm cost plus curve(D) is what the ring measured at D, counted once;
   * a larger call pays only the curve beyond its own F. The curve is 0 below twice the warm call's
   * bytes (no ring fits there); below that call the warm rate's rise across the core's own caches is
   * charged instead, by the program's own distances (CacheTracker's `warm`): these distances run
   * over every program's bytes, where a core's own caches see only its program's.
   */
  coldCurves: Record<string, number[]>;
  /**
   * Bytes of the data set calibrate's gather timings walked over (a shuffled order of its rows): the
   * distance at which the kernel fit of gather_batch has its rows. coldSecondsPerByte.gather_batch is
   * what a gathered byte costs beyond that when the rows come from memory.
   */
  gatherFootprint: number;
}

/**
 * Per kernel export, the positions of its pointer arguments (as the kernel ABI declares them; a test
 * holds this list to the ABI). weighted_sum's second argument points to a table of k pointers: its
 * inputs (see pointersOf).
 */
export const POINTER_ARGS: Record<string, readonly number[]> = {
  gemm_nn: [0, 1, 2, 7],
  gemm_nt: [0, 1, 2, 7],
  gemm_tn: [0, 1, 2, 7],
  bias_act_forward: [0, 1, 2],
  bias_act_backward: [0, 1, 2, 3, 4],
  channel_bias_act_forward: [0, 1, 2],
  channel_bias_act_backward: [0, 1, 2, 3, 4],
  softmax_xent: [0, 1, 2],
  count_correct: [0, 1],
  conv2d_forward: [0, 1, 2, 12, 13],
  conv2d_backward: [0, 1, 2, 3, 4, 15, 16],
  conv2d_backward_input: [0, 1, 2, 12, 13],
  maxpool_forward: [0, 1, 2],
  maxpool_backward: [0, 1, 2],
  avgpool_forward: [0, 1],
  avgpool_backward: [0, 1],
  sgd_update: [0, 1],
  momentum_update: [0, 1, 2],
  adam_update: [0, 1, 2, 3],
  rmsprop_update: [0, 1, 2],
  predict_linear: [0, 1, 2],
  predict_nesterov: [0, 1, 2, 3],
  predict_adam: [0, 1, 2, 3],
  predict_rmsprop: [0, 1, 2, 3],
  axpy: [0, 1],
  scale: [0],
  copy: [0, 1],
  fill_zero: [0],
  weighted_sum: [0, 1, 2],
  delay_compensate: [0, 1, 2],
  squared_distance: [0, 1],
  gather_batch: [0, 1, 2, 3, 4],
  batchnorm_forward: [0, 1, 2, 3, 4, 5, 6],
  batchnorm_backward: [0, 1, 2, 3, 4, 5, 6, 7],
  shortcut_forward: [0, 1],
  shortcut_backward: [0, 1],
  global_avgpool_forward: [0, 1],
  global_avgpool_backward: [0, 1],
  winograd_forward: [0, 1, 2, 8],
  winograd_backward_input: [0, 1, 2, 8],
  winograd_backward_weights: [0, 1, 2, 9],
  winograd_scratch_floats: [],
  embedding_forward: [0, 1, 3, 4],
  embedding_backward: [0, 1, 2, 3],
  next_token_labels: [0, 1],
  layernorm_forward: [0, 1, 2, 3, 4],
  layernorm_backward: [0, 1, 2, 3, 4, 5, 6],
  layernorm_backward_params: [0, 1, 2, 3, 4],
  attention_forward: [0, 1, 2, 7],
  attention_backward: [0, 1, 2, 3, 8],
  attention_scratch_floats: [],
  fma_ceiling: [],
};

/**
 * Kernels whose operands the call's byte count does not bound well, per pointer position the bytes
 * that operand takes. A GEMM's three matrices differ in size by the shape (a 784×256 weight matrix
 * against a 64×256 output): charged each at the call's total, the evicted weight matrix would pay
 * for the output's bytes as well. Others: each operand at most the call's bytes.
 */
export const OPERAND_BYTES: Record<string, (args: number[]) => Record<number, number>> = {
  gemm_nn: gemmOperands,
  gemm_nt: gemmOperands,
  gemm_tn: gemmOperands,
};

/** The GEMMs, each with its own curve by distance in a cost table's coldCurves. */
export const GEMM_KERNELS = ["gemm_nn", "gemm_nt", "gemm_tn"] as const;

/** Bytes of C, A and B of a GEMM of shape [M, K, N] (A is M×K or K×M, B is K×N or N×K). */
export function gemmOperandBytes([M, K, N]: readonly [number, number, number]): [c: number, a: number, b: number] {
  return [4 * M * N, 4 * M * K, 4 * K * N];
}

/** A GEMM call's operand bytes by pointer position (C, A, B), from its arguments (M, K, N at 3–5). */
function gemmOperands(args: number[]): Record<number, number> {
  const [c, a, b] = gemmOperandBytes([args[3]!, args[4]!, args[5]!]);
  return { 0: c, 1: a, 2: b };
}

/** Seconds per byte at working set `bytes`: linear in log(bytes) between measured sizes, flat beyond. */
export function secondsPerByteAt(m: MemoryModel, bytes: number): number {
  return curveAt(m.footprints, m.secondsPerByte, bytes);
}

/** A curve over `f` (bytes, ascending) at `bytes`: linear in log(bytes) between measured sizes, flat beyond. */
export function curveAt(f: number[], s: number[], bytes: number): number {
  if (bytes <= f[0]!) return s[0]!;
  if (bytes >= f[f.length - 1]!) return s[s.length - 1]!;
  let i = 1;
  while (f[i]! < bytes) i++;
  const t = Math.log(bytes / f[i - 1]!) / Math.log(f[i]! / f[i - 1]!);
  return s[i - 1]! + t * (s[i]! - s[i - 1]!);
}

/** Regions whose reuse the model follows: what kernels stream, not the data set or control words. */
const TRACKED = new Set<Region["kind"]>(["parameters", "gradients", "optimizerState", "activations", "scratch"]);

/**
 * Reuse distances over the arena's regions (one cache, shared by the programs), and the seconds a call pays beyond its
 * calibrated cost for operands that come from further away than its timing loop had them.
 */
export class CacheTracker {
  private readonly starts: number[];
  private readonly ends: number[];
  private readonly sizes: number[];
  /** The shared cache's region ids, most recently touched (by any program) first. */
  private readonly lru: number[] = [];
  /** Per program, its own region ids, most recently touched by it first: what its core's own caches hold. */
  private readonly own = new Map<number, number[]>();
  /** Bytes of every region any program has touched (the run's footprint). */
  private footprint = 0;
  /** The data regions (samples, labels): [start, end) pairs. */
  private readonly data: { start: number; end: number }[];
  private readonly words: Int32Array | null;
  /** Beyond this distance every byte costs the same (the last measured size). */
  private readonly horizon: number;
  /** Memory's cost per byte over the nearest cache's, by the curve. */
  private readonly span: number;
  /** Scratch: the distinct regions of the call being charged and their bytes. */
  private readonly touched: number[] = [];
  private readonly touchedBytes: number[] = [];

  constructor(
    private readonly model: MemoryModel,
    plan: ArenaPlan,
    /** The shared memory, to read weighted_sum's table of input pointers; null: its inputs are not followed. */
    memory: WebAssembly.Memory | null,
    /**
     * The streaming kernels' warm cost per byte by footprint (the table's kernels; weighted_sum's
     * two-input curve under "weighted_sum/2"): an operand its own program pushed out of the core's
     * caches pays the rise of that curve from the call's footprint to the operand's own distance.
     * Absent: no such charge.
     */
    private readonly warm: Record<string, WarmCurve> = {},
  ) {
    const regions = plan.regions.filter((r) => TRACKED.has(r.kind) && r.bytes > 0).sort((a, b) => a.offset - b.offset);
    this.starts = regions.map((r) => r.offset);
    this.ends = regions.map((r) => r.offset + r.bytes);
    this.sizes = regions.map((r) => r.bytes);
    this.data = plan.regions.filter((r) => r.kind === "data" && r.bytes > 0).map((r) => ({ start: r.offset, end: r.offset + r.bytes }));
    this.words = memory ? new Int32Array(memory.buffer) : null;
    this.horizon = model.footprints[model.footprints.length - 1]!;
    this.span = model.secondsPerByte[model.secondsPerByte.length - 1]! - model.secondsPerByte[0]!;
  }

  /**
   * Seconds a call pays beyond the calibrated cost of kernel `name` called with `args`,
   * whose operands take at most `callBytes` bytes each (the kernel's own measure of what it streams);
   * and the call's regions become the most recent.
   */
  extraSeconds(name: string, args: number[], callBytes: number, program = 0): number {
    const rows = name === "gather_batch" ? this.gatherSeconds(args) : 0;
    return rows + this.operandSeconds(name, args, callBytes, program);
  }

  /**
   * What gather_batch(out, labelsOut, bytes, labelBytes, indices, count, sampleBytes, …) pays for rows
   * that have left the caches since the epoch before read them: count · sampleBytes bytes at a reuse
   * distance of the data set plus the run's footprint.
   */
  gatherSeconds(args: number[]): number {
    const cold = this.model.coldSecondsPerByte.gather_batch ?? 0;
    const set = this.data.find((d) => d.start <= args[2]! && args[2]! < d.end);
    if (!set || cold <= 0 || this.span <= 0) return 0;
    const distance = set.end - set.start + this.footprint;
    const missed = Math.min(1, (secondsPerByteAt(this.model, distance) - secondsPerByteAt(this.model, this.model.gatherFootprint)) / this.span);
    return missed > 0 ? args[5]! * args[6]! * cold * missed : 0;
  }

  private operandSeconds(name: string, args: number[], callBytes: number, program: number): number {
    const pointers = POINTER_ARGS[name];
    if (!pointers || pointers.length === 0) return 0;
    const touched = this.touched;
    const touchedBytes = this.touchedBytes;
    touched.length = 0;
    touchedBytes.length = 0;
    const sized = OPERAND_BYTES[name]?.(args);
    const add = (ptr: number, cap = callBytes) => {
      const r = this.regionOf(ptr);
      if (r < 0) return;
      const bytes = Math.min(this.ends[r]! - ptr, cap);
      const at = touched.indexOf(r);
      if (at < 0) {
        touched.push(r);
        touchedBytes.push(bytes);
      } else touchedBytes[at] = Math.max(touchedBytes[at]!, bytes);
    };
    for (const i of pointers) add(args[i]!, sized?.[i] ?? callBytes);
    if (name === "weighted_sum" && this.words) {
      const table = args[1]! >> 2;
      for (let j = 0; j < args[3]!; j++) add(this.words[table + j]!);
    }
    let own = 0;
    for (const b of touchedBytes) own += b;
    const base = secondsPerByteAt(this.model, own);
    // The gather's own figure is per row byte from memory (latency); its output and index vectors stream.
    const cold = (name === "gather_batch" ? undefined : this.model.coldSecondsPerByte[name]) ?? this.span;
    const ownCurve = this.model.coldCurves[name];
    const lru = this.lru;
    let mine = this.own.get(program);
    if (!mine) this.own.set(program, (mine = []));
    let extra = 0;
    const warm = isStreamingKernel(name) ? this.warm[name === "weighted_sum" && args[3] === 2 ? "weighted_sum/2" : name] : undefined;
    if (warm && isStreamingKernel(name)) {
      // The core's own caches: the warm rate's rise from the call's footprint to the operand's
      // distance in its own program's bytes, up to the ring's call (the curve by distance, over all
      // programs' bytes, takes over there: it is measured against that call).
      const cap = ringCallFootprint(name);
      const at = (bytes: number) => curveAt(warm.footprints, warm.secondsPerByte, Math.min(bytes, cap));
      const near = at(own);
      for (let t = 0; t < touched.length; t++) {
        const d = this.distance(mine, touched[t]!);
        const rise = at(d === Infinity ? cap : d) - near;
        if (rise > 0) extra += touchedBytes[t]! * rise;
      }
    }
    if (ownCurve) {
      // The kernel's own curve: per byte at the operand's distance, beyond its cost with all its operands near.
      const near = curveAt(this.model.footprints, ownCurve, own);
      for (let t = 0; t < touched.length; t++) {
        const d = this.distance(lru, touched[t]!);
        const far = curveAt(this.model.footprints, ownCurve, d === Infinity ? this.horizon : d) - near;
        if (far > 0) extra += touchedBytes[t]! * far;
      }
    } else if (this.span > 0 && cold > 0) {
      for (let t = 0; t < touched.length; t++) {
        const missed = Math.min(1, (secondsPerByteAt(this.model, this.distance(lru, touched[t]!)) - base) / this.span);
        if (missed > 0) extra += touchedBytes[t]! * cold * missed;
      }
    }
    // The call's regions are now the most recent, in argument order, in the shared cache and its program's own.
    for (let t = touched.length - 1; t >= 0; t--) {
      const at = lru.indexOf(touched[t]!);
      if (at >= 0) lru.splice(at, 1);
      else this.footprint += this.sizes[touched[t]!]!;
      lru.unshift(touched[t]!);
      const mineAt = mine.indexOf(touched[t]!);
      if (mineAt >= 0) mine.splice(mineAt, 1);
      mine.unshift(touched[t]!);
    }
    return extra;
  }

  /** Bytes of the regions touched since `region` was (itself included); beyond the horizon: infinite. */
  private distance(lru: number[], region: number): number {
    let bytes = 0;
    for (const r of lru) {
      bytes += this.sizes[r]!;
      if (r === region) return bytes;
      if (bytes > this.horizon) return Infinity;
    }
    return Infinity; // never touched
  }

  /** The tracked region holding byte `ptr`, or −1. */
  private regionOf(ptr: number): number {
    if (!Number.isInteger(ptr) || ptr <= 0) return -1;
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.starts[mid]! > ptr) hi = mid - 1;
      else if (this.ends[mid]! <= ptr) lo = mid + 1;
      else return mid;
    }
    return -1;
  }
}
