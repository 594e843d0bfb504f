/**
 * Synchronous data-parallel SGD: the all-reduce / PmSGD baseline every other algorithm is compared to.
 *
 *   for each step:
 *     cut the batch into blocks of syncBlockRows(batch) samples (the last one smaller)
 *     every worker: until no block is left, claim a block b (its own home's first) and compute
 *       g_b = ∇ loss on block b, scaled by 1/|batch|, into block b's own gradient vector: all of it
 *       but the first layer's weight rows, then announce b and compute those rows piece by piece,
 *       claiming each piece from b's counter
 *     every worker, once no block is left to claim: help with the pieces of the blocks still computing
 *     barrier
 *     reduce and update, shared the same way: the flat parameter vector is cut into pieces of
 *       REDUCE_PIECE_FLOATS; until none is left, a worker claims a piece (its own slice's first),
 *       sums g_0 + … + g_{B−1} over it, in block order, and applies the optimizer to that piece only
 *     barrier
 *
 * With one worker this is plain minibatch SGD. Workers claim blocks dynamically, so a worker slowed by
 * the machine takes fewer blocks instead of making the others wait at the barrier (with a fixed shard
 * per worker, a synchronous step pays the slower worker's jitter every step). The blocks are cut by the
 * configuration alone and summed in block order, never in worker order, so the weights are bitwise
 * the same whichever worker computed which block, for any interleaving and any worker count. The
 * reduction and the optimizer work element by element, so who takes which piece of the vector does not
 * change a bit either; claiming the pieces (rather than a fixed slice per worker) lets the worker that
 * released the barrier start on them at once while its peer is still waking up, and lets one worker do
 * them all while the machine has descheduled the other.
 *
 * A batch of 128 is two blocks: each worker computes one, and a worker the machine slowed for a moment
 * (the other tenants of a shared host take a vCPU for a millisecond at a time) makes its peer wait at
 * the barrier, with no block left to take over. So the last GEMM of a block, the first layer's weight
 * gradient (a third of the block's work in mlp:784-256-128-10), is cut into row pieces
 * (gemmRowPieces) any worker may compute, reading the owner's activations in the shared memory: the
 * worker that finishes first takes half of what is left of its peer's. Each piece is the same products
 * in the same order whoever computes it (gemm_tn's lda), so this, too, changes no bit. A helper can
 * only be helping once every block is claimed, so the owner never reuses its buffers while a helper
 * still reads them (its next claim fails: it goes to the barrier). Measured as a user runs it (2 workers,
 * pairs of separate processes against the code before, 10 epochs): 1.08× samples/s at batch 64, 1.09×
 * at 128, 1.14× at 256, faster in 10/12, 13/16 and 14/16 pairs.
 *
 * Each worker claims from its home first (runtime/claim.ts: a contiguous share of the blocks, and its
 * slice of the vector), then takes what is left of the others'. When the workers keep pace, worker w
 * computes the same blocks and updates the same pieces step after step, so the gradient vectors it
 * writes, and the parameters and optimizer state of its pieces, are already in its own core's cache;
 * claimed from one shared counter, they went to whichever worker came first, and half of those lines
 * came from the other core. Measured as a user runs it (mlp:784-256-128-10, sync, batch 128, 2 workers,
 * separate processes, paired rounds): +0.02 of the machine's 2-core capacity over 5 epochs, +0.03–0.07
 * over 20; batch 256 unchanged.
 */
import { gemmRowPieces, type Ptr } from "../kernels/abi.ts";
import { applyUpdate, planOptimizerState, updateRegion } from "../optim/optimizer.ts";
import { writeWeightedSumArgs, type WeightedSumArgs } from "../kernels/weighted-sum.ts";
import { claimFromHomes, HOME, resetHome } from "../runtime/claim.ts";
import { loadBatch, planWorkerBuffers, type RoleContext } from "../runtime/context.ts";
import { CONTROL_LINE_WORDS } from "../runtime/control.ts";
import type { Algorithm, AlgorithmPlan, EpochResult, PlanInput } from "./algorithm.ts";
import type { RoleProgram } from "../runtime/sync.ts";
import { alignedSliceOf, shardOf } from "../runtime/split.ts";
import { firstLocalProgram, processShare } from "../runtime/processes.ts";
import { mark, span } from "../runtime/trace.ts";
import { epochOrderOf } from "../runtime/epoch-order.ts";

