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

export async function flopSummary(net: Network, samplesPerSec: number, programs: number, measuredCeiling = 0): Promise<FlopSummary> {
  const perSample = trainingFlopsPerSample(net);
  const ceiling = measuredCeiling > 0 ? { gflopsPerCore: measuredCeiling } : await multiplyAddCeiling();
  const cores = Math.min(programs, availableParallelism());
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
