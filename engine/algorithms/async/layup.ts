/**
 * LayUp-style asynchronous decentralized layer-wise training, after the later version of Fokam et al.
 * (arXiv 2410.05985, v4), which carries layer-wise decoupled backpropagation into decentralized
 * training: nodes that each run forward and backward threads and gossip layer by layer with their
 * neighbours, instead of sharing one weight vector. The paper has no public code; what skein runs:
 *
 *   --replicas R nodes, each a layerwise replica (F forward threads, B backward threads, Q slots)
 *   backward thread of node r, for layer m from the top down:
 *     gradient of layer m; update x_r[m] in place (layer-wise, as layerwise does)
 *     gossip: x_r[m] ← Σ_j w_rj x_j[m] over its neighbours' copies as they are now (--topology)
 *   no barrier and no global average ever: nodes drift apart as far as the graph and the data let them
 *
 * Where this departs from the paper, as far as its text says: the gossip is a weighted in-place read
 * of the neighbours' current layer (lock-free, like Hogwild!'s shared reads), not a message exchange;
 * node r trains batches r, r + R, … of one shuffled epoch order (the data is not sharded per node); and
 * the model evaluated is the nodes' average x̄, with their own accuracies and consensus distance
 * reported beside it, as for the gossip family. With one node it is layerwise.
 */
import type { Algorithm } from "../algorithm.ts";
import { asyncOptionsOf, gossipOptionsOf } from "../config.ts";
import { mixingSchedule } from "../gossip/setup.ts";
import { buildTopology } from "../gossip/topology.ts";
import { layerwise, planLayerwise, type LayerwiseLayout } from "./layerwise.ts";

export const layup: Algorithm<LayerwiseLayout> = {
  ...layerwise,
  name: "layup",
  about: "decentralized layerwise: --replicas nodes of forward/backward threads gossiping each layer with neighbours",
  paper: "after Fokam et al., LayUp (arXiv 2410.05985 v4); no public code, see layup.ts for what is run",
  flags: ["replicas", "fwd-threads", "bwd-threads", "queue", "topology", "staleness-lr", "dc-lambda"],
  plan(input) {
    const { planner, net } = input;
    const R = asyncOptionsOf(input.config).replicas;
    const topology = buildTopology(gossipOptionsOf(input.config).topology, R, { seed: input.config.seed });
    const plan = planLayerwise(input, mixingSchedule(topology).rounds);
    const replicas = plan.layout.replicas;
    const floats = net.paramFloats;
    const average = planner.floats("parameters", "nodes.average", floats);
    const view = (memory: WebAssembly.Memory, p: number) => new Float32Array(memory.buffer, p, floats);
    const averageNodes = (memory: WebAssembly.Memory) => {
      const sum = new Float64Array(floats);
      for (const p of replicas.params) view(memory, p).forEach((x, e) => (sum[e]! += x));
      view(memory, average).set(sum.map((s) => s / R));
    };
    return {
      ...plan,
      // x̄ is what is evaluated and checkpointed as the model; every node's own x and state beside it.
      params: average,
      checkpointVectors: () => replicas.params.map((ptr, r) => ({ name: `node${r}.params`, ptr, floats })),
      prepare(memory, epochsDone, restored) {
        // A new run starts every node from the initial model (initialised into x̄); a resumed one
        // keeps each node's own weights, restored from the checkpoint.
        if (!restored) for (const p of replicas.params) view(memory, p).set(view(memory, average));
        plan.prepare?.(memory, epochsDone, restored);
      },
      beforeEvaluate: averageNodes,
      async epochMetrics(memory, evaluate) {
        averageNodes(memory);
        const avg = view(memory, average);
        let accuracy = 0;
        let distance = 0;
        for (const p of replicas.params) {
          accuracy += (await evaluate(p)).testAccuracy;
          view(memory, p).forEach((x, e) => (distance += (x - avg[e]!) ** 2));
        }
        return { consensusDistance: distance / R, nodeTestAccuracy: accuracy / R, bytesPerNodeStep: 0 };
      },
    };
  },
};
