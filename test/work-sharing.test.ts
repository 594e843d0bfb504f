/**
 * Deterministic dynamic work sharing: sync's workers claim the blocks of each batch, and every
 * program's evaluation the blocks of the test split, from a shared counter. Which worker computes
 * which block is left to timing (or to the deterministic scheduler's seed); the weights and the test
 * figures must not depend on it, nor on how many workers share the work.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { REDUCE_PIECE_FLOATS, reducePiece, reductionPieces, SPAN_HELPED, syncBlockRows } from "../engine/algorithms/sync-sgd.ts";
import { alignedSliceOf } from "../engine/runtime/split.ts";
import { Network } from "../engine/model/network.ts";
import { sameBits, testMemory, trainAndRead } from "./helpers.ts";
import { weightedSum } from "../engine/kernels/weighted-sum.ts";
import { ArenaPlanner } from "../engine/memory/arena.ts";
import { Control, planControl } from "../engine/runtime/control.ts";
import { CooperativeSync, interleave, type SchedulerState } from "../engine/runtime/deterministic.ts";
import { claimFromHomes, HOME, resetHome } from "../engine/runtime/claim.ts";
import { Rng } from "../engine/rng.ts";
import { runToEnd, type RoleProgram } from "../engine/runtime/sync.ts";

// Batch 160 = blocks of 64, 64 and 32; 250 samples leave a last batch of 90 (64 + 26).
const base: TrainConfig = {
  algo: "sync",
  model: "mlp:784-24-10",
  data: "synthetic:250",
  epochs: 2,
  batch: 160,
  workers: 1,
  executor: "deterministic",
  seed: 5,
  optimizer: defaultOptimizer("adam"),
};

describe("sync: blocks claimed dynamically, summed in block order", () => {
  test("1, 2 and 3 workers, any interleaving, threads or replay: bitwise the same weights and test figures", async () => {
    const reference = await trainAndRead(base);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3 }), fc.nat(), fc.constantFrom("deterministic", "threads"), async (workers, schedulerSeed, executor) => {
        const run = await trainAndRead({ ...base, workers, executor: executor as TrainConfig["executor"] }, { schedulerSeed });
        expect(sameBits(run.params, reference.params)).toBe(true);
        expect(run.summary.testLoss).toBe(reference.summary.testLoss);
        expect(run.summary.testAccuracy).toBe(reference.summary.testAccuracy);
      }),
      { numRuns: 10 },
    );
  });

  test("steps of a single block (batch 16; batch 200's last batch of 50): 2 and 3 workers = 1 worker, bitwise", async () => {
    for (const batch of [16, 200]) {
      const reference = await trainAndRead({ ...base, batch });
      for (const [workers, executor] of [[2, "deterministic"], [3, "threads"]] as const) {
        const run = await trainAndRead({ ...base, batch, workers, executor }, { schedulerSeed: workers });
        expect(sameBits(run.params, reference.params)).toBe(true);
      }
    }
  });

  test("the scheduler really hands the blocks out differently (the property above is not vacuous)", async () => {
    const shares = new Set<string>();
    for (const schedulerSeed of [1, 2, 3, 4, 5, 6]) {
      const session = await TrainingSession.open({ ...base, workers: 3 }, { schedulerSeed });
      try {
        const epoch = await session.trainEpoch();
        shares.add(epoch.results.map((r) => r.samples).join(","));
        expect(epoch.results.reduce((a, r) => a + r.samples, 0)).toBe(250);
      } finally {
        session.close();
      }
    }
    expect(shares.size).toBeGreaterThan(1);
  });
});

describe("sync: the first layer's weight rows of a block, computed by whoever is free", () => {
  // Batch 128 = two blocks of 64; mlp:784-24-10's first layer has 784 weight rows: 6 pieces per block.
  const twoBlocks: TrainConfig = { ...base, batch: 128, epochs: 1 };

  test("2 and 3 workers (one of them with no block of its own) = 1 worker, bitwise, under any interleaving", async () => {
    const reference = await trainAndRead(twoBlocks);
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 3 }), fc.nat(), async (workers, schedulerSeed) => {
        const run = await trainAndRead({ ...twoBlocks, workers }, { schedulerSeed });
        expect(sameBits(run.params, reference.params)).toBe(true);
      }),
      { numRuns: 6 },
    );
  });

  test("workers do compute pieces of each other's blocks (the property above is not vacuous)", async () => {
    let helped = 0;
    for (const schedulerSeed of [1, 2, 3, 4]) {
      const session = await TrainingSession.open({ ...twoBlocks, workers: 2 }, { schedulerSeed, trace: true });
      try {
        const epoch = await session.trainEpoch();
        for (const r of epoch.results) {
          const named = r.trace!.names.indexOf(SPAN_HELPED);
          for (let i = 0; i < r.trace!.spans.length; i += 3) if (r.trace!.spans[i] === named) helped++;
        }
      } finally {
        session.close();
      }
    }
    expect(helped).toBeGreaterThan(0);
  });
});

describe("sync: the reduction and the update claimed piece by piece", () => {
  test("the pieces tile the range in order, each but the last a whole number of 16-float chunks", () => {
    fc.assert(
      fc.property(fc.nat(1 << 20), fc.nat(1 << 20), fc.integer({ min: 1, max: 64 }), (lo, length, chunks) => {
        const [start, size] = [lo * 16, chunks * 16];
        const end = start + length;
        const pieces = Math.ceil(length / size);
        let at = start;
        for (let p = 0; p < pieces; p++) {
          const piece = reducePiece(start, end, p, size);
          expect(piece.lo).toBe(at);
          expect(piece.hi > piece.lo && (piece.hi === end || (piece.hi - piece.lo) % 16 === 0)).toBe(true);
          at = piece.hi;
        }
        expect(at).toBe(end);
      }),
    );
  });

  test("each worker's home is the pieces of its own slice; together they tile the vector once, in order", () => {
    fc.assert(
      fc.property(fc.nat(300_000), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 64 }), (floats, workers, chunks) => {
        const slices = Array.from({ length: workers }, (_, w) => alignedSliceOf(floats, workers, w));
        const { pieces, homes } = reductionPieces(slices, chunks * 16);
        let at = 0;
        homes.forEach((home, w) => {
          expect(home.lo).toBe(w === 0 ? 0 : homes[w - 1]!.hi);
          for (let p = home.lo; p < home.hi; p++) {
            expect(pieces[p]!.lo).toBe(p === home.lo ? slices[w]!.lo : at);
            expect(pieces[p]!.hi > pieces[p]!.lo).toBe(true);
            at = pieces[p]!.hi;
          }
          if (home.hi > home.lo) expect(at).toBe(slices[w]!.hi);
        });
        expect(at).toBe(floats);
        expect(homes.at(-1)!.hi).toBe(pieces.length);
      }),
    );
  });

  // An oracle that shares no code with sync's reduction: one pipeline stage summing the gradients of
  // its microbatches (rounding differs from one GEMM per block, nothing else). The model has several
  // pieces, the batch several blocks, and two workers claim both.
  test("a step is SGD on the whole batch: sync with blocks and pieces = one pipeline stage, to float tolerance", async () => {
    const model = "mlp:784-24-10";
    expect(Math.ceil(new Network(model, [784], 10).paramFloats / REDUCE_PIECE_FLOATS)).toBeGreaterThan(2);
    // 320 samples: two whole batches of 160 (blocks of 64, 64, 32); the stage cuts a last partial batch differently.
    const config = { ...base, model, data: "synthetic:320", epochs: 1, optimizer: defaultOptimizer("momentum") };
    const stage = await trainAndRead({ ...config, algo: "gpipe", pipeline: { stages: 1, microbatches: 5 } });
    for (const [workers, executor] of [[1, "deterministic"], [2, "threads"]] as const) {
      const sync = await trainAndRead({ ...config, workers, executor }, { schedulerSeed: 3 });
      const maxDiff = sync.params.reduce((m, v, i) => Math.max(m, Math.abs(v - stage.params[i]!)), 0);
      expect({ workers, close: maxDiff < 1e-5 }).toEqual({ workers, close: true }); // measured 1.5e-8
    }
  });
});

test("block size: at most 64, one block up to a batch of 32, two or more above", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65536 }), (batch) => {
      const rows = syncBlockRows(batch);
      const blocks = Math.ceil(batch / rows);
      expect(rows).toBeLessThanOrEqual(64);
      if (batch <= 32) expect(blocks).toBe(1);
      else expect(rows % 16 === 0 && blocks >= 2).toBe(true);
    }),
  );
});

test("the block sum may be taken in place, into block 0's vector: bitwise as into a vector of its own", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 200 }), fc.array(fc.float({ noNaN: true, min: -1e3, max: 1e3 }), { minLength: 1000, maxLength: 1000 }), (blocks, floats, pool) => {
      const m = testMemory(1);
      const sources = Array.from({ length: blocks }, (_, b) => m.put(Array.from({ length: floats }, (_, i) => pool[(b * 211 + i) % pool.length]!)));
      const args = { tensors: m.floats(blocks), weights: m.floats(blocks) };
      const apart = m.floats(floats);
      weightedSum(m.k, m.memory, args, apart, sources, 1, floats);
      weightedSum(m.k, m.memory, args, sources[0]!, sources, 1, floats);
      expect(sameBits(m.read(sources[0]!, floats), m.read(apart, floats))).toBe(true);
    }),
    { numRuns: 60 },
  );
});

describe("evaluation: test blocks claimed dynamically", () => {
  test("every test sample is evaluated once, whatever the worker count, for every family", async () => {
    for (const algo of ["hogwild", "dsgd"] as const) {
      const config: TrainConfig = { ...base, algo, epochs: 0, batch: 16, data: "synthetic:300", optimizer: defaultOptimizer("momentum") };
      const one = await trainAndRead({ ...config, workers: 1 });
      for (const workers of [2, 4]) {
        const many = await trainAndRead({ ...config, workers }, { schedulerSeed: workers });
        expect(many.summary.testLoss).toBe(one.summary.testLoss);
        expect(many.summary.testAccuracy).toBe(one.summary.testAccuracy);
      }
    }
  });
});

describe("Hogwild!: batches claimed, not dealt", () => {
  // 250 samples in batches of 16: 15 full batches and one of 10.
  const hogwild: TrainConfig = { ...base, algo: "hogwild", batch: 16, optimizer: defaultOptimizer("sgd") };

  test("every epoch trains each batch once, for 1 to 4 workers and any interleaving, threads or replay", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.nat(), fc.constantFrom("deterministic", "threads"), async (workers, schedulerSeed, executor) => {
        const session = await TrainingSession.open({ ...hogwild, workers, executor: executor as TrainConfig["executor"] }, { schedulerSeed });
        try {
          for (let e = 0; e < 2; e++) {
            const epoch = await session.trainEpoch();
            expect(epoch.samples).toBe(250);
            expect(epoch.updates).toBe(16);
          }
        } finally {
          session.close();
        }
      }),
      { numRuns: 8 },
    );
  });

  test("who trains how many batches is the scheduler's choice, not a fixed deal", async () => {
    const shares = new Set<string>();
    for (const schedulerSeed of [1, 2, 3, 4, 5, 6]) {
      const session = await TrainingSession.open({ ...hogwild, workers: 3 }, { schedulerSeed });
      try {
        shares.add((await session.trainEpoch()).results.map((r) => r.updates).join(","));
      } finally {
        session.close();
      }
    }
    expect(shares.size).toBeGreaterThan(1);
  });
});

describe("claiming from homes: each worker's own items first, then the others' that are left", () => {
  /** A control block for `workers` in a shared memory, and the deterministic executor's syncs for them. */
  function homesRun(workers: number) {
    const planner = new ArenaPlanner();
    const layout = planControl(planner, workers);
    const pages = Math.ceil(planner.finish().usedBytes / 65536);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const control = new Control(memory, layout, workers);
    const state: SchedulerState = { arrived: 0, generation: 0, progress: 0 };
    const syncs = Array.from({ length: workers }, () => new CooperativeSync(state, workers, control, memory));
    return { control, syncs, progress: () => state.progress };
  }
  /** Contiguous homes of the given sizes over items [0, Σ sizes). */
  const homesOf = (sizes: number[]) => sizes.map((n, i) => ({ lo: sizes.slice(0, i).reduce((a, b) => a + b, 0), hi: sizes.slice(0, i + 1).reduce((a, b) => a + b, 0) }));

  test("any interleaving, any home sizes, twice after a reset: every item once; a worker's own items come first, in order", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(5), { minLength: 1, maxLength: 5 }), fc.integer(), (sizes, seed) => {
        const { control, syncs, progress } = homesRun(sizes.length);
        const homes = homesOf(sizes);
        for (let pass = 0; pass < 2; pass++) {
          function* claimer(w: number): RoleProgram<number[]> {
            const mine: number[] = [];
            for (let item; (item = yield* claimFromHomes(syncs[w]!, control, HOME.blocks, homes, 0, w)) >= 0; ) mine.push(item);
            return mine;
          }
          const claims = interleave(sizes.map((_, w) => claimer(w)), Rng.derive(seed, `homes${pass}`), progress);
          expect(claims.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: homes.at(-1)!.hi }, (_, i) => i));
          claims.forEach((mine, w) => {
            const own = mine.filter((item) => item >= homes[w]!.lo && item < homes[w]!.hi);
            expect(mine.slice(0, own.length)).toEqual(own);
            expect(own).toEqual([...own].sort((a, b) => a - b));
          });
          sizes.forEach((_, w) => resetHome(control, w, HOME.blocks));
        }
      }),
    );
  });

  test("workers that keep pace (claims in turn) each compute exactly their own home, not every other item", () => {
    const sizes = [3, 3, 2];
    const { control, syncs } = homesRun(sizes.length);
    const homes = homesOf(sizes);
    const claims: number[][] = sizes.map(() => []);
    for (let done = 0; done < sizes.length; ) {
      done = 0;
      for (let w = 0; w < sizes.length; w++) {
        const item = runToEnd(claimFromHomes(syncs[w]!, control, HOME.pieces, homes, 0, w));
        if (item < 0) done++;
        else claims[w]!.push(item);
      }
    }
    expect(claims).toEqual([[0, 1, 2], [3, 4, 5], [6, 7]]);
  });
});
