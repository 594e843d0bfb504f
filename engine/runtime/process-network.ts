/**
 * The network of a simulated run placed on processes. Without a placement the simulator's network
 * model treats every program as a host of its own, so every message a program declares crosses the
 * network (a cluster of one node per machine). A run across P processes places its programs on them in
 * contiguous shares (the split the launcher uses), and only what one process reads of another's goes
 * over the network: a message between two programs of one process is shared memory, which the kernels
 * that read it already pay for, so it costs nothing here.
 *
 * A message read by several programs of one other process crosses once (a process receives a region
 * once, whoever reads it there), as the exchanges between processes do.
 */
import { UserError } from "../errors.ts";
import { trafficSeconds, type NetworkModel } from "./costs.ts";
import { rankOfProgram } from "./processes.ts";

/** What a simulated run is told of its placement (the `simulation` section of a configuration). */
export interface SimulatedPlacement {
  /** Processes the programs are placed on, in contiguous shares (default: every program its own host). */
  procs?: number;
}

export class ProcessNetwork {
  private readonly ranks: number[];

  constructor(
    programs: number,
    readonly procs: number,
  ) {
    if (!Number.isInteger(procs) || procs < 1 || procs > programs) {
      throw new UserError(`simulation.procs ${procs} with ${programs} program${programs === 1 ? "" : "s"}: give 1 to ${programs} processes (each needs a program)`);
    }
    this.ranks = Array.from({ length: programs }, (_, w) => rankOfProgram(programs, procs, w));
  }

  rankOf(program: number): number {
    return this.ranks[program]!;
  }

  /**
   * Seconds program `me` spends sending `bytes` as `messages` messages read by the programs `to` (one
   * per message): only the messages to other processes, one per process. Without `to` (a call site
   * that does not say who reads), every message is charged, as without a placement.
   */
  sendSeconds(network: NetworkModel, me: number, bytes: number, messages: number, to?: readonly number[]): number {
    if (!to) return trafficSeconds(network, bytes, messages);
    const mine = this.ranks[me];
    const others = new Set<number>();
    for (const p of to) if (this.ranks[p] !== mine) others.add(this.ranks[p]!);
    if (others.size === 0) return 0;
    return trafficSeconds(network, (bytes / Math.max(1, messages)) * others.size, others.size);
  }
}
