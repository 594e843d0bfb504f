/**
 * What crosses processes, per algorithm. Every process plans the same arena, so a vector lives at the
 * same offset everywhere: a process that needs a vector another one wrote receives its bytes into its
 * own copy of that region (a ghost of the remote vector) before the barrier after which it is read is
 * released. The arithmetic is then exactly the in-process arithmetic on exactly the same bits, in the
 * same order: the run is bitwise the run of one process.
 *
 * `transfers(epoch, k, from, to)` answers, identically on every rank, which regions rank `from` sends
 * rank `to` at the k-th barrier of an epoch; `owned(rank)` is the state only that rank writes, which the
 * coordinator gathers after every epoch (to evaluate, report and checkpoint the whole run).
 *
 *  - gossip (pmsgd, dsgd, dmsgd, decentlam): each round is (1) gradient and message h_i, barrier,
 *    (2) mix Σ_j w_ij h_j and update, barrier. At the first barrier of round t, node j's message goes to
 *    every process hosting a node i that reads it in round t (w_ij ≠ 0; PmSGD's exact average reads all
 *    of them); nodes in one process still read each other in shared memory. Time-varying topologies
 *    change the set each round.
 *  - pipelines: no barriers; a stage's "unit u done" wake crosses with the activations or gradients the
 *    next stage reads (`relay`).
 *  - lap, lpp: one replica group per process; the averaging's two barriers carry the slices.
 *  - sync: each step's gradient blocks are shared out among the processes (each claims within its own
 *    share). At the first barrier every block's slice w goes to the process of worker w, which sums the
 *    blocks in block order and updates slice w (a reduce-scatter whose sum is the in-process chain); at
 *    the second, every updated slice goes to every other process (an all-gather).
 */
import { UserError } from "../errors.ts";
import type { Network } from "../model/network.ts";
import type { RunSetup } from "../runtime/context.ts";
import { placementOf, rankOfProgram } from "../runtime/processes.ts";
import { shardOf } from "../runtime/split.ts";
import type { AlgorithmPlan } from "../algorithms/algorithm.ts";
import type { TrainConfig } from "../algorithms/config.ts";
import { algorithmNamed } from "../algorithms/registry.ts";
import { roundsPerEpoch, type GossipLayout } from "../algorithms/gossip/round.ts";
import { crossingReads, rankOfNodes } from "../algorithms/gossip/across.ts";
import { stepsPerEpoch, type SyncLayout } from "../algorithms/sync-sgd.ts";
import { windowProgram, type PipelineLayout } from "../algorithms/pipeline/pipeline.ts";
import type { LocalAsyncLayout } from "../algorithms/async/hogwild-step.ts";
import { asyncOptionsOf } from "../algorithms/config.ts";
import { alignedSliceOf } from "../runtime/split.ts";

/** `bytes` bytes of the arena at `ptr`. */
export interface Region {
  ptr: number;
  bytes: number;
  /**
   * A word a program bumps (sync.wake) once the region holds what its barrier sends: the main thread
   * may send it then, before the barrier (barriers the plan `streams` only).
   */
  ready?: number;
}

export interface CrossProcessPlan {
  transfers(epoch: number, k: number, from: number, to: number): Region[];
  owned(rank: number): Region[];
  /**
   * A word a program bumped with `sync.wake` that a program of another process waits on: which rank
   * bumped it, which waits, and the regions written before the wake that the waiter reads (null: no
   * other process waits on it).
   */
  relay?(word: number): { from: number; to: number; regions: Region[] } | null;
  /**
   * Barrier k of the epoch streams: its transfers are sent region by region as each is ready (a region
   * with no `ready` word, at the barrier), and the receiver may write them into its arena as soon as
   * barrier k − 1 is released (nobody reads them before barrier k). False past the epoch's last barrier.
   */
  streams?(epoch: number, k: number): boolean;
  /** State beyond the checkpointed vectors that a resumed run sends its followers (pipelines' update counts). */
  resumeRegions?: Region[];
  /**
   * The regions holding every word a program may wake that `relay` or a streamed region's `ready`
   * names: the main thread has programs queue only those of them it acts on (outbox.ts). Absent: every
   * woken word is queued.
   */
  wakeWords?: Region[];
}

/** Gossip rules whose update reads only x_i, m_i and the messages of its edges (PmSGD: all messages). */
const GOSSIP_ACROSS = new Set(["pmsgd", "dsgd", "dmsgd", "decentlam"]);
/** Shared-memory algorithms by definition: their threads read and write one vector without locks. */
const SHARED_MEMORY_ONLY = new Set(["hogwild", "layerwise", "layup"]);

/** Pipelines: stage boundaries between processes carry activations forward and their gradients back. */
const PIPELINES_ACROSS = new Set(["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"]);

