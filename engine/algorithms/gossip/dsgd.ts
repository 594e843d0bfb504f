/**
 * D-PSGD, adapt-then-combine (Lian et al., NeurIPS 2017): per round, on every node i,
 *
 *   x_i ← Σ_j w_ij (x_j − γ g_j)
 *
 * With deterministic heterogeneous gradients its fixed point is biased by the data's heterogeneity
 * (the distance grows with γ and with 1/(1 − ρ)).
 */
import { combine, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  message: (v, i, g, gamma) => combine(v, i, v.layout.messages[i]!, [[v.layout.params[i]!, 1], [g, -gamma]]), // h_i = x_i − γ g_i
  update: (v, i, edges) => mixInto(v, i, v.layout.params[i]!, edges), // x_i ← Σ_j w_ij h_j
};

export const dsgd = gossipAlgorithm({
  name: "dsgd",
  about: "D-PSGD: gossip averaging of x − γg with the neighbours (adapt-then-combine)",
  paper: "Lian, Zhang, Zhang, Hsieh, Zhang, Liu: decentralized parallel SGD (NeurIPS 2017)",
  rule,
});
