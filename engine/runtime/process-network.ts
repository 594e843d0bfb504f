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
 *
 * Where the network model says what the transport costs in CPU (transport-cpu.ts) and the machine has
 * no core to spare for it, a crossing message also costs its bytes' CPU: the sending program pays the
 * sending process's share and half the relay's, one reading program of each receiving process pays
 * the receiving share and the other half. The copies take turns with the computation, so that is
 * time those programs do not compute. With spare cores (at least one per process's main thread and one
 * for the relay, beyond the programs) nothing is charged; in between, the part the spare cores cannot
 * take.
 */
import { UserError } from "../errors.ts";
import { trafficSeconds, type NetworkModel } from "./costs.ts";
import { rankOfProgram } from "./processes.ts";
import type { TransportCpu } from "./transport-cpu.ts";

/** What a simulated run is told of its placement (the `simulation` section of a configuration). */
export interface SimulatedPlacement {
  /** Processes the programs are placed on, in contiguous shares (default: every program its own host). */
  procs?: number;
}

export class ProcessNetwork {
  private readonly ranks: number[];

  constructor(
    private readonly programs: number,
    readonly procs: number,
    /** Cores of the machine all processes share (Infinity: a core for every thread, as on an ideal machine). */
    private readonly cores = Infinity,
  ) {
    if (!Number.isInteger(procs) || procs < 1 || procs > programs) {
      throw new UserError(`--network-procs ${procs} (simulation.procs) with ${programs} program${programs === 1 ? "" : "s"}: give 1 to ${programs} processes (each needs a program)`);
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

  /**
   * Share of the transport's CPU work that takes turns with the programs: 0 when the machine has a spare
   * core for each process's main thread and for the relay, 1 when it has none beyond the programs.
   */
  contention(cpu: TransportCpu): number {
    const threads = this.procs + (cpu.relaySecondsPerByte > 0 ? 1 : 0);
    const spare = this.cores - this.programs;
    return Math.min(1, Math.max(0, 1 - spare / threads));
  }

  /**
   * Program `me` sends `bytes` as `messages` messages read by the programs `to`: advance `clocks` by what
   * that costs — the sender the network time (sendSeconds) and its CPU share, one reader in each other
   * process its CPU share (see the top of this file).
   */
  charge(clocks: Float64Array, network: NetworkModel, me: number, bytes: number, messages: number, to?: readonly number[]): void {
    clocks[me]! += this.sendSeconds(network, me, bytes, messages, to);
    const cpu = network.cpuSecondsPerByte;
    if (!cpu || !to || bytes <= 0) return;
    const f = this.contention(cpu);
    if (f === 0) return;
    const perMessage = bytes / Math.max(1, messages);
    const mine = this.ranks[me];
    const readers = new Map<number, number>(); // receiving process → the reader that pays
    for (const p of to) if (this.ranks[p] !== mine && !readers.has(this.ranks[p]!)) readers.set(this.ranks[p]!, p);
    for (const reader of readers.values()) {
      clocks[me]! += f * perMessage * (cpu.sendSecondsPerByte + cpu.relaySecondsPerByte / 2);
      clocks[reader]! += f * perMessage * (cpu.receiveSecondsPerByte + cpu.relaySecondsPerByte / 2);
    }
  }
}
