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
import { gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  message(v, i, g, gamma, beta) {
    const { k, floats, layout } = v;
    const h = layout.messages[i]!;
    k.copy(h, layout.params[i]!, floats);
    k.axpy(h, g, floats, -gamma);
    k.axpy(h, layout.momentum[i]!, floats, -gamma * beta); // x½ = x − γ(g + βm̂)
  },
  update(v, i, edges, scratch, gamma, beta) {
    const { k, floats, layout } = v;
    const x = layout.params[i]!;
    const m = layout.momentum[i]!;
    mixInto(v, i, scratch, edges); // x⁺
    k.axpy(x, scratch, floats, -1); // x − x⁺ = γ d
    k.scale(m, floats, beta);
    k.axpy(m, x, floats, (1 - beta) / gamma); // m̂ ← βm̂ + (1 − β) d
    k.copy(x, scratch, floats);
  },
};

export const qgm = gossipAlgorithm({
  name: "qgm",
  about: "QG-DSGDm: gossip with quasi-global momentum built from the model's displacement",
  paper: "Lin, Karimireddy, Stich, Jaggi: quasi-global momentum (ICML 2021)",
  rule,
});
