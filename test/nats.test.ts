/**
 * Runs that span processes over NATS: bitwise the run of one process, and faults that end the run
 * cleanly. Every run here starts its own nats-server on 127.0.0.1 (random port, random token) and its
 * own child processes, and stops them; without nats-server these tests skip, saying so.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { train, type TrainConfig } from "../engine/train.ts";
import { trainAcrossProcesses } from "../engine/run-processes.ts";
import { natsServerPath } from "../engine/distributed/server.ts";
import { CHECKPOINT_FILE } from "../engine/checkpoint/checkpoint.ts";
import { tempFolders } from "./tempdir.ts";

const ROOT = join(import.meta.dir, "..");
const SELF = [process.execPath, join(ROOT, "engine/cli/main.ts")];
const haveNats = natsServerPath() !== null;
if (!haveNats) console.warn("nats.test.ts: no nats-server (Debian: apt-get install nats-server): the tests of runs across processes skip");
const natsTest = haveNats ? test : test.skip;
const folder = tempFolders("skein-nats-");

const gossip = (algo: string, topology: string, nodes = 8): TrainConfig => ({
  algo,
  model: "mlp:784-32-10",
  data: "digits",
  epochs: 2,
  batch: 16,
  workers: 2,
  executor: "threads",
  seed: 7,
  optimizer: { ...defaultOptimizer("momentum"), lr: 0.05 },
  gossip: { topology, nodes },
});

/** The same configuration in one process and across `procs` processes: final weights and every checkpointed vector. */
async function bothWays(config: TrainConfig, procs: number) {
  const one = folder();
  const many = folder();
  let inProcess: Float32Array | null = null;
  let across: Float32Array | null = null;
  const a = await train(config, { out: one, onFinish: (p) => (inProcess = p) });
  const b = await trainAcrossProcesses(config, { out: many, onFinish: (p) => (across = p) }, { procs, self: SELF });
  return {
    summaries: [a, b],
    sameWeights: Buffer.from(inProcess!.buffer).equals(Buffer.from(across!.buffer)),
    sameCheckpoint: readFileSync(join(one, CHECKPOINT_FILE)).equals(readFileSync(join(many, CHECKPOINT_FILE))),
  };
}

describe("runs across processes are bitwise the run of one process", () => {
  for (const [algo, topology, procs] of [
    ["dmsgd", "ring", 2],
    ["decentlam", "ring", 2],
    ["dmsgd", "one-peer-exponential", 4],
    ["dsgd", "one-peer-exponential", 2],
    ["pmsgd", "ring", 2],
  ] as const) {
    natsTest(`${algo} on the ${topology} topology, ${procs} processes`, async () => {
      const config = { ...gossip(algo, topology), workers: procs };
      const { summaries, sameWeights, sameCheckpoint } = await bothWays(config, procs);
      expect(summaries[1]!.status).toBe("completed");
      expect(summaries[1]!.testAccuracy).toBe(summaries[0]!.testAccuracy);
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }

  // Batch 128: two blocks of 64, one per process; batch 320 on 3 processes: five blocks shared 2/2/1,
  // and the last step of the epoch is shorter (fewer blocks than processes at times).
  for (const [batch, procs, workers, optimizer] of [
    [128, 2, 2, "momentum"],
    [320, 3, 4, "adam"],
  ] as const) {
    natsTest(`sync, batch ${batch}, ${workers} workers on ${procs} processes, ${optimizer}`, async () => {
      const config: TrainConfig = { ...gossip("sync", "ring"), gossip: undefined, batch, workers, optimizer: defaultOptimizer(optimizer) };
      const { summaries, sameWeights, sameCheckpoint } = await bothWays(config, procs);
      expect(summaries[1]!.status).toBe("completed");
      expect(sameWeights).toBe(true);
      expect(sameCheckpoint).toBe(true);
    });
  }
});
