/**
 * Local SGD and SlowMo (Wang, Tantia, Ballas, Rabbat, ICLR 2020): every node takes τ local momentum
 * steps on its own model; then the nodes average exactly (an all-reduce), and SlowMo moves a shared
 * slow model along a slow momentum of the averaged displacement.
 *
 *   every round:   m_i ← β m_i + g_i;   x_i ← x_i − γ m_i
 *   every τ rounds:
 *     x̄ = (1/n) Σ_j x_j
 *     u ← β_s u + (x_prev − x̄) / γ
 *     x_prev ← x_prev − α γ u;   x_i ← x_prev
 *
 * Local SGD is SlowMo with β_s = 0 and α = 1 (x_prev ← x̄), written here as its own rule that takes
 * x̄ exactly. With τ = 1 and plain SGD, local SGD is PmSGD. The topology plays no part: the average is
 * exact. Every node keeps its own copy of x_prev and u; they are identical on all nodes.
 */
import { allNodes, combine, gossipAlgorithm, mixInto, type GossipLayout, type GossipRule } from "./round.ts";
import { gossipOptionsOf } from "../config.ts";

const averagesAfter = (layout: Pick<GossipLayout, "settings">, t: number) => (t + 1) % layout.settings.localSteps! === 0;

/** The local momentum step, and x_i as the message for an averaging round. */
const localStep: GossipRule["message"] = (v, i, g, gamma, beta) => {
  const { k, floats, layout } = v;
  k.momentum_update(layout.params[i]!, g, layout.momentum[i]!, floats, gamma, beta, 0, 0, 0);
  k.copy(layout.messages[i]!, layout.params[i]!, floats);
};

const localSgdRule: GossipRule = {
  message: localStep,
  update(v, i, _edges, scratch, _gamma, _beta, firstOfWorker, t) {
    if (!averagesAfter(v.layout, t)) return;
    if (firstOfWorker) mixInto(v, i, scratch, allNodes(v.layout.nodes)); // x̄, once per worker
    v.k.copy(v.layout.params[i]!, scratch, v.floats);
  },
  bytesPerNodeStep: (layout, modelBytes) => (2 * (layout.nodes - 1) * modelBytes) / layout.nodes / layout.settings.localSteps!,
};

const slowMoRule: GossipRule = {
  state: ["slowModel", "slowMomentum"],
  prepare(memory, layout, i, floats) {
    new Float32Array(memory.buffer, layout.state.slowModel![i]!, floats).set(new Float32Array(memory.buffer, layout.params[i]!, floats)); // x_prev = x⁰
  },
  message: localStep,
  update(v, i, _edges, scratch, gamma, _beta, firstOfWorker, t) {
    const { k, floats, layout } = v;
    if (!averagesAfter(layout, t)) return;
    if (firstOfWorker) mixInto(v, i, scratch, allNodes(layout.nodes)); // x̄, once per worker
    const slow = layout.state.slowModel![i]!;
    const u = layout.state.slowMomentum![i]!;
    const { slowMomentum, slowLr } = layout.settings;
    combine(v, i, u, [[u, slowMomentum!], [slow, 1 / gamma], [scratch, -1 / gamma]]); // u ← β_s u + (x_prev − x̄)/γ
    k.axpy(slow, u, floats, -slowLr! * gamma); // x_prev ← x_prev − αγu
    k.copy(layout.params[i]!, slow, floats);
  },
  bytesPerNodeStep: localSgdRule.bytesPerNodeStep,
};

const settings = (config: Parameters<typeof gossipOptionsOf>[0]) => {
  const g = gossipOptionsOf(config);
  return { localSteps: g.localSteps, slowMomentum: g.slowMomentum, slowLr: g.slowLr };
};

export const localsgd = gossipAlgorithm({
  name: "localsgd",
  about: "local SGD: --local-steps local momentum steps, then an exact average",
  paper: "Stich: local SGD (ICLR 2019); as the β = 0, α = 1 case of SlowMo (Wang et al., ICLR 2020)",
  rule: localSgdRule,
  flags: ["local-steps"],
  settings,
});

export const slowmo = gossipAlgorithm({
  name: "slowmo",
  about: "SlowMo: local SGD whose averages drive a slow momentum (--slow-momentum, --slow-lr)",
  paper: "Wang, Tantia, Ballas, Rabbat: SlowMo (ICLR 2020)",
  rule: slowMoRule,
  flags: ["local-steps", "slow-momentum", "slow-lr"],
  settings,
});
