/**
 * `skein train --profile` without --json: the profile as one line after the result, so what the flag
 * measured reaches the user without a run folder or a JSON summary to read it from.
 */
import type { Summary } from "../run-metrics.ts";

/** "profile: 9.9% of busy time outside kernels; kernel time: gemm_nn 42.3%, gemm_tn 38.7%, …", or null without a profile. */
export function profileLine(summary: Pick<Summary, "controlOverhead" | "kernelShares">, shown = 5): string | null {
  if (summary.controlOverhead === undefined) return null;
  const shares = Object.entries(summary.kernelShares ?? {}).sort((a, b) => b[1] - a[1]);
  const kernels = shares.slice(0, shown).map(([name, share]) => `${name} ${(share * 100).toFixed(1)}%`);
  if (shares.length > shown) kernels.push(`${shares.length - shown} more`);
  return `profile: ${(summary.controlOverhead * 100).toFixed(1)}% of busy time outside kernels; kernel time: ${kernels.join(", ") || "none"}`;
}