/** LAP and LPP: one replica group per process, as the paper runs one per device; averaged across. */
const REPLICAS_ACROSS = new Set(["lap", "lpp"]);

export const SPANS_PROCESSES = ["sync", ...GOSSIP_ACROSS, ...PIPELINES_ACROSS, ...REPLICAS_ACROSS];

/**
 * Refuse a run that cannot span `procs` processes, with the reason (UserError: exit 2). `resuming`: the
 * run's sizes come from its checkpoint and cannot change, so the advice is to change --procs instead.
 */
export function checkAcrossProcesses(config: TrainConfig, procs: number, resuming = false): void {
  const algo = config.algo;
  if (SHARED_MEMORY_ONLY.has(algo)) {
    throw new UserError(`--procs ${procs}: ${algo} is a shared-memory algorithm (its threads update one weight vector without locks), so it runs inside one process; use lap for replicas that average across processes`);
  }
  if (!SPANS_PROCESSES.includes(algo)) {
    throw new UserError(`--procs ${procs}: ${algo} does not run across processes yet (these do: ${SPANS_PROCESSES.join(", ")})`);
  }
  if (config.executor !== "threads") throw new UserError(`--procs ${procs}: runs across processes use --executor threads, not ${config.executor}`);
  if (REPLICAS_ACROSS.has(algo) && asyncOptionsOf(config).replicas !== procs) {
    const replicas = asyncOptionsOf(config).replicas;
    const advice = resuming ? `this run has ${replicas} replica groups; resume it with --procs ${replicas}` : `give --replicas ${procs}`;
    throw new UserError(`--procs ${procs}: ${algo} runs one replica group per process; ${advice}`);
  }
  const algorithm = algorithmNamed(algo);
  const programs = algorithm.programs(config);
  if (programs < procs) {
    // A pipeline has one program per stage; every other family one per worker.
    const [flag, unit] = algorithm.family === "pipeline" ? ["--stages", "stage"] : ["--workers", "worker"];
    const advice = resuming ? `resume it with --procs ${programs} or fewer` : `give ${flag} ${procs} or more`;
    throw new UserError(`--procs ${procs} with ${programs} ${unit}${programs === 1 ? "" : "s"}: every process needs a ${unit}; ${advice}`);
  }
}

export function crossProcessPlan(config: TrainConfig, setup: RunSetup, plan: AlgorithmPlan, net: Network, procs: number): CrossProcessPlan {
  if (config.algo === "sync") return syncPlan(setup as RunSetup<SyncLayout>, net, procs);
  if (GOSSIP_ACROSS.has(config.algo)) return gossipPlan(config, setup as RunSetup<GossipLayout>, net, procs);
  if (PIPELINES_ACROSS.has(config.algo)) return pipelinePlan(setup as RunSetup<PipelineLayout>, net, procs);
  if (REPLICAS_ACROSS.has(config.algo)) return replicaPlan(setup as RunSetup<LocalAsyncLayout>, net, procs);
  throw new UserError(`--procs ${procs}: ${config.algo} does not run across processes yet`);
}

function gossipPlan(config: TrainConfig, setup: RunSetup<GossipLayout>, net: Network, procs: number): CrossProcessPlan {
  const layout = setup.layout;
  const n = layout.nodes;
  const bytes = net.paramFloats * 4;
  const rankOfNode = rankOfNodes(n, setup.programs, procs);
  const readsAll = config.algo === "pmsgd";
  const rounds = roundsPerEpoch(setup.data.trainCount, n, setup.batch);
  const period = layout.mixing.rounds.length;
  // Per round of the period, per (from, to): the nodes of `from` whose messages `to` reads, ascending.
  const cache = new Map<number, Region[][][]>();
  const needs = (p: number): Region[][][] => {
    let byPair = cache.get(p);
    if (byPair) return byPair;
    // Each message may leave once its node has written it (the round bumps `written` for these nodes).
    const nodes = crossingReads(layout.mixing, rankOfNode, procs, p, readsAll);
    byPair = nodes.map((row) => row.map((js) => js.map((j) => ({ ptr: layout.messages[j]!, bytes, ready: layout.written + 4 * j }))));
    cache.set(p, byPair);
    return byPair;
  };
  return {
    transfers(epoch, k, from, to) {
      if (k % 2 === 1) return []; // after mixing: nothing crosses (x_i and m_i stay with their node)
      const round = epoch * rounds + Math.floor(k / 2);
      return needs(round % period)[from]![to]!;
    },
    wakeWords: [{ ptr: layout.written, bytes: 4 * n }],
    // Phase 1's messages (even barriers) stream; the remote messages a process holds are read only in
    // phase 2, after the barrier, and were last read before the previous one.
    streams: (_epoch, k) => k % 2 === 0 && k < 2 * rounds,
    owned(rank) {
      const out: Region[] = [];
      for (let i = 0; i < n; i++) {
        if (rankOfNode[i] !== rank) continue;
        out.push({ ptr: layout.params[i]!, bytes }, { ptr: layout.momentum[i]!, bytes });
        for (const vectors of Object.values(layout.state)) out.push({ ptr: vectors[i]!, bytes });
        out.push({ ptr: layout.scalars + 4 * i, bytes: 4 });
      }
      return out;
    },
  };
}