/**
 * Samples per block: a function of the batch alone, so the weights do not depend on the worker count.
 * At most 64: measured on the 2-core machine (mlp:784-256-128-10, 2 workers, separate processes,
 * alternating), blocks of 32 lost 5–25% against blocks of 64 at batch 128 and 256, because every block
 * is one more pass over the weight gradient (a dW GEMM with a short reduction, and one more vector in
 * the block-order sum). A batch above 32 has two blocks or more, so a second worker has something to
 * claim at the default batch of 64; a batch of up to 32 is one block (halves of ≤ 16 samples would
 * spend more on the weight-gradient pass than they save), which also keeps small-batch sync exactly
 * minibatch SGD with one GEMM over the batch, bitwise, as one-worker Hogwild! and a one-stage pipeline
 * compute it.
 */
export function syncBlockRows(batch: number): number {
  return batch <= 32 ? batch : Math.min(64, Math.max(32, Math.ceil(batch / 2 / 16) * 16));
}

/**
 * Floats per piece of the reduction and update: 32 KiB of each vector read, a few microseconds of work
 * against a fraction of a microsecond to claim it; 29 pieces for mlp:784-256-128-10. A multiple of 16,
 * so every piece but the vector's last is whole SIMD chunks, as the kernels split it on their own.
 */
export const REDUCE_PIECE_FLOATS = 8192;

/** The pieces of [lo, hi) claimed in a step's reduction: piece p is [lo + p·size, min(hi, lo + (p + 1)·size)). */
export function reducePiece(lo: number, hi: number, p: number, size = REDUCE_PIECE_FLOATS): { lo: number; hi: number } {
  return { lo: lo + p * size, hi: Math.min(hi, lo + (p + 1) * size) };
}

type Range = { lo: number; hi: number };

/**
 * Rows per piece of the first layer's weight gradient (rounded to the GEMM's 6). Measured on the
 * 784 × 64 × 256 product of mlp:784-256-128-10 (one thread, medians of 40 alternating rounds): pieces
 * of 120 rows (6 of them) cost 1% more than one call, of 96 rows 2%, of 60 rows 9% (a GEMM of few rows
 * reads B more often per product).
 */
export const FIRST_WEIGHT_PIECE_ROWS = 120;

/** The trace's span for first-layer weight rows computed for another worker's block. */
export const SPAN_HELPED = "first-layer dW rows of a peer's block";

/** Words of a block's control line (one cache line per block, so blocks' counters never share one). */
const BLOCK = {
  /** 0 → 1 (Sync.wake) when all of the block's gradient but the first layer's weight rows is done. */
  ready: 0,
  /** The worker that computed the block: its workspace holds what the pieces read. */
  owner: 1,
  /** The next piece of the block's first-layer weight rows to claim. */
  nextPiece: 2,
} as const;

/**
 * The pieces of a process's workers' slices, slice after slice, and each worker's home among them:
 * the pieces of its own slice (pieces[homes[i].lo … homes[i].hi − 1] tile slices[i]).
 */
export function reductionPieces(slices: readonly Range[], size = REDUCE_PIECE_FLOATS): { pieces: Range[]; homes: Range[] } {
  const pieces: Range[] = [];
  const homes = slices.map((slice) => {
    const lo = pieces.length;
    for (let p = 0; p * size < slice.hi - slice.lo; p++) pieces.push(reducePiece(slice.lo, slice.hi, p, size));
    return { lo, hi: pieces.length };
  });
  return { pieces, homes };
}

