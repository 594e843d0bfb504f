/**
 * Exact diffusion (Yuan, Ying, Zhao, Sayed, IEEE TSP 2019; D², Tang, Lian, Yan, Zhang, Liu, ICML 2018):
 * diffusion with a correction that removes the heterogeneity bias.
 *
 *   ψ_i⁺ = x_i − γ ∇f_i(x_i)                 (adapt)
 *   φ_i⁺ = ψ_i⁺ + x_i − ψ_i                   (correct)
 *   x_i⁺ = Σ_j w̄_ij φ_j⁺,   W̄ = (I + W)/2     (combine)
 *
 * with ψ⁰ = x⁰, so the first round is plain diffusion. W̄ = (I + W)/2 has eigenvalues in [0, 1] for
 * any symmetric doubly stochastic W, which the method needs (it diverges when λ_min(W) ≤ −1/3);
 * non-symmetric topologies are refused. With deterministic gradients its fixed point is exact.
 */
import { UserError } from "../../errors.ts";
import { gossipOptionsOf } from "../config.ts";
import { plainSteps } from "./gt.ts";
import { combine, gossipAlgorithm, mixInto, type Edges, type GossipRule } from "./round.ts";
import { buildTopology } from "./topology.ts";


const rule: GossipRule = {
  state: ["psi"],
  prepare(memory, layout, i, floats) {
    new Float32Array(memory.buffer, layout.state.psi![i]!, floats).set(new Float32Array(memory.buffer, layout.params[i]!, floats)); // ψ⁰ = x⁰
  },
  message(v, i, g, gamma) {
    const x = v.layout.params[i]!;
    const psi = v.layout.state.psi![i]!;
    combine(v, i, v.layout.messages[i]!, [[x, 2], [g, -gamma], [psi, -1]]); // φ⁺ = ψ⁺ + x − ψ = 2x − γg − ψ
    combine(v, i, psi, [[x, 1], [g, -gamma]]); // ψ ← ψ⁺ = x − γg
  },
  update: (v, i, edges) => mixInto(v, i, v.layout.params[i]!, halfLazy(edges, i)), // x⁺ = Σ_j w̄_ij φ_j⁺
};

/** Node i's row of W̄ = (I + W)/2. */
function halfLazy(edges: Edges, i: number): Edges {
  const weights = edges.weights.map((w, e) => (edges.from[e] === i ? (1 + w) / 2 : w / 2));
  if (edges.from.includes(i)) return { from: edges.from, weights };
  return { from: [...edges.from, i], weights: [...weights, 0.5] };
}

export const ed = gossipAlgorithm({
  name: "ed",
  about: "exact diffusion (D²): diffusion corrected by x − ψ, mixing with (I + W)/2",
  paper: "Yuan, Ying, Zhao, Sayed: exact diffusion (IEEE TSP 2019); Tang et al.: D² (ICML 2018)",
  rule,
  check(config) {
    plainSteps("ed", config.optimizer);
    const g = gossipOptionsOf(config);
    if (!buildTopology(g.topology, g.nodes, { seed: config.seed }).symmetric) {
      throw new UserError(`--algo ed needs a symmetric topology (exact diffusion diverges on directed graphs); ${g.topology} is not`);
    }
  },
});
