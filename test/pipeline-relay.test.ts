/**
 * Pipelines' wakes across processes, as both ranks' plans relay them: every word a stage bumps that a
 * program of another process waits on goes to exactly that process, with what the waiter reads; and
 * a relayed wake is accepted only when it is one the receiver waits on from its sender, at its size.
 * No processes or server here (test/nats.test.ts runs the schedules across processes, bitwise).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { crossProcessPlan } from "../engine/distributed/exchange.ts";
import { checkWake, wordsToRelay } from "../engine/distributed/wake.ts";
import { Outbox } from "../engine/runtime/outbox.ts";
import { algorithmNamed } from "../engine/algorithms/registry.ts";
import { buildSchedule } from "../engine/algorithms/pipeline/schedule.ts";
import type { PipelineLayout, PipelinePlan } from "../engine/algorithms/pipeline/pipeline.ts";
import { ArenaPlanner } from "../engine/memory/arena.ts";
import { Network } from "../engine/model/network.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { rankOfProgram } from "../engine/runtime/processes.ts";
import type { RunSetup } from "../engine/runtime/context.ts";
import type { Dataset } from "../engine/data/types.ts";
import type { TrainConfig } from "../engine/algorithms/config.ts";

/** A pipeline's plan on `procs` processes, as every rank builds it (no memory: only offsets). */
function pipelineAcross(algo: string, stages: number, procs: number, schedule?: string) {
  const model = schedule?.startsWith("interleaved") ? "mlp:784-32-16-16-16-16-16-16-10" : "mlp:784-32-16-16-10"; // a layer with weights per (virtual) stage
  const pipeline = { stages, microbatches: 4, ...(schedule ? { schedule: buildSchedule(schedule, stages, 4) } : {}) };
  const config = { algo, model, data: "digits", epochs: 1, batch: 32, workers: stages, executor: "threads", seed: 1, optimizer: defaultOptimizer(algo === "pipeoptim" ? "adam" : "momentum"), pipeline } as TrainConfig;
  const net = new Network(model, [1, 28, 28], 10);
  const trainCount = 64;
  const dataset = { name: "synthetic", source: "synthetic", shape: [1, 28, 28], classes: 10, train: { count: trainCount }, test: { count: 16 } } as unknown as Dataset;
  const planner = new ArenaPlanner();
  const input = { planner, net, config, dataset, programs: stages, batch: 32, trainCount, optimizer: config.optimizer, audit: false };
  const plan = algorithmNamed(algo).plan(input) as PipelinePlan;
  const setup = { programs: stages, batch: 32, layout: plan.layout, data: { trainCount } } as unknown as RunSetup<PipelineLayout>;
  const cross = crossProcessPlan(config, setup, plan, net, procs);
  return { plan, layout: plan.layout, cross, relay: (w: number) => cross.relay!(w), rankOf: (s: number) => rankOfProgram(stages, procs, s) };
}

/**
 * The words stage s wakes over the epoch, in its order: F hands forward; B/I gives the slot up (if
 * it is the stage's last use) and then hands the gradient back; W may give the slot up.
 */
function wakesOfStage(p: ReturnType<typeof pipelineAcross>, s: number): number[] {
  const { layout, plan } = p;
  const { windows, perWindow } = layout.shape;
  const units = windows * perWindow;
  const slots = layout.slots.length;
  const out: number[] = [];
  for (let w = 0; w < windows; w++) {
    for (const step of plan.lowered.steps[s]!) {
      const u = w * perWindow + step.microbatch;
      const release = layout.slotReleased + (s * slots + step.slot) * 4;
      if (step.kind === "F") out.push(layout.forwardDone + (step.stage * units + u) * 4);
      else if (step.kind === "W") {
        if (step.releasesSlot) out.push(release);
      } else {
        if (step.releasesSlot) out.push(release);
        out.push(layout.gradientDone + (step.stage * units + u) * 4);
      }
    }
  }
  return out;
}

const CASES = [
  ["gpipe", 2, 2],
  ["1f1b", 2, 2],
  ["1f1b", 3, 2],
  ["1f1b", 4, 2],
  ["1f1b", 4, 3],
  ["pipedream", 3, 3],
  ["pipeoptim", 3, 3],
  ["1f1b", 2, 2, "zb-h1"],
  ["1f1b", 3, 3, "zb-h1"],
  ["1f1b", 2, 2, "interleaved:2"],
  ["1f1b", 4, 2, "interleaved:2"],
] as const;

/** Who waits on a word stage s bumps: the next virtual stage (forward), the previous one (gradient), stage 0 (a slot release); stage −1: nobody. */
function waiterOf(p: ReturnType<typeof pipelineAcross>, word: number): { stage: number; kind: "forward" | "gradient" | "release"; vs: number; u: number } {
  const { layout } = p;
  const D = layout.stages.length;
  const units = layout.shape.windows * layout.shape.perWindow;
  if (word >= layout.slotReleased && word < layout.slotReleased + D * layout.slots.length * 4) return { stage: 0, kind: "release", vs: -1, u: -1 };
  const forward = word >= layout.forwardDone && word < layout.forwardDone + D * layout.stages[0]!.chunks.length * units * 4;
  const index = (word - (forward ? layout.forwardDone : layout.gradientDone)) / 4;
  const vs = Math.floor(index / units);
  const next = forward ? vs + 1 : vs - 1; // the waiting virtual stage; none past either end
  const S = D * layout.stages[0]!.chunks.length;
  return { stage: next >= 0 && next < S ? next % D : -1, kind: forward ? "forward" : "gradient", vs, u: index % units };
}