export interface SyncLayout {
  /** One gradient vector per block of a step: block b's gradient, whoever computed it. */
  blockGrads: Ptr[];
  /**
   * The summed gradient: block 0's vector itself, summed into in place (the kernel reads every input
   * of a 16-float chunk before it writes that chunk), which saves a vector and the cache misses of
   * writing into a cold one. During the reduction a piece of it is written and read only by the
   * worker that claimed that piece.
   */
  gradSum: Ptr;
  /** Per worker: i32[B] pointers to the claimed piece of every block's gradient, f32[B] weights (all 1). */
  reduceArgs: WeightedSumArgs[];
  /**
   * Float ranges of the flat vector, one per worker, contiguous in worker order. A run that spans
   * processes gives each process the union of its workers' ranges (the exchange sends and gathers by
   * them); the process's workers reduce and update that union, piece by piece, whoever claims them.
   */
  slices: { lo: number; hi: number }[];
  blockRows: number;
  /**
   * The row pieces of the first trainable layer's weight gradient, which any worker of a process may
   * compute (Layer.backwardWeightRows); null where that layer cannot split its weight gradient.
   */
  firstWeightPieces: Range[] | null;
  /** One cache line of control words per block (BLOCK), rewound by the block's owner after each step. */
  blockLines: Ptr;
}

export const syncSgd: Algorithm<SyncLayout> = {
  name: "sync",
  family: "sync",
  about: "synchronous data-parallel SGD: gradients all-reduced every step",
  paper: "minibatch SGD with an all-reduce (the baseline every other algorithm is compared to)",
  flags: [],
  programs: (config) => config.workers,
  stepsPerEpoch: (config, trainCount) => stepsPerEpoch(trainCount, config.batch),
  plan: planSync,
  epoch: syncWorkerEpoch,
};

function planSync(input: PlanInput): AlgorithmPlan<SyncLayout> {
  const { planner, net, programs: workers } = input;
  const params = planner.floats("parameters", "params", net.paramFloats);
  const optimizerState = planOptimizerState(planner, net.paramFloats, input.optimizer.kind);
  const blockRows = Math.min(syncBlockRows(input.batch), input.batch);
  const blocks = Math.ceil(input.batch / blockRows);
  const blockGrads = Array.from({ length: blocks }, (_, b) => planner.floats("gradients", `block${b}.grads`, net.paramFloats));
  const gradSum = blockGrads[0]!;
  const reduceArgs = Array.from({ length: workers }, (_, w) => ({
    tensors: planner.reserve("control", `worker${w}.reduce.tensors`, blocks * 4),
    weights: planner.reserve("control", `worker${w}.reduce.weights`, blocks * 4),
  }));
  const slices = Array.from({ length: workers }, (_, w) => alignedSliceOf(net.paramFloats, workers, w));
  const weightRows = net.firstWeightGradientRows;
  const firstWeightPieces = weightRows > 0 ? gemmRowPieces(weightRows, FIRST_WEIGHT_PIECE_ROWS) : null;
  const blockLines = planner.reserve("control", "sync.blockLines", blocks * CONTROL_LINE_WORDS * 4);
  return {
    layout: { blockGrads, gradSum, reduceArgs, slices, blockRows, firstWeightPieces, blockLines },
    params,
    optimizerState,
    perWorker: Array.from({ length: workers }, (_, w) => planWorkerBuffers(planner, net, `worker${w}`, blockRows)),
  };
}

export function stepsPerEpoch(trainCount: number, batch: number): number {
  return Math.ceil(trainCount / batch);
}

