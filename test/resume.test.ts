/**
 * Exact resume for every algorithm: under the deterministic executor, a run stopped after each epoch
 * and resumed from its run folder (checkpoint on disk, one process per hop in spirit: a fresh session
 * each time) ends with bitwise the same weights as the uninterrupted run. Configurations use replicas,
 * several gossip nodes and several pipeline stages so that every piece of state beyond the evaluated
 * vector (other replicas, every node's x and m, version counters, stashes) has to survive the restart.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { openResume, train, type TrainConfig } from "../engine/train.ts";
import { ALGORITHM_NAMES as ALGORITHMS, algorithmsOf } from "../engine/algorithms/registry.ts";
import { sameBits, trainAndRead } from "./helpers.ts";


const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-12-10",
  data: "synthetic:192",
  epochs: 3,
  batch: 32,
  workers: 2,
  executor: "deterministic",
  seed: 11,
  optimizer: defaultOptimizer("momentum"),
};

/** Per algorithm: a configuration with as much state beyond replica 0's weights as the algorithm has. */
const CONFIGS: Record<string, Partial<TrainConfig>> = {
  sync: {},
  hogwild: {},
  lap: { workers: 4, async: { replicas: 2, avgEvery: 5 } },
  lpp: { workers: 4, async: { replicas: 2, avgEvery: 5, lppWarmup: 1 } },
  layerwise: { workers: 4, async: { replicas: 2, fwdThreads: 1, bwdThreads: 1, queue: 2, avgEvery: 5 } },
  // Every node's own weights (never averaged) must come back.
  layup: { workers: 6, async: { replicas: 3, fwdThreads: 1, bwdThreads: 1, queue: 2 }, gossip: { topology: "ring" } },
  pmsgd: { gossip: { nodes: 4, topology: "ring" } },
  dsgd: { gossip: { nodes: 4, topology: "ring" } },
  dmsgd: { gossip: { nodes: 4, topology: "ring" } },
  decentlam: { gossip: { nodes: 4, topology: "ring" } },
  // Gradient tracking and exact diffusion take plain steps; their own vectors (y, ψ) must come back too.
  gt: { gossip: { nodes: 4, topology: "ring" }, optimizer: defaultOptimizer("sgd") },
  ed: { gossip: { nodes: 4, topology: "ring" }, optimizer: defaultOptimizer("sgd") },
  qgm: { gossip: { nodes: 4, topology: "ring" } },
  // Push-sum's weights (per-node scalars) and de-biased models.
  sgp: { gossip: { nodes: 4, topology: "exponential" } },
  localsgd: { gossip: { nodes: 4, localSteps: 3 } },
  // The slow model and slow momentum, with an averaging period that straddles the epoch boundary.
  slowmo: { gossip: { nodes: 4, localSteps: 3 } },
  gpipe: { workers: 2, pipeline: { stages: 2, microbatches: 4 } },
  "1f1b": { workers: 2, pipeline: { stages: 2, microbatches: 4 } },
  pipedream: { workers: 3, pipeline: { stages: 3, microbatches: 4 }, model: "mlp:784-12-12-10" },
  "2bw": { workers: 3, pipeline: { stages: 3, microbatches: 4 }, model: "mlp:784-12-12-10" },
  spectrain: { workers: 3, pipeline: { stages: 3, microbatches: 4 }, model: "mlp:784-12-12-10" },
  pipeoptim: { workers: 3, pipeline: { stages: 3, microbatches: 4 }, model: "mlp:784-12-12-10" },
};

describe("every algorithm resumes bit-exact under the deterministic executor", () => {
  for (const algo of ALGORITHMS) {
    test(`${algo}: stopped after each of epochs 1..${base.epochs - 1} and resumed = uninterrupted`, async () => {
      const config: TrainConfig = { ...base, algo, ...CONFIGS[algo] };
      const straight = await trainAndRead(config);
      const dir = mkdtempSync(join(tmpdir(), `skein-resume-${algo}-`));
      await train({ ...config, epochs: 1 }, { out: dir });
      let resumed = straight;
      for (let epochs = 2; epochs <= config.epochs; epochs++) {
        resumed = await trainAndRead({ ...config, epochs }, { out: dir, resume: await openResume(dir) });
      }
      expect({ algo, same: sameBits(resumed.params, straight.params) }).toEqual({ algo, same: true });
      const epochs = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l).epoch);
      expect(epochs).toEqual([1, 2, 3]);
    });
  }
});

