/**
 * A run that spans processes: every process plans the same arena (same configuration, same pointers)
 * and hosts a contiguous share of the role programs. Inside a process nothing changes; what one
 * process writes and another reads is copied between them at barriers (engine/distributed/).
 */
import type { RunSetup } from "./context.ts";
import { shardOf } from "./split.ts";

/** Where this process sits: its rank among `procs` processes and the programs first … first + count − 1 it hosts. */
export interface ProcessPlacement {
  rank: number;
  procs: number;
  first: number;
  count: number;
}

export function placementOf(programs: number, procs: number, rank: number): ProcessPlacement {
  const { lo, hi } = shardOf(programs, procs, rank);
  return { rank, procs, first: lo, count: hi - lo };
}

/** The rank of the process hosting program `w`. */
export function rankOfProgram(programs: number, procs: number, w: number): number {
  for (let r = 0; r < procs; r++) if (w < shardOf(programs, procs, r).hi) return r;
  throw new Error(`program ${w} is beyond the ${programs} of the run`);
}

/**
 * This process's share [lo, hi) of `items` units of work fixed by the configuration (sync's gradient
 * blocks): all of them in a one-process run.
 */
export function processShare(setup: Pick<RunSetup, "processes">, items: number): { lo: number; hi: number } {
  const p = setup.processes;
  return p ? shardOf(items, p.procs, p.rank) : { lo: 0, hi: items };
}

/** The lowest-numbered program of this process (it does the per-process chores program 0 does alone in one process). */
export const firstLocalProgram = (setup: Pick<RunSetup, "processes">): number => setup.processes?.first ?? 0;
