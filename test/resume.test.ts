/**
 * Exact resume for every algorithm: under the deterministic executor, a run stopped after each epoch
 * and resumed from its run folder (checkpoint on disk, one process per hop in spirit: a fresh session
 * each time) ends with bitwise the same weights as the uninterrupted run. Configurations use replicas,
 * several gossip nodes and several pipeline stages so that every piece of state beyond the evaluated
 * vector (other replicas, every node's x and m, version counters, stashes) has to survive the restart.
 */
import { describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { ALGORITHMS, openResume, train, type TrainConfig } from "../engine/train.ts";
import { sameBits, trainAndRead } from "./helpers.ts";

// Property tests and end-to-end runs need more than Bun's 5 s on a busy machine (see test/setup.ts).
setDefaultTimeout(120_000);

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
const CONFIGS: Record<(typeof ALGORITHMS)[number], Partial<TrainConfig>> = {
  sync: {},
  hogwild: {},
  lap: { workers: 4, async: { replicas: 2, avgEvery: 5 } },
  lpp: { workers: 4, async: { replicas: 2, avgEvery: 5, lppWarmup: 1 } },
  layerwise: { workers: 4, async: { replicas: 2, fwdThreads: 1, bwdThreads: 1, queue: 2, avgEvery: 5 } },
  pmsgd: { gossip: { nodes: 4, topology: "ring" } },
  dsgd: { gossip: { nodes: 4, topology: "ring" } },
  dmsgd: { gossip: { nodes: 4, topology: "ring" } },
  decentlam: { gossip: { nodes: 4, topology: "ring" } },
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
