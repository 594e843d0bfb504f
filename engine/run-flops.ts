/**
 * The summary's FLOP accounting: training FLOPs per sample from the layers' shapes, the GFLOP/s a run
 * achieved, and that as a fraction of the multiply-add ceiling of the cores it used: the ceiling the
 * run measured between its epochs (CeilingProbe) where it has one, else the one cached per machine.
 */
import { availableParallelism } from "node:os";
import { multiplyAddCeiling } from "./kernels/ceiling.ts";
import { trainingFlopsPerSample } from "./model/flops.ts";
import type { Network } from "./model/network.ts";
import type { FlopSummary } from "./run-metrics.ts";
import type { SimulationSummary } from "./runtime/costs.ts";

/**
 * Cores a run's samples per second were computed on: the deterministic executor runs every program in
 * one thread; a simulated run's seconds are its simulated machine's (the cost table's cores, or one
 * per program on the ideal machine), not this host's; threads use min(programs, this host's cores).
 */
export function flopCores(executor: string, programs: number, simulation: SimulationSummary | null): number {
  if (executor === "deterministic") return 1;
  if (simulation) return simulation.machine === "ideal" ? programs : Math.min(programs, simulation.cores);
  return Math.min(programs, availableParallelism());
}

export async function flopSummary(net: Network, samplesPerSec: number, cores: number, measuredCeiling = 0): Promise<FlopSummary> {
  const perSample = trainingFlopsPerSample(net);
  const ceiling = measuredCeiling > 0 ? { gflopsPerCore: measuredCeiling } : await multiplyAddCeiling();
  const gflopsPerSec = (perSample.total * samplesPerSec) / 1e9;
  return {
    trainingPerSample: perSample.total,
    forwardPerSample: perSample.forward,
    gflopsPerSec,
    ceilingGflopsPerCore: ceiling.gflopsPerCore,
    cores,
    ofCeiling: gflopsPerSec / (ceiling.gflopsPerCore * cores),
  };
}