describe("every wake another process waits on is relayed to it, with what its waiter reads", () => {
  for (const [algo, stages, procs, schedule] of CASES) {
    test(`${algo}, ${stages} stages on ${procs} processes${schedule ? `, ${schedule}` : ""}`, () => {
      const p = pipelineAcross(algo, stages, procs, schedule);
      const { layout } = p;
      const owner = (u: number) => layout.slotOwner + 4 * p.plan.lowered.steps[0]!.find((st) => st.kind === "F" && st.microbatch === u % layout.shape.perWindow)!.slot;
      let crossing = 0;
      for (let s = 0; s < stages; s++) {
        for (const word of wakesOfStage(p, s)) {
          const waiter = waiterOf(p, word);
          const relay = p.relay(word);
          if (waiter.stage < 0 || p.rankOf(waiter.stage) === p.rankOf(s)) {
            expect(relay, `stage ${s}'s ${waiter.kind} word ${word}: no waiter in another process`).toBeNull();
            continue;
          }
          crossing++;
          expect(relay, `stage ${s}'s ${waiter.kind} word ${word}`).not.toBeNull();
          expect({ from: relay!.from, to: relay!.to }).toEqual({ from: p.rankOf(s), to: p.rankOf(waiter.stage) });
          if (waiter.kind === "release") expect(relay!.regions).toEqual([]);
          else if (waiter.kind === "gradient") expect(relay!.regions).toHaveLength(1);
          // Forward: the activations, the labels and, last, the unit's slot owner (every action checks it).
          else expect(relay!.regions.at(-1)).toEqual({ ptr: owner(waiter.u), bytes: 4 });
        }
      }
      expect(crossing).toBeGreaterThan(0);
    });
  }

  test("1F1B at D = 2 on two processes: 12 messages per batch of 4 microbatches, 4 of them slot releases", () => {
    const p = pipelineAcross("1f1b", 2, 2);
    const batches = p.layout.shape.windows * p.layout.shape.perWindow / 4;
    const kinds = [0, 1].flatMap((s) => wakesOfStage(p, s).filter((w) => p.relay(w) !== null).map((w) => waiterOf(p, w).kind));
    const count = (k: string) => kinds.filter((x) => x === k).length / batches;
    expect([count("forward"), count("gradient"), count("release")]).toEqual([4, 4, 4]);
  });
});

describe("a program queues exactly the wakes its main thread relays", () => {
  for (const [algo, stages, procs, schedule] of CASES) {
    test(`${algo}, ${stages} stages on ${procs} processes${schedule ? `, ${schedule}` : ""}`, () => {
      const p = pipelineAcross(algo, stages, procs, schedule);
      for (let rank = 0; rank < procs; rank++) {
        const outbox = new Outbox(new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }), 64);
        // The filter fits (else every word would be queued, correct but waking the main thread for nothing).
        expect(outbox.relayOnly(wordsToRelay(p.cross, rank)!)).toBe(true);
        for (let s = 0; s < stages; s++) {
          if (p.rankOf(s) !== rank) continue;
          for (const word of wakesOfStage(p, s)) {
            const relay = p.relay(word);
            expect(outbox.relays(word), `stage ${s} word ${word}`).toBe(relay !== null && relay.to !== rank);
          }
        }
      }
    });
  }
});

describe("a relayed wake is checked before anything is written", () => {
  // Rank 1 → rank 0: word 64 with regions of 4 and 8 bytes, word 68 with none; rank 2 → rank 0: word 72.
  const relays = new Map([
    [64, { from: 1, to: 0, regions: [{ ptr: 1024, bytes: 4 }, { ptr: 2048, bytes: 8 }] }],
    [68, { from: 1, to: 0, regions: [] }],
    [72, { from: 2, to: 0, regions: [] }],
  ]);
  const relayOf = (w: number) => relays.get(w) ?? null;
  const names = ["rank 0", "rank 1", "rank 2"];
  const message = (word: number, bytes: number) => {
    const body = new Uint8Array(4 + bytes);
    new DataView(body.buffer).setUint32(0, word, true);
    return body;
  };

  test("accepted exactly when the word is one this rank waits on from that sender and the body has its size", () => {
    fc.assert(
      fc.property(fc.constantFrom(0, 64, 65, 68, 72, 76, 2 ** 32 - 4), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 16 }), (word, from, bytes) => {
        const verdict = checkWake(message(word, bytes), from, 0, relayOf, names);
        const relay = relays.get(word);
        const right = relay !== undefined && relay.from === from && bytes === relay.regions.reduce((n, r) => n + r.bytes, 0);
        expect(typeof verdict !== "string").toBe(right);
        if (right) expect(verdict).toEqual({ word, regions: relay!.regions });
      }),
    );
  });

  test("each refusal names the sender, the word and what was wrong", () => {
    expect(checkWake(new Uint8Array(2), 1, 0, relayOf, names)).toBe("rank 1 relayed a wake of word 0 that rank 0 does not wait on from it");
    expect(checkWake(message(72, 0), 1, 0, relayOf, names)).toBe("rank 1 relayed a wake of word 72 that rank 0 does not wait on from it");
    expect(checkWake(message(65, 12), 1, 0, relayOf, names)).toMatch(/word 65 that rank 0 does not wait on/);
    expect(checkWake(message(64, 11), 1, 0, relayOf, names)).toBe("rank 1 relayed word 64 with 11 bytes where 12 were due");
  });
});
