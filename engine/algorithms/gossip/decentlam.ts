/**
 * DecentLaM, decentralized large-batch momentum SGD (Yuan, Chen, Chen, Zhang, Pan, Yin, ICCV 2021):
 * per round, on every node i,
 *
 *   x½_i = x_i − γ g_i
 *   z_i = Σ_j w_ij x½_j
 *   g̃_i = (x_i − z_i)/γ               (the gradient the gossip step implies)
 *   m_i ← β m_i + g̃_i;   x_i ← x_i − γ m_i
 *
 * Matrix form x⁺ = W(x − γg) + β(x − x⁻); with β = 0 it is D-PSGD. Its fixed point is D-SGD's with
 * step γ, not γ/(1 − β) as for DmSGD, so large batches (large γ, little noise) keep a small bias.
 *
 * Stability: the consensus part is heavy-ball gossip, z² − (λ + β)z + β = 0 per eigenvalue λ of W,
 * stable for the real eigenvalues of a symmetric W. On directed graphs (the static exponential graph,
 * the one-peer dynamic graph) it diverges at β = 0.9 where DmSGD is stable, so such runs are refused
 * unless forced.
 */
import { UserError } from "../../errors.ts";
import { gossipOptionsOf } from "../config.ts";
import { combine, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";
import { buildTopology } from "./topology.ts";

const rule: GossipRule = {
  // h_i = x½_i = x_i − γ g_i
  message: (v, i, g, gamma) => combine(v, i, v.layout.messages[i]!, [[v.layout.params[i]!, 1], [g, -gamma]]),
  update(v, i, edges, scratch, gamma, beta) {
    const x = v.layout.params[i]!;
    // g̃_i = (x_i − z_i)/γ with z_i = Σ_j w_ij h_j, in one pass: −(1/γ)·Σ_j w_ij h_j + (1/γ)·x_i.
    mixInto(v, i, scratch, edges, v.layout.messages, -1 / gamma, [[x, 1 / gamma]]);
    v.k.momentum_update(x, scratch, v.layout.momentum[i]!, v.floats, gamma, beta, 0, 0, 0); // m ← βm + g̃; x ← x − γm
  },
};

export const decentlam = gossipAlgorithm({
  name: "decentlam",
  about: "DecentLaM: momentum on the gossip-implied gradient, free of DmSGD's large-batch bias",
  paper: "Yuan, Chen, Chen, Zhang, Pan, Yin: DecentLaM (ICCV 2021)",
  rule,
  flags: ["force"],
  check(config) {
    const g = gossipOptionsOf(config);
    const beta = config.optimizer.kind === "sgd" ? 0 : config.optimizer.momentum;
    if (beta > 0 && !g.force && !buildTopology(g.topology, g.nodes, { seed: config.seed }).symmetric) {
      throw new UserError(`--algo decentlam with momentum ${beta} is unstable on the non-symmetric ${g.topology} topology; use a symmetric one, --momentum 0, or --force`);
    }
  },
});
