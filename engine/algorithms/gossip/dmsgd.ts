/**
 * DmSGD, decentralized momentum SGD, adapt-then-combine: per round, on every node i,
 *
 *   m_i ← β m_i + g_i
 *   x_i ← Σ_j w_ij (x_j − γ m_j)
 *
 * With deterministic heterogeneous gradients its fixed point is D-SGD's with step γ/(1 − β), so its
 * bias grows like γ²b²/((1 − β)²(1 − ρ)²): the inconsistency DecentLaM removes (Yuan et al. 2021).
 */
import { gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  message(v, i, g, gamma, beta) {
    const h = v.layout.messages[i]!;
    v.k.copy(h, v.layout.params[i]!, v.floats);
    v.k.momentum_update(h, g, v.layout.momentum[i]!, v.floats, gamma, beta, 0, 0, 0); // m_i ← βm_i + g_i; h_i = x_i − γ m_i
  },
  update: (v, i, edges) => mixInto(v, i, v.layout.params[i]!, edges), // x_i ← Σ_j w_ij h_j
};

export const dmsgd = gossipAlgorithm({
  name: "dmsgd",
  about: "decentralized momentum SGD: local momentum, gossip averaging of x − γm",
  paper: "decentralized momentum SGD as analysed in Yuan et al., DecentLaM (ICCV 2021)",
  rule,
});
