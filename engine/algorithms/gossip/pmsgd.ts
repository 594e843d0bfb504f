/**
 * PmSGD: parallel momentum SGD with an exact all-reduce, the baseline the decentralized methods are
 * measured against (W = J whatever the topology). Per round, on every node i:
 *
 *   ḡ = (1/n) Σ_j g_j                 (the all-reduce)
 *   m_i ← β m_i + ḡ;   x_i ← x_i − γ m_i
 *
 * Every node makes the same update, so the nodes stay identical.
 */
import { allNodes, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";

const rule: GossipRule = {
  message: (v, i, g) => v.k.copy(v.layout.messages[i]!, g, v.floats), // h_i = g_i
  update(v, i, _edges, scratch, gamma, beta, firstOfWorker) {
    // ḡ is the same for every node: a worker computes it once per round, for its first node.
    if (firstOfWorker) mixInto(v, i, scratch, allNodes(v.layout.nodes));
    v.k.momentum_update(v.layout.params[i]!, scratch, v.layout.momentum[i]!, v.floats, gamma, beta, 0, 0, 0);
  },
  readsAll: true,
  // A ring all-reduce sends 2(n − 1)/n models per node.
  bytesPerNodeStep: (layout, modelBytes) => (2 * (layout.nodes - 1) * modelBytes) / layout.nodes,
  messagesPerNodeStep: (layout) => 2 * (layout.nodes - 1),
};

export const pmsgd = gossipAlgorithm({
  name: "pmsgd",
  about: "momentum SGD over an exact all-reduce (the decentralized methods' baseline)",
  paper: "parallel momentum SGD, as compared against in Yuan et al., DecentLaM (ICCV 2021)",
  rule,
});
