/**
 * Gradient tracking, DIGing (Nedić, Olshevsky, Shi, SIAM J. Optim. 2017; GT-DSGD with stochastic
 * gradients, Pu & Nedić 2021): every node tracks the network's mean gradient in y_i and steps along it.
 *
 *   x_i ← Σ_j w_ij x_j − α y_i
 *   y_i ← Σ_j w_ij y_j + ∇f_i(x_i⁺) − ∇f_i(x_i),        y_i⁰ = ∇f_i(x_i⁰)
 *
 * Invariant: mean_i(y_i) = mean_i(latest local gradient), so with deterministic gradients the fixed
 * point is the exact minimiser of Σ f_i, free of D-SGD's heterogeneity bias. Plain steps (no momentum).
 *
 * In the round: phase 1 takes g_i = ∇f_i(x_i) and forms y_i = ŷ_i + g_i − g_i⁻ (ŷ_i: last round's
 * Σ_j w_ij y_j, 0 at the start, as is g_i⁻, so y⁰ = g⁰); phase 2 mixes x and y with the same weights.
 */
import { UserError } from "../../errors.ts";
import { combine, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  // ŷ_i (the mixed y), y_i (this round's y, what neighbours mix), g_i⁻ (the previous gradient).
  state: ["mixedY", "y", "previousGradient"],
  message(v, i, g) {
    const { k, floats, layout } = v;
    const y = layout.state.y![i]!;
    const previous = layout.state.previousGradient![i]!;
    combine(v, i, y, [[layout.state.mixedY![i]!, 1], [g, 1], [previous, -1]]); // y_i = ŷ_i + g_i − g_i⁻
    k.copy(previous, g, floats);
    k.copy(layout.messages[i]!, layout.params[i]!, floats); // h_i = x_i
  },
  update(v, i, edges, _scratch, gamma) {
    const { layout } = v;
    mixInto(v, i, layout.params[i]!, edges, layout.messages, 1, [[layout.state.y![i]!, -gamma]]); // x_i = Σ_j w_ij x_j − α y_i
    mixInto(v, i, layout.state.mixedY![i]!, edges, layout.state.y!); // ŷ_i = Σ_j w_ij y_j
  },
  // x and y both cross every edge.
  bytesPerNodeStep: (layout, modelBytes) => 2 * neighbourModels(layout) * modelBytes,
};

/** Model-sized messages a node sends per round: one per out-neighbour, averaged over nodes and the period. */
export function neighbourModels(layout: { nodes: number; mixing: { rounds: { from: number[] }[][] } }): number {
  let edges = 0;
  for (const round of layout.mixing.rounds) round.forEach((r, i) => (edges += r.from.filter((j) => j !== i).length));
  return edges / (layout.mixing.rounds.length * layout.nodes);
}

export const gt = gossipAlgorithm({
  name: "gt",
  about: "gradient tracking (DIGing): gossip of x and of a running estimate of the mean gradient",
  paper: "Nedić, Olshevsky, Shi: DIGing (SIAM J. Optim. 2017); Pu, Nedić: GT-DSGD (Math. Prog. 2021)",
  rule,
  check: (config) => plainSteps("gt", config.optimizer),
});

/** Gradient tracking and exact diffusion as published take plain steps. */
export function plainSteps(name: string, optimizer: { kind: string }): void {
  if (optimizer.kind !== "sgd") throw new UserError(`--optimizer ${optimizer.kind}: ${name} takes plain gradient steps; use --optimizer sgd`);
}