/** One epoch of one worker; Adam's step count continues from the epochs before it. */
function* syncWorkerEpoch(ctx: RoleContext<SyncLayout>, epoch: number): RoleProgram<EpochResult> {
  const { k, net, setup, worker, sync, control } = ctx;
  const started = performance.now();
  const waitedBefore = sync.waitedMs;
  const layout = setup.layout;
  const { blockRows, blockGrads } = layout;
  const mine = setup.perWorker[worker]!;
  // This process's workers (all of them in one process): their homes among the blocks and the pieces.
  const first = firstLocalProgram(setup);
  const locals = setup.processes?.count ?? setup.programs;
  const me = worker - first;
  const { pieces, homes: pieceHomes } = reductionPieces(layout.slices.slice(first, first + locals));
  const blockHomesOf = new Map<number, Range[]>(); // by the step's block count (the last step may have fewer)
  // The table of every block's gradient, in block order (weights 1); each piece rewrites the pointers.
  const reduceArgs = layout.reduceArgs[worker]!;
  writeWeightedSumArgs(ctx.memory, reduceArgs, blockGrads, 1);
  const piecePointers = new Int32Array(ctx.memory.buffer, reduceArgs.tensors, blockGrads.length);
  // Pieces of a block's first-layer weight gradient are shared by the workers of one process (a run
  // across processes keeps each block in the process that computed it: its activations are there).
  const shared = layout.firstWeightPieces !== null && locals > 1 && !setup.processes ? new FirstWeightSharing(ctx) : null;
  const mineThisStep: number[] = [];

  const { trainCount } = setup.data;
  const order = epochOrderOf(ctx, epoch);
  const steps = stepsPerEpoch(trainCount, setup.batch);
  const stepsBefore = epoch * steps;
  let lossSum = 0;
  let samples = 0;

  for (let step = 0; step < steps; step++) {
    // Nobody claims a piece before the next barrier: rewind my home's counter the last reduction used.
    resetHome(control, worker, HOME.pieces);
    const batchStart = step * setup.batch;
    const batchRows = Math.min(setup.batch, trainCount - batchStart);
    const blocks = Math.ceil(batchRows / blockRows);
    // Across processes each process computes its own share of the blocks (all of them in one process).
    const share = processShare(setup, blocks);
    let blockHomes = blockHomesOf.get(blocks);
    if (!blockHomes) blockHomesOf.set(blocks, (blockHomes = Array.from({ length: locals }, (_, i) => shardOf(share.hi - share.lo, locals, i))));
    const t0 = mark(ctx.trace);
    for (;;) {
      const claimed = yield* claimFromHomes(sync, control, HOME.blocks, blockHomes, first, me);
      if (claimed < 0) break;
      const b = share.lo + claimed;
      const rows = Math.min(blockRows, batchRows - b * blockRows);
      loadBatch(ctx, mine, "train", order, batchStart + b * blockRows, rows);
      if (!shared) lossSum += net.gradient(k, setup.params, blockGrads[b]!, mine.ws, rows, 1 / batchRows);
      else {
        lossSum += net.gradientButFirstWeightRows(k, setup.params, blockGrads[b]!, mine.ws, rows, 1 / batchRows);
        shared.announce(b);
        mineThisStep.push(b);
        yield* shared.computePieces(b, rows);
      }
      samples += rows;
      control.report(worker, lossSum, rows);
    }
    span(ctx.trace, "forward+backward", t0);
    if (shared) {
      // Every block is claimed: those not mine are being computed, or done; help with what is left.
      for (let i = 0; i < share.hi - share.lo; i++) {
        const b = share.lo + ((blockHomes[me]!.hi + i) % (share.hi - share.lo)); // the next home's first
        if (mineThisStep.includes(b)) continue;
        const t = mark(ctx.trace);
        if ((yield* shared.help(b, Math.min(blockRows, batchRows - b * blockRows))) > 0) span(ctx.trace, SPAN_HELPED, t);
      }
    }
    yield* sync.barrier(); // every block's gradient is in place, and nobody claims any more

    // Nobody claims a block before the next barrier: rewind my home's counter for the next step, and
    // the lines of the blocks I computed.
    resetHome(control, worker, HOME.blocks);
    for (const b of mineThisStep) shared!.rewind(b);
    mineThisStep.length = 0;
    const t1 = mark(ctx.trace);
    sync.allReduce(net.parameterCount * 4, setup.programs); // what the reduction costs between nodes of a cluster
    for (;;) {
      const p = yield* claimFromHomes(sync, control, HOME.pieces, pieceHomes, first, me);
      if (p < 0) break;
      const piece = pieces[p]!;
      if (blocks > 1) {
        for (let b = 0; b < blocks; b++) piecePointers[b] = blockGrads[b]! + piece.lo * 4;
        k.weighted_sum(layout.gradSum + piece.lo * 4, reduceArgs.tensors, reduceArgs.weights, blocks, piece.hi - piece.lo);
      }
      applyUpdate(k, setup.optimizer, updateRegion(setup.params, layout.gradSum, setup.optimizerState, piece.lo, piece.hi - piece.lo), stepsBefore + step + 1);
    }
    span(ctx.trace, "reduce+update", t1);
    yield* sync.barrier(); // the whole vector is updated before anyone reads it again
  }
  // Every worker takes part in every step; worker 0 speaks for the step count.
  const updates = worker === 0 ? steps : 0;
  return {
    lossSum,
    samples,
    updates,
    layerUpdates: updates * net.trainableLayers.length,
    waitedMs: sync.waitedMs - waitedBefore,
    elapsedMs: performance.now() - started,
  };
}

