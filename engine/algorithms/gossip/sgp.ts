/**
 * Stochastic gradient push, SGP (Assran, Loizou, Ballas, Rabbat, ICML 2019): push-sum gossip, which
 * needs only column-stochastic weights (each node splits what it sends), so it averages correctly on
 * directed and time-varying graphs. Every node keeps a push-sum weight w_i beside x_i; its model is
 * the de-biased z_i = x_i / w_i, where its gradient is taken.
 *
 *   m_i ← β m_i + ∇f_i(z_i);   x½_i = x_i − γ m_i          (local momentum step)
 *   x_i ← Σ_j p_ij x½_j;       w_i ← Σ_j p_ij w_j;   z_i = x_i / w_i
 *
 * Invariant: mixing preserves Σ_i x_i and Σ_i w_i = n, so Σ_i x_i / n is the network's average model
 * whatever the graph. (On this project's topologies, which are doubly stochastic, w stays 1 and SGP
 * is DmSGD with the momentum kept on the local step; push-sum matters for graphs that are not.)
 */
import { UserError } from "../../errors.ts";
import { gossipOptionsOf } from "../config.ts";
import { isColumnStochastic } from "./analysis.ts";
import { combine, gossipAlgorithm, mixInto, type GossipRule } from "./round.ts";
import { buildTopology } from "./topology.ts";

const rule: GossipRule = {
  state: ["debiased"],
  prepare(memory, layout, i, floats) {
    new Float32Array(memory.buffer, layout.scalars, layout.nodes)[i] = 1; // w⁰ = 1
    new Float32Array(memory.buffer, layout.state.debiased![i]!, floats).set(new Float32Array(memory.buffer, layout.params[i]!, floats)); // z⁰ = x⁰
  },
  modelOf: (layout, i) => layout.state.debiased![i]!,
  message(v, i, g, gamma, beta) {
    const { k, floats, layout, memory } = v;
    const h = layout.messages[i]!;
    k.copy(h, layout.params[i]!, floats);
    k.momentum_update(h, g, layout.momentum[i]!, floats, gamma, beta, 0, 0, 0); // m ← βm + g; x½ = x − γm
    const w = new Float32Array(memory.buffer, layout.scalars, layout.nodes);
    new Float32Array(memory.buffer, layout.scalarMessages, layout.nodes)[i] = w[i]!;
  },
  update(v, i, edges) {
    const { k, floats, layout, memory } = v;
    const x = layout.params[i]!;
    mixInto(v, i, x, edges); // x_i = Σ_j p_ij x½_j
    const sent = new Float32Array(memory.buffer, layout.scalarMessages, layout.nodes);
    let w = 0;
    edges.from.forEach((j, e) => (w += edges.weights[e]! * sent[j]!)); // w_i = Σ_j p_ij w_j
    new Float32Array(memory.buffer, layout.scalars, layout.nodes)[i] = w;
    combine(v, i, layout.state.debiased![i]!, [[x, 1 / w]]); // z_i = x_i / w_i
  },
};

export const sgp = gossipAlgorithm({
  name: "sgp",
  about: "stochastic gradient push: push-sum gossip with de-biasing weights, for directed graphs",
  paper: "Assran, Loizou, Ballas, Rabbat: stochastic gradient push (ICML 2019)",
  rule,
  check(config) {
    const g = gossipOptionsOf(config);
    const topology = buildTopology(g.topology, g.nodes, { seed: config.seed });
    if (!topology.rounds.every((W) => isColumnStochastic(W))) throw new UserError(`--algo sgp needs column-stochastic weights; the ${g.topology} topology's are not`);
  },
});
