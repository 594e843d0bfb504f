/**
 * A bench worker for bench/gossip.bench.ts: on the shared memory, either runs gossip rounds of the
 * engine's own DmSGD mixing step over its block of nodes (with the engine's barrier between rounds), or
 * streams the same number of bytes through a plain weighted sum (the bandwidth peer).
 */
import * as Comlink from "comlink";
import { instantiateKernels } from "../../engine/kernels/load.ts";
import type { GossipVectors } from "../../engine/algorithms/gossip/round.ts";
import { dmsgd } from "../../engine/algorithms/gossip/dmsgd.ts";
import { Control, type ControlLayout } from "../../engine/runtime/control.ts";
import { ThreadSync, runToEnd } from "../../engine/runtime/sync.ts";

export interface MixJob {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  control: ControlLayout;
  parties: number;
  vectors: Omit<GossipVectors, "k" | "memory">;
  edges: { from: number[]; weights: number[] }[];
  nodes: [number, number]; // [lo, hi)
  scratch: number;
  rounds: number;
}

const api = {
  /** Milliseconds per round, as this worker saw them (barrier to barrier). */
  mix(job: MixJob): number[] {
    const k = instantiateKernels(job.module, job.memory);
    const sync = new ThreadSync(new Control(job.memory, job.control, job.parties), job.parties, job.memory);
    const v: GossipVectors = { ...job.vectors, k, memory: job.memory };
    const times: number[] = [];
    runToEnd(sync.barrier());
    for (let r = 0; r < job.rounds; r++) {
      const t = performance.now();
      for (let i = job.nodes[0]; i < job.nodes[1]; i++) dmsgd.rule.update(v, i, job.edges[i]!, job.scratch, 0.1, 0.9, i === job.nodes[0], 0);
      runToEnd(sync.barrier());
      times.push(performance.now() - t);
    }
    return times;
  },
  /** Milliseconds per pass of out[i] = Σ of `inputs` vectors, over this worker's outputs. */
  stream(job: { module: WebAssembly.Module; memory: WebAssembly.Memory; outs: number[]; ins: number[][]; args: { tensors: number; weights: number }; floats: number; rounds: number; control: ControlLayout; parties: number }): number[] {
    const k = instantiateKernels(job.module, job.memory);
    const sync = new ThreadSync(new Control(job.memory, job.control, job.parties), job.parties, job.memory);
    const times: number[] = [];
    runToEnd(sync.barrier());
    for (let r = 0; r < job.rounds; r++) {
      const t = performance.now();
      job.outs.forEach((out, o) => {
        const ins = job.ins[o]!;
        const ptrs = new Int32Array(job.memory.buffer, job.args.tensors, ins.length);
        const ws = new Float32Array(job.memory.buffer, job.args.weights, ins.length);
        ins.forEach((p, e) => ((ptrs[e] = p), (ws[e] = 1 / ins.length)));
        k.weighted_sum(out, job.args.tensors, job.args.weights, ins.length, job.floats);
      });
      runToEnd(sync.barrier());
      times.push(performance.now() - t);
    }
    return times;
  },
};

export type GossipBenchWorker = typeof api;
Comlink.expose(api);
