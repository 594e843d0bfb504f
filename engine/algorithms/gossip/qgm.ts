/**
 * QG-DSGDm, quasi-global momentum (Lin, Karimireddy, Stich, Jaggi, ICML 2021): the momentum buffer
 * follows the model's actual displacement after gossip rather than the local gradient, so on
 * heterogeneous data it approximates the global momentum.
 *
 *   x½_i = x_i − γ (g_i + β m̂_i)
 *   x_i⁺ = Σ_j w_ij x½_j
 *   d_i  = (x_i − x_i⁺) / γ
 *   m̂_i ← β m̂_i + (1 − β) d_i
 */
import { combine, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  // x½ = x − γ(g + βm̂)
  message: (v, i, g, gamma, beta) => combine(v, i, v.layout.messages[i]!, [[v.layout.params[i]!, 1], [g, -gamma], [v.layout.momentum[i]!, -gamma * beta]]),
  update(v, i, edges, scratch, gamma, beta) {
    const x = v.layout.params[i]!;
    const m = v.layout.momentum[i]!;
    mixInto(v, i, scratch, edges); // x⁺
    const c = (1 - beta) / gamma;
    combine(v, i, m, [[m, beta], [x, c], [scratch, -c]]); // m̂ ← βm̂ + (1 − β)(x − x⁺)/γ
    v.k.copy(x, scratch, v.floats);
  },
};

export const qgm = gossipAlgorithm({
  name: "qgm",
  about: "QG-DSGDm: gossip with quasi-global momentum built from the model's displacement",
  paper: "Lin, Karimireddy, Stich, Jaggi: quasi-global momentum (ICML 2021)",
  rule,
});