describe("predicting pipelines resume with the last gradient their prediction uses", () => {
  for (const algo of ["spectrain", "pipeoptim"] as const) {
    for (const kind of ["sgd", "nesterov", "rmsprop"] as const) {
      test(`${algo} with ${kind}`, async () => {
        const config: TrainConfig = { ...base, algo, ...CONFIGS[algo], optimizer: defaultOptimizer(kind) };
        const straight = await trainAndRead(config);
        const dir = mkdtempSync(join(tmpdir(), `skein-resume-${algo}-${kind}-`));
        await train({ ...config, epochs: 1 }, { out: dir });
        const resumed = await trainAndRead(config, { out: dir, resume: await openResume(dir) });
        expect(sameBits(resumed.params, straight.params)).toBe(true);
      });
    }
  }
});

describe("resume is exact over generated configurations", () => {
  test("any algorithm, replicas, averaging period, stages, microbatches, optimizer and stop epoch k", async () => {
    const pipelines = ["gpipe", "1f1b", "pipedream", "2bw", "spectrain", "pipeoptim"];
    const GOSSIP = algorithmsOf("gossip").map((a) => a.name);
    const PLAIN_STEPS = ["gt", "ed"];
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          algo: fc.constantFrom(...ALGORITHMS),
          stopAfter: fc.integer({ min: 1, max: 2 }),
          replicas: fc.integer({ min: 1, max: 2 }),
          avgEvery: fc.integer({ min: 1, max: 4 }),
          stages: fc.integer({ min: 1, max: 3 }),
          microbatches: fc.constantFrom(1, 2, 4),
          optimizer: fc.constantFrom("sgd", "momentum", "adam", "rmsprop"),
          seed: fc.integer({ min: 0, max: 1000 }),
        }),
        async ({ algo, stopAfter, replicas, avgEvery, stages, microbatches, optimizer, seed }) => {
          const async =
            algo === "layerwise" ? { replicas, avgEvery, fwdThreads: 1, bwdThreads: 1, queue: 2 } : algo === "layup" ? { replicas, fwdThreads: 1, bwdThreads: 1, queue: 2 } : { replicas, avgEvery, lppWarmup: 1 };
          const config: TrainConfig = {
            ...base,
            algo,
            seed,
            // The gossip algorithms have their own update rules: plain or momentum SGD only.
            optimizer: defaultOptimizer(PLAIN_STEPS.includes(algo) ? "sgd" : GOSSIP.includes(algo) && optimizer !== "sgd" ? "momentum" : optimizer),
            model: "mlp:784-8-8-10",
            workers: pipelines.includes(algo) ? stages : algo === "layerwise" || algo === "layup" ? replicas * 2 : algo === "lap" || algo === "lpp" ? replicas * 2 : 2,
            ...(algo === "lap" || algo === "lpp" || algo === "layerwise" || algo === "layup" ? { async } : {}),
            // 2BW as published needs at least as many microbatches per batch as stages.
            ...(pipelines.includes(algo) ? { pipeline: { stages, microbatches: algo === "2bw" ? Math.max(microbatches, stages) : microbatches } } : {}),
            ...(GOSSIP.includes(algo) ? { gossip: { nodes: 3, topology: "ring" } } : {}),
          };
          const straight = await trainAndRead(config);
          const dir = mkdtempSync(join(tmpdir(), `skein-resume-prop-`));
          await train({ ...config, epochs: stopAfter }, { out: dir });
          const resumed = await trainAndRead(config, { out: dir, resume: await openResume(dir) });
          expect(sameBits(resumed.params, straight.params)).toBe(true);
        },
      ),
      { numRuns: 25 },
    );
  });
});