function syncPlan(setup: RunSetup<SyncLayout>, net: Network, procs: number): CrossProcessPlan {
  const { blockGrads, slices, blockRows } = setup.layout;
  const { trainCount } = setup.data;
  const steps = stepsPerEpoch(trainCount, setup.batch);
  const workersOf = (rank: number) => {
    const p = placementOf(setup.programs, procs, rank);
    return Array.from({ length: p.count }, (_, d) => p.first + d);
  };
  const slice = (base: number, w: number): Region[] => {
    const { lo, hi } = slices[w]!;
    return hi > lo ? [{ ptr: base + lo * 4, bytes: (hi - lo) * 4 }] : [];
  };
  return {
    transfers(_epoch, k, from, to) {
      if (k % 2 === 1) return workersOf(from).flatMap((w) => slice(setup.params, w)); // all-gather of the updated slices
      const step = Math.floor(k / 2) % steps;
      const batchRows = Math.min(setup.batch, trainCount - step * setup.batch);
      const blocks = Math.ceil(batchRows / blockRows);
      const mine = shardOf(blocks, procs, from);
      const out: Region[] = [];
      for (let b = mine.lo; b < mine.hi; b++) for (const w of workersOf(to)) out.push(...slice(blockGrads[b]!, w));
      return out;
    },
    owned(rank) {
      return workersOf(rank).flatMap((w) => [setup.params, ...setup.optimizerState].flatMap((v) => slice(v, w)));
    },
  };
}

/**
 * Pipelines: stage s hands unit u to stage s + 1 by bumping forwardDone(s, u), and back by bumping
 * gradientDone(s + 1, u). Where the two stages sit in different processes, the bump travels with what
 * the waiter reads: forward, the output of stage s's last layer in the unit's activation slot, the
 * labels (and, for language models, the input the labels come from) and the slot's owner word (checked
 * by every action); backward, the gradient with respect to stage s + 1's input. A stage that gives up
 * an activation slot bumps its release count, which travels to stage 0's process (which reuses the
 * slot only once every stage has given it up). Each stage's weights, optimizer state and update count
 * stay with it.
 */
