/**
 * A straightforward sequential reference for pipeline execution, independent of the runtime's
 * lowering: it walks the annotated schedule in one global order that respects its dependencies (the
 * simulator's timeline), gives every microbatch a fresh workspace (no slots), keeps a snapshot of
 * every weight version each stage ever had (no stash allocation), and reads, per action, the version,
 * the live weights or the prediction the annotation names. Same kernels, same data, same
 * initialisation as `train`: a faithful runtime agrees with it bitwise.
 */
import { loadDataset } from "../engine/data/index.ts";
import { epochOrder } from "../engine/data/order.ts";
import { epochShape, partitionStages, pipelineBatches, windowProgram, type PipelineAlgorithm, type PipelineOptions } from "../engine/algorithms/pipeline/pipeline.ts";
import { predictWeights } from "../engine/algorithms/pipeline/prediction.ts";
import { peakInFlight, updatePoints, virtualStageCount, writesGradient, type Action } from "../engine/algorithms/pipeline/schedule.ts";
import { simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { applyUpdate, planOptimizerState, type OptimizerConfig } from "../engine/optim/optimizer.ts";
import { Rng } from "../engine/rng.ts";
import { copyData, loadBatch, planData, type RoleContext, type WorkerBuffers } from "../engine/runtime/context.ts";
import { shardOf } from "../engine/runtime/split.ts";
import { buildNetwork } from "../engine/session.ts";
import { testMemory } from "./helpers.ts";

export interface ReferenceRun {
  algo: PipelineAlgorithm;
  model: string;
  data: string;
  epochs: number;
  batch: number;
  seed: number;
  optimizer: OptimizerConfig;
  pipeline: PipelineOptions;
}

export async function referencePipeline(c: ReferenceRun): Promise<Float32Array> {
  const dataset = await loadDataset(c.data);
  const net = buildNetwork(c.model, dataset);
  const t = testMemory(256);
  const { k, memory, planner } = t;
  const data = planData(planner, dataset);
  copyData(memory, data, dataset);
  const ctx = { k, memory, setup: { data } } as unknown as RoleContext;
  const n = net.paramFloats;
  const params = t.floats(n);
  net.initialize(new Float32Array(memory.buffer, params, n), Rng.derive(c.seed, "init"));
  const state = planOptimizerState(planner, n, c.optimizer.kind);
  const D = c.pipeline.stages;
  const batches = pipelineBatches(dataset.train.count, c.batch);
  const shape = epochShape(c.algo, c.pipeline, batches);
  const schedule = windowProgram(c.algo, c.pipeline, shape, c.batch).schedule;
  // Layers by virtual stage (= stage without virtual stages); stage k holds virtual stages k, k + D, …
  const S = virtualStageCount(schedule);
  const withRange = (r: { first: number; last: number }) => {
    const end = net.params[r.last]!;
    return { ...r, lo: net.params[r.first]!.offset, hi: end.offset + end.floats };
  };
  const pieces = partitionStages(net, S).map(withRange);
  const ranges = Array.from({ length: D }, (_, k) => withRange({ first: pieces[k]!.first, last: pieces[S - D + k]!.last }));
  const layersOf = (k: number) => pieces.filter((_, vs) => vs % D === k).flatMap((r) => Array.from({ length: r.last - r.first + 1 }, (_, i) => r.first + i));
  const M = schedule.microbatches;
  const rowsMax = Math.ceil(c.batch / shape.unitsPerBatch);
  const split = schedule.actions.some((list) => list.some((a) => a.kind === "I"));
  const workspaces: WorkerBuffers[] = Array.from({ length: M }, (_, m) => ({
    ws: net.planWorkspace(planner, `ref${m}`, rowsMax, { splitBackward: split }),
    indices: planner.reserve("activations", `ref${m}.indices`, rowsMax * 4),
  }));
  const grads = ranges.map(() => t.floats(n));
  const scratchWeights = t.floats(n);
  const updatesApplied = new Array<number>(D).fill(0); // over the whole run (Adam's t)
  const rowsOf = (m: number) => {
    const { lo, hi } = shardOf(c.batch, shape.unitsPerBatch, m % shape.unitsPerBatch);
    return { lo, rows: hi - lo };
  };
  const f32 = (p: number, lo: number, hi: number) => new Float32Array(memory.buffer, p + lo * 4, hi - lo);

  // The loss scale of each microbatch: 1 / the samples of the update it goes into on the last stage.
  const scale = new Float64Array(M);
  {
    let group: number[] = [];
    const points = updatePoints(schedule, D - 1);
    schedule.actions[D - 1]!.forEach((a, p) => {
      if (writesGradient(a) && a.stage === S - 1) group.push(a.microbatch);
      if (points[p]) {
        const samples = group.reduce((s, m) => s + rowsOf(m).rows, 0);
        for (const m of group) scale[m] = 1 / samples;
        group = [];
      }
    });
  }
  const order = simulate(schedule, { f: 1, b: 1 }).timeline;
  const points = schedule.actions.map((_, k2) => updatePoints(schedule, k2));
  const firstTrainable = net.trainableLayers[0] ?? net.layers.length;

  for (let epoch = 0; epoch < c.epochs; epoch++) {
    const epochOrderIdx = epochOrder(dataset.train.count, c.seed, epoch);
    for (let w = 0; w < shape.windows; w++) {
      // Every version of every stage this window: version v = the stage's weights after v updates.
      const versions = ranges.map((r) => [f32(params, r.lo, r.hi).slice()]);
      const written = new Set<number>(); // virtual stages whose layers' gradient has been written since their stage's update
      for (const e of order) {
        const p = e.index;
        const a = schedule.actions[e.stage]![p]!;
        const s = e.stage;
        const r = ranges[s]!;
        const piece = pieces[a.stage]!;
        const m = a.microbatch;
        const u = w * shape.perWindow + m;
        const { lo, rows } = rowsOf(u);
        const ws = workspaces[m]!.ws;
        // The weights the annotation names.
        let weights = params;
        if (a.kind !== "W") {
          const source = a.weights ?? "version";
          if (source === "version") {
            const v = a.version ?? 0;
            if (v !== versions[s]!.length - 1) {
              f32(scratchWeights, r.lo, r.hi).set(versions[s]![v]!);
              weights = scratchWeights;
            }
          } else if (source === "predicted") {
            const region = { w: params + r.lo * 4, g: grads[s]! + r.lo * 4, m: state[0] ? state[0] + r.lo * 4 : 0, v: state[1] ? state[1] + r.lo * 4 : 0, n: r.hi - r.lo };
            if (predictWeights(k, c.optimizer, scratchWeights + r.lo * 4, region, a.predictSteps ?? 0, updatesApplied[s]!)) weights = scratchWeights;
          }
        }
        switch (a.kind) {
          case "F":
            if (a.stage === 0) loadBatch(ctx, workspaces[m]!, "train", epochOrderIdx, Math.floor(u / shape.unitsPerBatch) * c.batch + lo, rows);
            for (let l = piece.first; l <= piece.last; l++) net.forwardLayer(k, l, weights, ws, rows);
            if (a.stage === S - 1) net.lossAndGradient(k, ws, rows, scale[m]!);
            break;
          case "B":
            for (let l = piece.last; l >= Math.max(piece.first, firstTrainable); l--) net.backwardLayer(k, l, weights, grads[s]!, ws, rows, written.has(a.stage));
            break;
          case "I":
            for (let l = piece.last; l >= Math.max(piece.first, firstTrainable); l--) net.backwardInputLayer(k, l, weights, ws, rows);
            break;
          case "W":
            for (let l = piece.last; l >= Math.max(piece.first, firstTrainable); l--) net.backwardWeightLayer(k, l, grads[s]!, ws, rows, written.has(a.stage));
            break;
        }
        if (writesGradient(a)) written.add(a.stage);
        if (points[s]![p]) {
          const step = ++updatesApplied[s]!;
          for (const l of layersOf(s)) {
            const region = net.params[l]!;
            if (region.floats === 0) continue;
            const at = (base: number | undefined) => (base ? base + region.offset * 4 : 0);
            applyUpdate(k, c.optimizer, { w: at(params), g: at(grads[s]), m: at(state[0]), v: at(state[1]), n: region.floats }, step);
          }
          versions[s]!.push(f32(params, r.lo, r.hi).slice());
          for (let vs = s; vs < S; vs += D) written.delete(vs);
        }
      }
    }
  }
  return t.read(params, n);
}

/**
 * A valid schedule from a stream of choices: repeatedly pick one of the actions whose dependencies
 * are done (F(k,m) after F(k−1,m); B or I (k,m) after F(k,m) and the B or I of (k+1,m); W after I)
 * and append it to its stage's list. The global order is a witness that the lists never deadlock.
 * `split[m·D + k]` makes microbatch m's backward on stage k an I and a W. Shrinks with its inputs.
 */
export function randomSchedule(D: number, M: number, choices: number[], split: boolean[], flush: boolean) {
  const fDone = Array.from({ length: D }, () => new Array<boolean>(M).fill(false));
  const gDone = Array.from({ length: D }, () => new Array<boolean>(M).fill(false));
  const iDone = Array.from({ length: D }, () => new Array<boolean>(M).fill(false));
  const wDone = Array.from({ length: D }, () => new Array<boolean>(M).fill(false));
  const actions: Action[][] = Array.from({ length: D }, () => []);
  let c = 0;
  for (;;) {
    const ready: Action[] = [];
    for (let k = 0; k < D; k++) {
      for (let m = 0; m < M; m++) {
        const isSplit = split[(m * D + k) % Math.max(split.length, 1)] ?? false;
        if (!fDone[k]![m] && (k === 0 || fDone[k - 1]![m])) ready.push({ kind: "F", microbatch: m, stage: k });
        else if (fDone[k]![m] && !gDone[k]![m] && (k === D - 1 || gDone[k + 1]![m])) ready.push({ kind: isSplit ? "I" : "B", microbatch: m, stage: k });
        else if (iDone[k]![m] && !wDone[k]![m]) ready.push({ kind: "W", microbatch: m, stage: k });
      }
    }
    if (ready.length === 0) break;
    const a = ready[(choices[c++ % Math.max(choices.length, 1)] ?? 0) % ready.length]!;
    actions[a.stage]!.push(a);
    if (a.kind === "F") fDone[a.stage]![a.microbatch] = true;
    else if (a.kind === "B") gDone[a.stage]![a.microbatch] = true;
    else if (a.kind === "I") gDone[a.stage]![a.microbatch] = iDone[a.stage]![a.microbatch] = true;
    else wDone[a.stage]![a.microbatch] = true;
  }
  const s = { name: "random", stages: D, microbatches: M, actions, flush, maxInFlight: [] as number[] };
  s.maxInFlight = peakInFlight(s);
  return s;
}
