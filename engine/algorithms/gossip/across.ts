/**
 * Gossip across processes: which nodes live in which process, whose messages another process reads
 * in a round, and the order a worker computes its nodes in so that those messages leave first.
 *
 * Nodes are dealt to workers in contiguous blocks and workers to processes in contiguous blocks (the
 * launcher's split), so a ring over two processes has two crossing edges each way. A worker that
 * computes its crossing nodes first lets the main thread send their messages while it computes the
 * others (and the other process receive them meanwhile): the exchange at the barrier is left with
 * nothing, or little, to move. Each node's phase-1 step reads and writes only its own vectors and the
 * worker's scratch, so the order changes no number; the loss is summed in node order all the same.
 */
import type { RunSetup } from "../../runtime/context.ts";
import { rankOfProgram } from "../../runtime/processes.ts";
import { shardOf } from "../../runtime/split.ts";
import type { MixingSchedule } from "./round.ts";

/**
 * Per round of the period, per node of [lo, hi): the programs hosting the nodes that read its message
 * (itself excluded), one per reader. A simulated run placed on processes charges only the readers in
 * another process (the network declared with sync.send).
 */
export function readerPrograms(mixing: MixingSchedule, programs: number, lo: number, hi: number): number[][][] {
  const n = mixing.nodes;
  const programOf = new Array<number>(n).fill(0);
  for (let w = 0; w < programs; w++) {
    const share = shardOf(n, programs, w);
    for (let i = share.lo; i < share.hi; i++) programOf[i] = w;
  }
  return mixing.rounds.map((round) => {
    const readers = Array.from({ length: hi - lo }, () => [] as number[]);
    round.forEach((edges, j) => {
      for (const i of edges.from) if (i !== j && i >= lo && i < hi) readers[i - lo]!.push(programOf[j]!);
    });
    return readers;
  });
}

/** Per node, the rank of the process that hosts it. */
export function rankOfNodes(nodes: number, programs: number, procs: number): number[] {
  const ranks = new Array<number>(nodes).fill(0);
  for (let w = 0; w < programs; w++) {
    const { lo, hi } = shardOf(nodes, programs, w);
    for (let i = lo; i < hi; i++) ranks[i] = rankOfProgram(programs, procs, w);
  }
  return ranks;
}

/**
 * Per (from rank, to rank): the nodes of `from` whose messages `to` reads in round `p` of the period,
 * ascending (`readsAll`: every node reads every message, PmSGD's all-reduce).
 */
export function crossingReads(mixing: MixingSchedule, ranks: readonly number[], procs: number, p: number, readsAll: boolean): number[][][] {
  const n = mixing.nodes;
  const sets = Array.from({ length: procs }, () => Array.from({ length: procs }, () => new Set<number>()));
  for (let i = 0; i < n; i++) {
    const reads = readsAll ? Array.from({ length: n }, (_, j) => j) : mixing.rounds[p]![i]!.from;
    for (const j of reads) if (ranks[j] !== ranks[i]) sets[ranks[j]!]![ranks[i]!]!.add(j);
  }
  return sets.map((row) => row.map((set) => [...set].sort((a, b) => a - b)));
}

/** Phase 1's node order per round of the period for one worker: messages another process reads first. */
export class PhaseOneOrder {
  private readonly orders: number[][];
  /** Per round of the period, per node: another process reads its message. */
  readonly crosses: boolean[][];

  constructor(setup: Pick<RunSetup, "processes" | "programs">, mixing: MixingSchedule, lo: number, hi: number, readsAll: boolean) {
    const mine = Array.from({ length: hi - lo }, (_, d) => lo + d);
    const procs = setup.processes?.procs ?? 1;
    const ranks = rankOfNodes(mixing.nodes, setup.programs, procs);
    this.crosses = mixing.rounds.map((_, p) => {
      const crossing = new Array<boolean>(mixing.nodes).fill(false);
      if (procs > 1) for (const row of crossingReads(mixing, ranks, procs, p, readsAll)) for (const nodes of row) for (const j of nodes) crossing[j] = true;
      return crossing;
    });
    this.orders = this.crosses.map((crossing) => [...mine.filter((i) => crossing[i]), ...mine.filter((i) => !crossing[i])]);
  }

  /** The nodes in the order to compute them in round `p` of the period. */
  of(p: number): readonly number[] {
    return this.orders[p]!;
  }
}