function pipelinePlan(setup: RunSetup<PipelineLayout>, net: Network, procs: number): CrossProcessPlan {
  const layout = setup.layout;
  const D = layout.stages.length;
  const { windows, perWindow, unitsPerBatch } = layout.shape;
  const units = windows * perWindow;
  const rankOf = (s: number) => rankOfProgram(setup.programs, procs, s);
  const program = windowProgram(layout.algorithm, layout.options, layout.shape, setup.batch);
  const slotOf = program.steps.map((steps) => {
    const m = new Map<number, number>();
    for (const step of steps) if (step.kind === "F") m.set(step.microbatch, step.slot);
    return m;
  });
  const rowsOf = (u: number) => {
    const { lo, hi } = shardOf(setup.batch, unitsPerBatch, u % unitsPerBatch);
    return hi - lo;
  };
  const floatsOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  const nonEmpty = (regions: Region[]) => regions.filter((r) => r.ptr !== 0 && r.bytes > 0);
  // A stage's parameters chunk by chunk: with virtual stages its [lo, hi) spans other stages' chunks.
  const stageState = (s: number): Region[] => {
    const { chunks, prediction, grads } = layout.stages[s]!;
    const ranges = chunks.map(({ first, last }) => {
      const lo = net.params[first]!.offset;
      return { lo, hi: net.params[last]!.offset + net.params[last]!.floats };
    });
    const range = (base: number) => ranges.map(({ lo, hi }) => ({ ptr: base + lo * 4, bytes: (hi - lo) * 4 }));
    return [...range(layout.params), ...layout.state.flatMap(range), ...(prediction !== 0 ? range(grads) : []), { ptr: layout.updates + 4 * s, bytes: 4 }];
  };
  return {
    transfers: () => [],
    owned: (rank) => layout.stages.flatMap((_, s) => (rankOf(s) === rank ? stageState(s) : [])),
    resumeRegions: [{ ptr: layout.updates, bytes: 4 * D }], // a resumed run's followers continue the update counts
    wakeWords: [
      { ptr: layout.forwardDone, bytes: D * layout.stages[0]!.chunks.length * units * 4 },
      { ptr: layout.gradientDone, bytes: D * layout.stages[0]!.chunks.length * units * 4 },
      { ptr: layout.slotReleased, bytes: D * layout.slots.length * 4 },
    ],
    relay(word) {
      // A stage's release of an activation slot: stage 0's process counts it before reusing the slot.
      const slots = layout.slots.length;
      if (word >= layout.slotReleased && word < layout.slotReleased + D * slots * 4) {
        const s = Math.floor((word - layout.slotReleased) / 4 / slots);
        return rankOf(s) === rankOf(0) ? null : { from: rankOf(s), to: rankOf(0), regions: [] };
      }
      // Hand-offs are numbered by virtual stage (= stage unless workers hold several chunks of layers:
      // virtual stage c·D + s is chunk c of stage s).
      const S = D * layout.stages[0]!.chunks.length;
      const forward = word >= layout.forwardDone && word < layout.forwardDone + S * units * 4;
      const backward = word >= layout.gradientDone && word < layout.gradientDone + S * units * 4;
      if (!forward && !backward) return null;
      const index = (word - (forward ? layout.forwardDone : layout.gradientDone)) / 4;
      const vs = Math.floor(index / units);
      const u = index % units;
      const waiter = forward ? vs + 1 : vs - 1;
      const s = vs % D;
      if (waiter < 0 || waiter >= S || rankOf(waiter % D) === rankOf(s)) return null;
      const rows = rowsOf(u);
      const slotIndex = slotOf[s]!.get(u % perWindow)!;
      const ws = layout.slots[slotIndex]!.ws;
      const { first, last } = layout.stages[s]!.chunks[Math.floor(vs / D)]!;
      const regions = forward
        ? [
            { ptr: ws.layers[last]!.y, bytes: rows * floatsOf(net.layers[last]!.outShape) * 4 },
            { ptr: ws.labels, bytes: rows * net.positions * 4 },
            ...(net.positions > 1 ? [{ ptr: ws.input, bytes: rows * net.inputFloats * 4 }] : []),
            { ptr: layout.slotOwner + 4 * slotIndex, bytes: 4 },
          ]
        : [{ ptr: ws.layers[first]!.dx, bytes: rows * floatsOf(net.layers[first]!.inShape) * 4 }];
      return { from: rankOf(s), to: rankOf(waiter % D), regions: nonEmpty(regions) };
    },
  };
}

/**
 * LAP/LPP with one replica per process (its Hogwild! group is the process's workers). Averaging is
 * barrier, each worker w averages slice w of every replica (the mean into replica 0, copies into the
 * others), barrier. Before it, worker w's process receives slice w of every other replica; after it,
 * every process receives its own replica's slices that the other processes' workers wrote.
 */
function replicaPlan(setup: RunSetup<LocalAsyncLayout>, net: Network, procs: number): CrossProcessPlan {
  const { replicas } = setup.layout;
  const layers = net.layers.length;
  const workersOf = (rank: number) => {
    const p = placementOf(setup.programs, procs, rank);
    return Array.from({ length: p.count }, (_, d) => p.first + d);
  };
  const slice = (base: number, w: number): Region[] => {
    const { lo, hi } = alignedSliceOf(net.paramFloats, setup.programs, w);
    return hi > lo ? [{ ptr: base + lo * 4, bytes: (hi - lo) * 4 }] : [];
  };
  const whole = (ptr: number) => ({ ptr, bytes: net.paramFloats * 4 });
  return {
    transfers(_epoch, k, from, to) {
      if (k % 2 === 0) return workersOf(to).flatMap((w) => slice(replicas.params[from]!, w)); // before averaging
      return workersOf(from).flatMap((w) => slice(replicas.params[to]!, w)); // after it
    },
    owned: (rank) => [whole(replicas.params[rank]!), ...replicas.state[rank]!.map(whole), { ptr: replicas.versions[rank]!, bytes: layers * 4 }],
    resumeRegions: replicas.versions.map((ptr) => ({ ptr, bytes: layers * 4 })),
  };
}

export const totalBytes = (regions: readonly Region[]): number => regions.reduce((a, r) => a + r.bytes, 0);

/** Views onto the regions of the arena, in order (a message's parts: sent without gathering them first). */
export function regionViews(memory: WebAssembly.Memory, regions: readonly Region[]): Uint8Array[] {
  return regions.map((r) => new Uint8Array(memory.buffer, r.ptr, r.bytes));
}

/** Write `body` (the regions' bytes back to back, length already checked) into the regions. */
export function scatterRegions(memory: WebAssembly.Memory, regions: readonly Region[], body: Uint8Array): void {
  let at = 0;
  for (const r of regions) {
    new Uint8Array(memory.buffer, r.ptr, r.bytes).set(body.subarray(at, at + r.bytes));
    at += r.bytes;
  }
}
