/**
 * Pipelines' wakes across processes: what the receiving process bumps when the sender coalesces a
 * sweep's wakes into one message per rank and carries a later stage's slot release inside its
 * gradient hand-off, against relaying every wake on its own; and wake messages that are malformed.
 * No processes or server here: the plan and the message format, as both ranks use them.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { crossProcessPlan, type Relay } from "../engine/distributed/exchange.ts";
import { acceptWakes, readWakeMessage, wakeMessage, wakesByRank, type Wake } from "../engine/distributed/wake-relay.ts";
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
  return { plan, layout: plan.layout, relay: (w: number) => cross.relay!(w), rankOf: (s: number) => rankOfProgram(stages, procs, s) };
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

/** Per receiving rank, the words it bumps, in order, when `sweeps` (the outbox's takes) go out as the relay sends them. */
function bumpsAtReceivers(sweeps: number[][], rank: number, relay: (w: number) => Relay | null, eachAlone: boolean): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const sweep of sweeps) {
    const messages = eachAlone
      ? sweep.flatMap((word) => {
          const r = relay(word);
          return r && r.to !== rank ? [[r.to, [{ word, relay: { ...r, carries: undefined } }]] as const] : [];
        })
      : [...wakesByRank(sweep, rank, relay)];
    for (const [to, wakes] of messages) {
      const bumps = out.get(to) ?? [];
      for (const w of wakes) bumps.push(...(w.relay.carries ?? []), w.word);
      out.set(to, bumps);
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

describe("coalesced and carried wakes bump exactly what relaying each wake alone bumps, in the same order", () => {
  for (const [algo, stages, procs, schedule] of CASES) {
    test(`${algo}, ${stages} stages on ${procs} processes${schedule ? `, ${schedule}` : ""}`, () => {
      const p = pipelineAcross(algo, stages, procs, schedule);
      const perStage = Array.from({ length: stages }, (_, s) => wakesOfStage(p, s));
      // Each rank's outbox: its stages' wakes interleaved in any order that keeps each stage's own,
      // taken in sweeps of any length.
      const arbitrarySweeps = (rank: number) => {
        const mine = perStage.flatMap((words, s) => (p.rankOf(s) === rank ? [words] : []));
        const total = mine.reduce((n, w) => n + w.length, 0);
        return fc.tuple(fc.array(fc.nat(mine.length - 1), { minLength: total, maxLength: total }), fc.array(fc.boolean(), { minLength: total, maxLength: total })).map(([picks, cuts]) => {
          const next = mine.map(() => 0);
          const merged: number[] = [];
          for (const pick of picks) {
            const s = [...mine.keys()].map((k) => (pick + k) % mine.length).find((k) => next[k]! < mine[k]!.length)!;
            merged.push(mine[s]![next[s]!++]!);
          }
          const sweeps: number[][] = [[]];
          merged.forEach((word, i) => {
            sweeps.at(-1)!.push(word);
            if (cuts[i]) sweeps.push([]);
          });
          return sweeps;
        });
      };
      for (let rank = 0; rank < procs; rank++) {
        fc.assert(
          fc.property(arbitrarySweeps(rank), (sweeps) => {
            const alone = bumpsAtReceivers(sweeps, rank, p.relay, true);
            const sent = bumpsAtReceivers(sweeps, rank, p.relay, false);
            // Per sending stage, the receiver's bumps of its words in order: the same either way.
            for (let s = 0; s < stages; s++) {
              if (p.rankOf(s) !== rank) continue;
              const ofStage = new Set(perStage[s]);
              for (const to of new Set([...alone.keys(), ...sent.keys()])) {
                expect((sent.get(to) ?? []).filter((w) => ofStage.has(w))).toEqual((alone.get(to) ?? []).filter((w) => ofStage.has(w)));
              }
            }
          }),
          { numRuns: 30 },
        );
      }
    });
  }

  test("1f1b at D = 2: stage 1's every release rides in a gradient hand-off; zb-h1's deferred W releases keep their own message", () => {
    const count = (p: ReturnType<typeof pipelineAcross>) => {
      const words = wakesOfStage(p, 1);
      const relayed = words.filter((w) => p.relay(w) && !p.relay(w)!.carried).length;
      const carried = words.filter((w) => p.relay(w)?.carried).length;
      return { relayed, carried, carriedBy: words.reduce((n, w) => n + (p.relay(w)?.carries?.length ?? 0), 0) };
    };
    const plain = count(pipelineAcross("1f1b", 2, 2));
    expect(plain.carried).toBeGreaterThan(0);
    expect(plain.carriedBy).toBe(plain.carried);
    expect(plain.relayed).toBe(plain.carried); // a gradient per release, nothing else
    const zb = count(pipelineAcross("1f1b", 2, 2, "zb-h1"));
    expect(zb.carried).toBe(0);
    expect(zb.carriedBy).toBe(0);
  });
});

describe("wake messages", () => {
  // Rank 1 → rank 0: word 64 with regions of 4 and 8 bytes, word 68 with none, word 72 carries 76
  // (never relayed alone); rank 2 → rank 0: word 80.
  const relays = new Map<number, Relay>([
    [64, { from: 1, to: 0, regions: [{ ptr: 1024, bytes: 4 }, { ptr: 2048, bytes: 8 }] }],
    [68, { from: 1, to: 0, regions: [] }],
    [72, { from: 1, to: 0, regions: [{ ptr: 3072, bytes: 4 }], carries: [76] }],
    [76, { from: 1, to: 0, regions: [], carried: true }],
    [80, { from: 2, to: 0, regions: [] }],
  ]);
  const relayOf = (w: number) => relays.get(w) ?? null;
  const memory = () => new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const fill = (m: WebAssembly.Memory, seed: number) => {
    const bytes = new Uint8Array(m.buffer);
    for (const r of [1024, 2048, 3072]) for (let i = 0; i < 16; i++) bytes[r + i] = (seed * 31 + r + i * 7) & 255;
  };
  const body = (m: WebAssembly.Memory, words: number[]) => {
    const parts = wakeMessage(m, words.map((word): Wake => ({ word, relay: relayOf(word)! })));
    return Uint8Array.from(parts.flatMap((p) => [...p]));
  };
  const bumps = (m: WebAssembly.Memory) => [64, 68, 72, 76].map((w) => new Int32Array(m.buffer)[w >> 2]);
  const regionBytes = (m: WebAssembly.Memory) => [1024, 2048, 3072].map((r) => [...new Uint8Array(m.buffer, r, 12)]);

  test("records arrive written and bumped as they were sent, carried words with them, in any sequence", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(64, 68, 72), { minLength: 1, maxLength: 8 }), (words) => {
        const sender = memory();
        fill(sender, words.length);
        const receiver = memory();
        expect(acceptWakes(receiver, body(sender, words), 1, 0, relayOf)).toBeNull();
        const times = (w: number) => words.filter((x) => x === w).length;
        expect(bumps(receiver)).toEqual([times(64), times(68), times(72), times(72)]);
        // The regions of the words sent hold the sender's bytes; the others were not touched.
        const sent = new Set(words.flatMap((w) => relays.get(w)!.regions.map((r) => r.ptr)));
        for (const { ptr, bytes } of [...relays.values()].flatMap((r) => r.regions)) {
          const got = [...new Uint8Array(receiver.buffer, ptr, bytes)];
          expect(got).toEqual(sent.has(ptr) ? [...new Uint8Array(sender.buffer, ptr, bytes)] : new Array(bytes).fill(0));
        }
      }),
    );
  });

  test("a malformed message is refused whole, naming the record, and nothing of it is written or bumped", () => {
    const sender = memory();
    fill(sender, 3);
    const good = body(sender, [64, 68, 72]);
    const cases: [string, Uint8Array, number, RegExp][] = [
      ["empty", new Uint8Array(0), 1, /an empty wake message/],
      ["cut inside a record's regions", good.subarray(0, good.length - 2), 1, /record 2 \(word 72\) has 2 bytes left where 4 are due/],
      ["cut inside a word", good.subarray(0, 4 + 12 + 2), 1, /record 1 at byte 16 is cut short: 2 bytes left/],
      ["trailing bytes", Uint8Array.from([...good, 9, 9]), 1, /record 3 at byte \d+ is cut short/],
      ["a word this rank does not wait on", Uint8Array.from([...good, 96, 0, 0, 0]), 1, /record 3 names word 96, which is not one rank 0 waits on from rank 1/],
      ["a word another rank sends", Uint8Array.from([...good, 80, 0, 0, 0]), 1, /record 3 names word 80/],
      ["a carried word on its own", Uint8Array.from([...good, 76, 0, 0, 0]), 1, /record 3 names word 76/],
      ["a misaligned word", Uint8Array.from([...good, 65, 0, 0, 0]), 1, /record 3 names word 65/],
      ["the right words from the wrong sender", good, 2, /record 0 names word 64, which is not one rank 0 waits on from rank 2/],
    ];
    for (const [what, bytes, from, reason] of cases) {
      const receiver = memory();
      expect(acceptWakes(receiver, bytes, from, 0, relayOf) ?? "accepted", what).toMatch(reason);
      expect(bumps(receiver), what).toEqual([0, 0, 0, 0]);
      expect(regionBytes(receiver).flat().every((b) => b === 0), what).toBe(true);
    }
  });

  test("every cut that does not end on a record boundary is refused", () => {
    const sender = memory();
    fill(sender, 1);
    fc.assert(
      fc.property(fc.array(fc.constantFrom(64, 68, 72), { minLength: 1, maxLength: 6 }), fc.nat(), (words, at) => {
        const whole = body(sender, words);
        const boundaries = new Set([0]);
        let end = 0;
        for (const w of words) boundaries.add((end += 4 + relays.get(w)!.regions.reduce((n, r) => n + r.bytes, 0)));
        const cut = at % whole.length;
        const verdict = readWakeMessage(whole.subarray(0, cut), 1, 0, relayOf);
        expect(typeof verdict === "string").toBe(!boundaries.has(cut) || cut === 0);
      }),
    );
  });
});
