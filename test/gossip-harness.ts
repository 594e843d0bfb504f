/**
 * Gossip rules run on their own: n nodes of d floats in a fresh wasm memory, with x, m, messages and
 * every vector the rule keeps, stepped round by round with gradients the test supplies (the engine's
 * two phases, with the barrier between them implicit).
 */
import type { Edges, GossipAlgorithm, GossipLayout, GossipVectors } from "../engine/algorithms/gossip/round.ts";
import { algorithmsOf } from "../engine/algorithms/registry.ts";
import { testMemory } from "./helpers.ts";

export type Rows = Float64Array[]; // per node

export const GOSSIP = algorithmsOf("gossip") as GossipAlgorithm[];
export const GOSSIP_ALGORITHMS = GOSSIP.map((a) => a.name);
export const ruleOf = (name: string) => GOSSIP.find((a) => a.name === name)!.rule;

/** Settings of the rules that read any (local SGD and SlowMo); tests override them. */
export const TEST_SETTINGS = { localSteps: 2, slowMomentum: 0.5, slowLr: 1 };

export function nodes(algorithm: string, n: number, d: number, settings: Record<string, number> = TEST_SETTINGS) {
  const t = testMemory(8 + Math.ceil((n * d * 4 * 12) / 65536));
  const rule = ruleOf(algorithm);
  const vec = () => Array.from({ length: n }, () => t.floats(d));
  const layout: GossipVectors["layout"] & Pick<GossipLayout, "mixing"> = {
    nodes: n,
    params: vec(),
    momentum: vec(),
    messages: vec(),
    mixArgs: Array.from({ length: n }, () => ({ tensors: t.floats(n + 2), weights: t.floats(n + 2) })),
    state: Object.fromEntries((rule.state ?? []).map((name) => [name, vec()])),
    scalars: t.floats(n),
    scalarMessages: t.floats(n),
    settings,
    mixing: { nodes: n, rounds: [] },
  };
  const grads = vec();
  const scratch = t.floats(d);
  const v: GossipVectors = { k: t.k, memory: t.memory, floats: d, layout };
  const set = (ptrs: number[], rows: Rows) => ptrs.forEach((p, i) => t.write(p, rows[i]!));
  const get = (ptrs: number[]): Rows => ptrs.map((p) => Float64Array.from(t.read(p, d)));
  let round = 0;
  return {
    /** Every node's x and m; then the rule's own start (ψ⁰ = x⁰, w⁰ = 1, x_prev = x⁰, …). */
    setState(x: Rows, m: Rows) {
      set(layout.params, x);
      set(layout.momentum, m);
      for (let i = 0; i < n; i++) rule.prepare?.(t.memory, layout as GossipLayout, i, d);
    },
    /** One round: every node writes its message, then every node mixes and updates. */
    round(g: Rows, edges: Edges[], gamma: number, beta: number) {
      set(grads, g);
      for (let i = 0; i < n; i++) rule.message(v, i, grads[i]!, gamma, beta, round);
      for (let i = 0; i < n; i++) rule.update(v, i, edges[i]!, scratch, gamma, beta, i === 0, round);
      round++;
    },
    x: () => get(layout.params),
    m: () => get(layout.momentum),
    /** Each node's own model, where its gradient is taken (push-sum: x / w). */
    models: () => get(layout.params.map((x, i) => rule.modelOf?.(layout as GossipLayout, i) ?? x)),
    /** One of the rule's own per-node vectors. */
    state: (name: string) => get(layout.state[name]!),
    /** Push-sum weights. */
    weights: () => Array.from(t.read(layout.scalars, n)),
  };
}