/**
 * One worker's side of sharing the first layer's weight gradient of a step's blocks. The owner of
 * block b computes the rest of b's gradient, announces b (BLOCK.ready), then claims b's pieces one by
 * one; a worker with no block left waits for b's announcement and claims the pieces still unclaimed.
 */
class FirstWeightSharing {
  private readonly pieces: Range[];
  private readonly lines: Int32Array;
  /** What a wait for block b is for (named once: a string built every step would be garbage every step). */
  private readonly waitsFor: string[];

  constructor(private readonly ctx: RoleContext<SyncLayout>) {
    this.pieces = ctx.setup.layout.firstWeightPieces!;
    const blocks = ctx.setup.layout.blockGrads.length;
    this.lines = new Int32Array(ctx.memory.buffer, ctx.setup.layout.blockLines, blocks * CONTROL_LINE_WORDS);
    this.waitsFor = Array.from({ length: blocks }, (_, b) => `block ${b}'s gradient`);
  }

  /** The rest of block b's gradient is in place, in my workspace: its pieces may be claimed. */
  announce(b: number): void {
    Atomics.store(this.lines, b * CONTROL_LINE_WORDS + BLOCK.owner, this.ctx.worker);
    this.ctx.sync.wake(this.byteOf(b, BLOCK.ready));
  }

  /** Claim and compute block b's pieces until none is left; `rows`: the block's samples. Returns how many I computed. */
  *computePieces(b: number, rows: number): RoleProgram<number> {
    const { ctx } = this;
    const owner = Atomics.load(this.lines, b * CONTROL_LINE_WORDS + BLOCK.owner);
    const ownerWs = ctx.setup.perWorker[owner]!.ws;
    const scratch = ctx.setup.perWorker[ctx.worker]!.ws.scratch;
    const grads = ctx.setup.layout.blockGrads[b]!;
    for (let computed = 0; ; computed++) {
      yield* ctx.sync.point(); // deterministic executor: let another program claim first
      const p = Atomics.add(this.lines, b * CONTROL_LINE_WORDS + BLOCK.nextPiece, 1);
      if (p >= this.pieces.length) return computed;
      const { lo, hi } = this.pieces[p]!;
      ctx.net.firstWeightRows(ctx.k, grads, ownerWs, rows, lo, hi, scratch);
    }
  }

  /** Another worker's block b: wait until it is announced, then compute what pieces are left (how many I did). */
  *help(b: number, rows: number): RoleProgram<number> {
    // All of its pieces taken: the owner (or another helper) finishes them; nothing to wait for.
    if (Atomics.load(this.lines, b * CONTROL_LINE_WORDS + BLOCK.nextPiece) >= this.pieces.length) return 0;
    // Returns at once where it is announced (virtual time: at the announcement's time).
    yield* this.ctx.sync.waitChange(this.byteOf(b, BLOCK.ready), 0, this.waitsFor[b]!);
    return yield* this.computePieces(b, rows);
  }

  /** Between the step's two barriers, by the block's owner: nobody reads the line until the next step. */
  rewind(b: number): void {
    Atomics.store(this.lines, b * CONTROL_LINE_WORDS + BLOCK.ready, 0);
    Atomics.store(this.lines, b * CONTROL_LINE_WORDS + BLOCK.nextPiece, 0);
  }

  private byteOf(b: number, word: number): number {
    return this.ctx.setup.layout.blockLines + (b * CONTROL_LINE_WORDS + word) * 4;
  }
}
