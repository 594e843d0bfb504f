/**
 * `skein train` without --json: the lines after the result that say how the run used the machine. The
 * FLOP accounting always (how close to the multiply-add ceiling the training ran), and with --profile
 * the profile, so what was measured reaches the user without a run folder or a JSON summary to read.
 */
import type { FlopSummary, Summary } from "../run-metrics.ts";

/** "compute: 1.01 MFLOP per training sample, 54.8 GFLOP/s on 2 cores: 48% of their multiply-add ceiling (56.7 GFLOP/s per core)" */
export function flopLine(flops: FlopSummary): string {
  const cores = flops.cores === 1 ? "1 core: " : `${flops.cores} cores: `;
  const of = flops.cores === 1 ? "its" : "their";
  return (
    `compute: ${perSample(flops.trainingPerSample)} per training sample, ${flops.gflopsPerSec.toFixed(1)} GFLOP/s on ${cores}` +
    `${(flops.ofCeiling * 100).toFixed(0)}% of ${of} multiply-add ceiling (${flops.ceilingGflopsPerCore.toFixed(1)} GFLOP/s per core)`
  );
}

/** Three significant digits in MFLOP, or in GFLOP from 1000 MFLOP on (toPrecision would switch to exponents there). */
const perSample = (flops: number) => (flops >= 1e9 ? `${(flops / 1e9).toPrecision(3)} GFLOP` : `${(flops / 1e6).toPrecision(3)} MFLOP`);

/** "profile: 9.9% of busy time outside kernels; kernel time: gemm_nn 42.3%, gemm_tn 38.7%, …", or null without a profile. */
export function profileLine(summary: Pick<Summary, "controlOverhead" | "kernelShares">, shown = 5): string | null {
  if (summary.controlOverhead === undefined) return null;
  const shares = Object.entries(summary.kernelShares ?? {}).sort((a, b) => b[1] - a[1]);
  const kernels = shares.slice(0, shown).map(([name, share]) => `${name} ${(share * 100).toFixed(1)}%`);
  if (shares.length > shown) kernels.push(`${shares.length - shown} more`);
  return `profile: ${(summary.controlOverhead * 100).toFixed(1)}% of busy time outside kernels; kernel time: ${kernels.join(", ") || "none"}`;
}
