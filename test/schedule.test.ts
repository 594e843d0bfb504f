/**
 * Pipeline schedules on grids of (stages D, microbatches M), as PyTorch's pipelining tests do:
 *  - the validator accepts every generated schedule and rejects each kind of mutation;
 *  - the simulator reproduces the bubble formulas: GPipe = 1F1B = (D−1)/(M+D−1) for any f, b
 *    (makespan (M+D−1)(f+b), the lower bound of any schedule with full backwards), ZB-H1 =
 *    (D−1)/(3M+D−1) with f = i = w and M ≥ D;
 *  - 1F1B keeps min(D−k, M) activations on stage k; async 1F1B's versions follow weight stashing;
 *  - D = 1 is plain sequential training;
 *  - `skein schedule` prints, writes JSON and SVG, and turns bad input into one-line UserErrors.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { buildSchedule, interleaved, oneFOneB, peakInFlight, peakStashedVersions, SCHEDULES, type Action, type Schedule } from "../engine/algorithms/pipeline/schedule.ts";
import { NotProgressingError, simulate } from "../engine/algorithms/pipeline/simulate.ts";
import { validateSchedule } from "../engine/algorithms/pipeline/validate.ts";
import { parseScheduleJson } from "../engine/algorithms/pipeline/schedule-file.ts";
import { scheduleCommand } from "../engine/cli/schedule-command.ts";
import { UserError } from "../engine/errors.ts";
import { tempFolders } from "./tempdir.ts";

const NAMES = Object.keys(SCHEDULES);
const GRID: [number, number][] = [];
for (let D = 1; D <= 8; D++) for (let M = 1; M <= 32; M++) GRID.push([D, M]);

const close = (a: number, b: number) => expect(Math.abs(a - b)).toBeLessThan(1e-9 * Math.max(1, Math.abs(b)));
const clone = (s: Schedule): Schedule => ({ ...s, actions: s.actions.map((list) => list.map((a) => ({ ...a }))), maxInFlight: [...s.maxInFlight] });
const isGrad = (a: Action) => a.kind === "B" || a.kind === "I";
const costsArb = fc.record({ f: fc.double({ min: 0.1, max: 10, noNaN: true }), b: fc.double({ min: 0.1, max: 10, noNaN: true }) });
const sizeArb = fc.record({ D: fc.integer({ min: 1, max: 8 }), M: fc.integer({ min: 1, max: 32 }) });

describe("generated schedules are valid", () => {
  test.each(NAMES)("%s on every D in 1..8, M in 1..32", (name) => {
    for (const [D, M] of GRID) {
      const s = SCHEDULES[name]!(D, M);
      expect({ D, M, errors: validateSchedule(s) }).toEqual({ D, M, errors: [] });
      expect(s.actions.every((list) => list.filter((a) => a.kind === "F").length === M)).toBe(true);
    }
  });

  test.each(NAMES)("%s declares a tight bound: peak in-flight = maxInFlight on every stage", (name) => {
    for (const [D, M] of GRID) {
      const s = SCHEDULES[name]!(D, M);
      expect(simulate(s, { f: 1, b: 2 }).peakInFlight).toEqual(s.maxInFlight);
    }
  });
});

describe("the validator rejects mutated schedules", () => {
  /** Each mutation returns the broken schedule and the message it must produce, or null where it does not apply. */
  type Mutation = (s: Schedule, pick: number) => { s: Schedule; expect: RegExp } | null;
  const choose = <T>(xs: T[], pick: number): T | undefined => (xs.length === 0 ? undefined : xs[pick % xs.length]);

  const MUTATIONS: Record<string, Mutation> = {
    "swap an F after its backward": (s0, pick) => {
      const s = clone(s0);
      const k = pick % s.stages;
      const list = s.actions[k]!;
      const m = pick % s.microbatches;
      const f = list.findIndex((a) => a.kind === "F" && a.microbatch === m);
      const g = list.findIndex((a) => isGrad(a) && a.microbatch === m);
      [list[f], list[g]] = [list[g]!, list[f]!];
      return { s, expect: new RegExp(`stage ${k}: [BI] of microbatch ${m} before its F`) };
    },
    "drop an action": (s0, pick) => {
      const s = clone(s0);
      const k = pick % s.stages;
      const [gone] = s.actions[k]!.splice(pick % s.actions[k]!.length, 1);
      const what = gone!.kind === "F" ? `no F of microbatch ${gone!.microbatch}` : gone!.kind === "W" ? `I of microbatch ${gone!.microbatch} without its W` : gone!.kind === "I" ? `W of microbatch ${gone!.microbatch} without its I` : `no B \\(or I and W\\) of microbatch ${gone!.microbatch}`;
      return { s, expect: new RegExp(`stage ${k}: ${what}`) };
    },
    "duplicate an action": (s0, pick) => {
      const s = clone(s0);
      const k = pick % s.stages;
      const list = s.actions[k]!;
      const a = list[pick % list.length]!;
      list.splice((pick * 7) % (list.length + 1), 0, { ...a });
      return { s, expect: new RegExp(`stage ${k}: ${a.kind} of microbatch ${a.microbatch} appears twice`) };
    },
    "move a backward before the next stage's": (s0, pick) => {
      // B(k,m) placed before F(k,m') where stage k+1 runs F(m') before B(m): B(k,m) waits for
      // B(k+1,m), which waits for F(k+1,m'), which waits for F(k,m'), which waits for B(k,m).
      const candidates: [number, number, number][] = [];
      for (let k = 0; k + 1 < s0.stages; k++) {
        const down = s0.actions[k + 1]!;
        for (let m = 0; m < s0.microbatches; m++) {
          const g = down.findIndex((a) => isGrad(a) && a.microbatch === m);
          for (let p = 0; p < g; p++) if (down[p]!.kind === "F" && down[p]!.microbatch > m) candidates.push([k, m, down[p]!.microbatch]);
        }
      }
      const c = choose(candidates, pick);
      if (!c) return null;
      const [k, m, later] = c;
      const s = clone(s0);
      const list = s.actions[k]!;
      const [grad] = list.splice(list.findIndex((a) => isGrad(a) && a.microbatch === m), 1);
      list.splice(list.findIndex((a) => a.kind === "F" && a.microbatch === later), 0, grad!);
      return { s, expect: /^not progressing at stage \d+ action #\d+ [FBI]\d+ \(waits for/ };
    },
    "exceed maxInFlight": (s0, pick) => {
      // Pull a forward ahead of the backward (or W) just before it, where the stage is at its bound.
      const candidates: [number, number][] = [];
      s0.actions.forEach((list, k) => {
        let live = 0;
        list.forEach((a, p) => {
          const next = list[p + 1];
          if ((a.kind === "B" || a.kind === "W") && live === s0.maxInFlight[k] && next?.kind === "F") candidates.push([k, p]);
          if (a.kind === "F") live++;
          else if (a.kind === "B" || a.kind === "W") live--;
        });
      });
      const s = clone(s0);
      const c = choose(candidates, pick);
      if (c) {
        const list = s.actions[c[0]]!;
        [list[c[1]], list[c[1] + 1]] = [list[c[1] + 1]!, list[c[1]]!];
        return { s, expect: new RegExp(`stage ${c[0]}: ${s0.maxInFlight[c[0]]! + 1} live activations after F of microbatch \\d+ \\(action #${c[1]}\\), above its maxInFlight`) };
      }
      // All forwards first (GPipe): declare one less than the schedule needs.
      const k = pick % s.stages;
      s.maxInFlight[k]!--;
      return { s, expect: new RegExp(`stage ${k}: ${s0.maxInFlight[k]} live activations after F of microbatch \\d+ \\(action #\\d+\\), above its maxInFlight ${s.maxInFlight[k]}`) };
    },
    "change a backward's weight version": (s0, pick) => {
      if (s0.flush) return null;
      const s = clone(s0);
      const k = pick % s.stages;
      const list = s.actions[k]!;
      const grads = list.filter(isGrad);
      const a = grads[pick % grads.length]!;
      a.version = a.version! + 1 + (pick % 3);
      return { s, expect: new RegExp(`stage ${k}: B of microbatch ${a.microbatch} uses version \\d+ but its F used \\d+`) };
    },
  };

  test.each(Object.keys(MUTATIONS))("%s: detected on random schedules", (kind) => {
    let applied = 0;
    fc.assert(
      fc.property(fc.constantFrom(...NAMES), sizeArb, fc.nat(), (name, { D, M }, pick) => {
        const mutated = MUTATIONS[kind]!(SCHEDULES[name]!(D, M), pick);
        if (!mutated) return;
        applied++;
        const errors = validateSchedule(mutated.s);
        expect(errors.length).toBeGreaterThan(0);
        expect(errors.some((e) => mutated.expect.test(e))).toBe(true);
      }),
      { numRuns: 300 },
    );
    expect(applied).toBeGreaterThan(30);
  });

  test("a deadlock is reported by the simulator too", () => {
    const s = clone(SCHEDULES["gpipe"]!(3, 2));
    // Stage 0 waits for B0 from stage 1 before sending F1; stage 1 needs F1 before its B0.
    s.actions[0] = [s.actions[0]![0]!, s.actions[0]![2]!, s.actions[0]![1]!, s.actions[0]![3]!];
    expect(() => simulate(s, { f: 1, b: 1 })).toThrow(NotProgressingError);
    expect(() => simulate(s, { f: 1, b: 1 })).toThrow(/not progressing at stage 0 action #1 B0 \(waits for the gradient of 0 from stage 1\)/);
  });

  test("shape errors: wrong stage field, microbatch out of range, missing stage list", () => {
    const s = clone(SCHEDULES["1f1b"]!(2, 2));
    s.actions[1]![0]!.stage = 0;
    expect(validateSchedule(s)).toContain("stage 1: action #0 F of microbatch 0 names stage 0");
    const t = clone(SCHEDULES["1f1b"]!(2, 2));
    t.actions[0]![0]!.microbatch = 5;
    expect(validateSchedule(t)[0]).toMatch(/microbatch 5, outside 0..1/);
    expect(validateSchedule({ ...t, actions: t.actions.slice(1) })).toEqual(["expected 2 per-stage action lists, got 1"]);
  });
});

describe("the simulator reproduces the bubble formulas", () => {
  test("GPipe and 1F1B: makespan (M+D−1)(f+b), bubble (D−1)/(M+D−1) on the whole grid (f=1, b=2)", () => {
    for (const [D, M] of GRID) {
      for (const name of ["gpipe", "1f1b", "async-1f1b"]) {
        const sim = simulate(SCHEDULES[name]!(D, M), { f: 1, b: 2 });
        close(sim.makespan, 3 * (M + D - 1));
        close(sim.bubbleFraction, (D - 1) / (M + D - 1));
      }
    }
  });

  test("GPipe = 1F1B for any costs f, b: the (M+D−1)(f+b) lower bound", () => {
    fc.assert(
      fc.property(sizeArb, costsArb, ({ D, M }, costs) => {
        const g = simulate(SCHEDULES["gpipe"]!(D, M), costs);
        const o = simulate(SCHEDULES["1f1b"]!(D, M), costs);
        close(g.makespan, (M + D - 1) * (costs.f + costs.b));
        close(o.makespan, g.makespan);
        close(g.bubbleFraction, (D - 1) / (M + D - 1));
        close(o.bubbleFraction, (D - 1) / (M + D - 1));
      }),
      { numRuns: 200 },
    );
  });

  test("GPipe with communication latency c: makespan (M+D−1)(f+b) + 2(D−1)c; 1F1B never below it", () => {
    fc.assert(
      fc.property(sizeArb, costsArb, fc.double({ min: 0, max: 5, noNaN: true }), ({ D, M }, costs, comm) => {
        const bound = (M + D - 1) * (costs.f + costs.b) + 2 * (D - 1) * comm;
        close(simulate(SCHEDULES["gpipe"]!(D, M), { ...costs, comm }).makespan, bound);
        expect(simulate(SCHEDULES["1f1b"]!(D, M), { ...costs, comm }).makespan).toBeGreaterThanOrEqual(bound - 1e-9);
      }),
      { numRuns: 100 },
    );
  });

  test("busy + idle = makespan per stage; the timeline covers every action once, never overlapping on a stage", () => {
    for (const name of NAMES) {
      const s = SCHEDULES[name]!(5, 9);
      const sim = simulate(s, { f: 1.5, b: 2.5, comm: 0.25 });
      expect(sim.timeline.length).toBe(s.actions.reduce((n, l) => n + l.length, 0));
      for (const [k, st] of sim.perStage.entries()) {
        close(st.busy + st.idle, sim.makespan);
        const mine = sim.timeline.filter((e) => e.stage === k);
        for (let j = 1; j < mine.length; j++) expect(mine[j]!.start).toBeGreaterThanOrEqual(mine[j - 1]!.end - 1e-12);
      }
    }
  });
});

describe("1F1B", () => {
  test("peak in-flight activations on stage k = min(D − k, M); GPipe keeps all M", () => {
    for (const [D, M] of GRID) {
      expect(simulate(SCHEDULES["1f1b"]!(D, M), { f: 1, b: 2 }).peakInFlight).toEqual(Array.from({ length: D }, (_, k) => Math.min(D - k, M)));
      expect(simulate(SCHEDULES["gpipe"]!(D, M), { f: 1, b: 2 }).peakInFlight).toEqual(new Array(D).fill(M));
    }
  });

  test("stage k runs min(D−k−1, M) warm-up forwards, then alternates, then drains", () => {
    const s = SCHEDULES["1f1b"]!(4, 6);
    const text = (k: number) => s.actions[k]!.map((a) => `${a.kind}${a.microbatch}`).join(" ");
    expect(text(0)).toBe("F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
    expect(text(3)).toBe("F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  });
});

describe("asynchronous 1F1B (PipeDream weight stashing)", () => {
  test("each backward uses exactly its forward's version; a forward uses every update applied before it", () => {
    for (const [D, M] of GRID) {
      const s = SCHEDULES["async-1f1b"]!(D, M);
      expect(s.flush).toBe(false);
      for (const [k, list] of s.actions.entries()) {
        let backwards = 0;
        const fVersion = new Map<number, number>();
        for (const a of list) {
          if (a.kind === "F") {
            expect(a.version).toBe(backwards);
            // Weights D−k−1 updates behind microbatch m's own position.
            expect(a.version).toBe(Math.max(0, a.microbatch - (D - k - 1)));
            fVersion.set(a.microbatch, a.version!);
          } else {
            expect(a.version).toBe(fVersion.get(a.microbatch)!);
            backwards++;
          }
        }
      }
    }
  });

  test("stage k stashes at most D−k weight versions, exactly D−k once M ≥ 2D", () => {
    for (const [D, M] of GRID) {
      const versions = peakStashedVersions(SCHEDULES["async-1f1b"]!(D, M));
      versions.forEach((v, k) => {
        expect(v).toBeLessThanOrEqual(D - k);
        if (M >= 2 * D) expect(v).toBe(D - k);
      });
    }
  });

  test("a flushed schedule may not use a version other than 0", () => {
    const s = clone(SCHEDULES["1f1b"]!(2, 3));
    s.actions[0]![1]!.version = 1;
    expect(validateSchedule(s)).toContain("stage 0: F of microbatch 1 uses version 1, but a flushed schedule updates only after the batch (version 0)");
  });
});

describe("D = 1 is sequential training", () => {
  test.each([1, 2, 7, 32])("M = %d: F,B per microbatch (F,I,W for zb-h1), no bubble", (M) => {
    const seq = (parts: string[]) => Array.from({ length: M }, (_, m) => parts.map((p) => `${p}${m}`)).flat().join(" ");
    const text = (name: string) => SCHEDULES[name]!(1, M).actions[0]!.map((a) => `${a.kind}${a.microbatch}`).join(" ");
    expect(text("1f1b")).toBe(seq(["F", "B"]));
    expect(text("async-1f1b")).toBe(seq(["F", "B"]));
    expect(text("zb-h1")).toBe(seq(["F", "I", "W"]));
    for (const name of NAMES) {
      const sim = simulate(SCHEDULES[name]!(1, M), { f: 1, b: 2 });
      close(sim.makespan, 3 * M);
      expect(sim.bubbleFraction).toBe(0);
    }
  });
});

describe("ZB-H1", () => {
  test("with f = i = w: makespan 3M+D−1 and bubble (D−1)/(3M+D−1) when M ≥ D; below 1F1B's bubble whenever D ≥ 2", () => {
    for (const [D, M] of GRID) {
      const zb = simulate(SCHEDULES["zb-h1"]!(D, M), { f: 1, b: 2, i: 1, w: 1 });
      const ref = simulate(SCHEDULES["1f1b"]!(D, M), { f: 1, b: 2 });
      if (M >= D) {
        close(zb.makespan, 3 * M + D - 1);
        close(zb.bubbleFraction, (D - 1) / (3 * M + D - 1));
      }
      if (D >= 2) expect(zb.bubbleFraction).toBeLessThan(ref.bubbleFraction);
    }
  });

  test("same peak activation memory as 1F1B: no stage above min(D, M), the first stage's 1F1B peak", () => {
    for (const [D, M] of GRID) {
      const zb = simulate(SCHEDULES["zb-h1"]!(D, M), { f: 1, b: 2 });
      expect(Math.max(...zb.peakInFlight)).toBe(Math.max(...simulate(SCHEDULES["1f1b"]!(D, M), { f: 1, b: 2 }).peakInFlight));
    }
  });

  test("never slower than 1F1B for any costs with i + w = b", () => {
    fc.assert(
      fc.property(sizeArb, costsArb, fc.double({ min: 0.05, max: 0.95, noNaN: true }), ({ D, M }, { f, b }, share) => {
        const zb = simulate(SCHEDULES["zb-h1"]!(D, M), { f, b, i: share * b, w: (1 - share) * b });
        expect(zb.makespan).toBeLessThanOrEqual(simulate(SCHEDULES["1f1b"]!(D, M), { f, b }).makespan + 1e-9);
      }),
      { numRuns: 200 },
    );
  });
});

describe("interleaved 1F1B (Megatron's virtual stages)", () => {
  test("valid for D ≤ 6, v ≤ 4, M a multiple of D; each worker's list holds its own chunks k, k + D, …", () => {
    for (let D = 1; D <= 6; D++) {
      for (let v = 1; v <= 4; v++) {
        for (const M of [D, 2 * D, 3 * D]) {
          const s = interleaved(D, M, v);
          expect(validateSchedule(s)).toEqual([]);
          s.actions.forEach((list, k) => {
            expect(list.every((a) => a.stage % D === k && a.stage < D * v)).toBe(true);
            expect(list.length).toBe(2 * M * v);
          });
        }
      }
    }
    expect(() => interleaved(4, 6, 2)).toThrow(/multiple of the 4 stages/);
    expect(buildSchedule("interleaved:3", 2, 4).virtualStages).toBe(3);
  });

  test("bubble (D−1)/(v·M + D−1) with a chunk costing 1/v of a stage: below 1F1B's (D−1)/(M + D−1) for v ≥ 2, as Megatron-LM's (D−1)/(v·M) says", () => {
    for (const D of [2, 3, 4, 6]) {
      for (const v of [2, 3, 4]) {
        for (const M of [D, 2 * D, 4 * D]) {
          const il = simulate(interleaved(D, M, v), { f: 1 / v, b: 2 / v }).bubbleFraction;
          const one = simulate(oneFOneB(D, M), { f: 1, b: 2 }).bubbleFraction;
          expect(il).toBeCloseTo((D - 1) / (v * M + D - 1), 9);
          if (D > 1) expect(il).toBeLessThan(one);
        }
      }
    }
  });

  test("the validator refuses an action on another worker's chunk, a missing chunk, and an asynchronous interleaved schedule", () => {
    const s = interleaved(2, 4, 2);
    const moved = clone(s);
    moved.actions[0]![0]!.stage = 1; // virtual stage 1 belongs to worker 1
    expect(validateSchedule(moved).join("\n")).toMatch(/names stage 1, not one of this worker's virtual stages 0, 2/);
    const missing = clone(s);
    missing.actions[1] = missing.actions[1]!.filter((a) => !(a.kind === "B" && a.stage === 3 && a.microbatch === 2));
    expect(validateSchedule(missing).join("\n")).toMatch(/no B \(or I and W\) of microbatch 2 on virtual stage 3/);
    expect(validateSchedule({ ...s, flush: false })).toEqual(["virtual stages (interleaved) need a flushed schedule: one update per batch"]);
  });
});

describe("skein schedule", () => {
  const folder = tempFolders("skein-schedule-");

  async function run(...argv: string[]): Promise<{ code: number; stdout: string }> {
    const write = process.stdout.write;
    let stdout = "";
    process.stdout.write = ((chunk: string | Uint8Array) => {
      stdout += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
      return true;
    }) as typeof process.stdout.write;
    try {
      return { code: await scheduleCommand(argv), stdout };
    } finally {
      process.stdout.write = write;
    }
  }

  test("text: a row per stage, then makespan, bubble and peak in-flight", async () => {
    const { code, stdout } = await run("--name", "1f1b", "--stages", "4", "--microbatches", "8");
    expect(code).toBe(0);
    expect(stdout).toContain("stage 0  F0 F1 F2 F3 .  .  .  .  .  .  B0 -- F4 B1 --");
    expect(stdout).toContain("stage 3  .  .  .  F0 B0 -- F1 B1 --");
    expect(stdout).toContain("makespan 33, bubble fraction 0.2727");
    expect(stdout).toMatch(/^0 +24 +9 +4 +4$/m);
    expect(stdout).toMatch(/^3 +24 +9 +1 +1$/m);
  });

  test("interleaved:2: chunks marked .c, costs per stage split over the chunks, JSON that trains back", async () => {
    const { stdout } = await run("--name", "interleaved:2", "--stages", "2", "--microbatches", "4", "--width", "0");
    expect(stdout).toContain("interleaved:2: 2 stages × 4 microbatches, costs f=0.5 b=1");
    expect(stdout).toContain("stage 0  F0.0 F1.0 F0.1 F1.1 F2.0");
    expect(stdout).toContain("makespan 13.5, bubble fraction 0.1111");
    const json = JSON.parse((await run("--name", "interleaved:2", "--stages", "2", "--microbatches", "4", "--json")).stdout);
    expect(json.virtualStages).toBe(2);
    const back = parseScheduleJson(JSON.stringify(json), "il.json");
    expect(back.virtualStages).toBe(2);
    expect(validateSchedule(back)).toEqual([]);
    expect(back.actions).toEqual(interleaved(2, 4, 2).actions);
  });

  test("text wraps at --width; D = 8, M = 64 stays readable", async () => {
    const { stdout } = await run("--name", "zb-h1", "--stages", "8", "--microbatches", "64", "--width", "100");
    const timeline = stdout.split("\n").filter((l) => l.startsWith("stage ") || l.startsWith("time"));
    expect(Math.max(...timeline.map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(timeline.filter((l) => l.startsWith("stage 7")).length).toBeGreaterThan(5);
    expect(stdout).toContain(`makespan ${3 * 64 + 7}`);
  });

  test("--json: one object with the schedule and its figures", async () => {
    const { stdout } = await run("--name", "async-1f1b", "--stages", "3", "--microbatches", "5", "--json", "--cost-f", "1", "--cost-b", "2");
    expect(stdout.trim().split("\n").length).toBe(1);
    const o = JSON.parse(stdout);
    expect(o).toMatchObject({ name: "async-1f1b", stages: 3, microbatches: 5, makespan: 21, peakInFlight: [3, 2, 1], stashedVersions: [3, 2, 1] });
    close(o.bubbleFraction, 2 / 7);
    expect(o.actions[0][3]).toEqual({ kind: "B", microbatch: 0, stage: 0, version: 0 });
    expect(o.actions[0][4]).toEqual({ kind: "F", microbatch: 3, stage: 0, version: 1 });
    expect(validateSchedule({ ...o, flush: false, maxInFlight: [3, 2, 1] })).toEqual([]);
  });

  test("--svg: a rect per action, written whole (no temporary left)", async () => {
    const dir = folder();
    const file = join(dir, "t.svg");
    await run("--name", "zb-h1", "--stages", "3", "--microbatches", "4", "--svg", file);
    const svg = readFileSync(file, "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.match(/<title>stage/g)!.length).toBe(3 * 4 * 3);
    expect(readdirSync(dir)).toEqual(["t.svg"]);
  });

  const dir = folder();
  mkdirSync(join(dir, "sub"));
  const bad: [string, string[], RegExp][] = [
    ["unknown schedule", ["--name", "chimera"], /--name chimera: expected one of gpipe, 1f1b, async-1f1b, zb-h1/],
    ["zero stages", ["--stages", "0"], /--stages 0: must be at least 1/],
    ["not an integer", ["--microbatches", "2.5"], /--microbatches: expected an integer, got '2.5'/],
    ["zero cost", ["--cost-b", "0"], /--cost-b 0: must be greater than 0/],
    ["split cost on a full-backward schedule", ["--name", "gpipe", "--cost-i", "1"], /--cost-i applies to schedules that split the backward/],
    ["unknown flag", ["--stage", "3"], /unknown flag --stage/],
    ["svg into a missing folder", ["--svg", join(dir, "none", "x.svg")], /--svg .*: folder .* does not exist/],
    ["svg onto a folder", ["--svg", join(dir, "sub")], /--svg .*: is a folder/],
  ];
  test.each(bad)("bad input: %s → UserError", async (_, argv, message) => {
    const error = await run(...argv).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("\n");
    expect(existsSync(join(dir, "none"))).toBe(false);
  });

  test("--help lists the flags and schedules", async () => {
    const { code, stdout } = await run("--help");
    expect(code).toBe(0);
    for (const word of ["--name", "--stages", "--microbatches", "--cost-f", "--cost-b", "--json", "--svg", "gpipe", "1f1b", "async-1f1b", "zb-h1"]) expect(stdout).toContain(word);
  });
});

// ---- weight strategies as annotations, and their lowering to buffers ------------------------------

import { annotate, PIPELINE_ALGORITHMS as STRATEGIES, type PipelineAlgorithm } from "../engine/algorithms/pipeline/strategies.ts";
import { lower } from "../engine/algorithms/pipeline/lower.ts";
import { asyncOneFOneB, updatePoints, writesGradient } from "../engine/algorithms/pipeline/schedule.ts";
import { randomSchedule } from "./pipeline-reference.ts";

describe("PipeDream-2BW as published", () => {
  test("microbatch j reads version max(⌊j/m⌋ − 1, 0) for F and B on every stage; every update applies gradients exactly one version old", () => {
    for (let D = 1; D <= 6; D++) {
      for (const m of [D, D + 1, 2 * D]) {
        const batches = 5;
        const s = annotate("2bw", asyncOneFOneB(D, batches * m), m);
        expect(validateSchedule(s)).toEqual([]);
        s.actions.forEach((list, k) => {
          let version = 0; // the stage's live version
          const grads: number[] = []; // versions of the gradients accumulated since the last update
          for (const a of list) {
            expect({ D, m, k, a: a.microbatch, v: a.version }).toEqual({ D, m, k, a: a.microbatch, v: Math.max(Math.floor(a.microbatch / m) - 1, 0) });
            if (writesGradient(a)) grads.push(a.version!);
            if (a.update) {
              // Update `version` → version + 1 applies ∇f(W(version − 1)) (W(0) for the first).
              expect({ D, m, k, version, grads: [...new Set(grads)] }).toEqual({ D, m, k, version, grads: [Math.max(version - 1, 0)] });
              expect(grads.length).toBe(m);
              grads.length = 0;
              version++;
            }
          }
          expect(version).toBe(batches);
        });
      }
    }
  });

  test("M < D is refused", () => {
    expect(() => annotate("2bw", asyncOneFOneB(4, 12), 3)).toThrow(/at least as many as --stages 4/);
  });
});

describe("lowering", () => {
  const arb = fc.record({
    D: fc.integer({ min: 1, max: 6 }),
    M: fc.integer({ min: 1, max: 12 }),
    choices: fc.array(fc.nat(), { minLength: 1, maxLength: 40 }),
    split: fc.array(fc.boolean(), { minLength: 1, maxLength: 12 }),
    algo: fc.constantFrom<PipelineAlgorithm>(...STRATEGIES),
    stream: fc.boolean(),
    costs: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 4, maxLength: 4 }),
  });

  test("on random valid schedules and every strategy: each action reads the version it names, and no activation slot is reused while live", () => {
    fc.assert(
      fc.property(arb, ({ D, M, choices, split, algo, stream, costs }) => {
        const flush = algo === "gpipe" || algo === "1f1b";
        const raw = stream && !flush ? asyncOneFOneB(D, M) : randomSchedule(D, M, choices, split, flush);
        fc.pre(algo !== "2bw" || M >= D);
        const s = annotate(algo, raw, algo === "2bw" ? (stream ? D : M) : 1);
        expect(validateSchedule(s)).toEqual([]);
        const l = lower(s, () => 1);
        // Stage 0's own in-flight peak is the slot count without split backwards, and a floor with them
        // (a W that a later stage defers keeps the microbatch's slot past stage 0's next forwards).
        if (s.actions.some((list) => list.some((a) => a.kind === "I"))) expect(l.slots).toBeGreaterThanOrEqual(peakInFlight(s)[0]!);
        else expect(l.slots).toBe(peakInFlight(s)[0]!);
        expect(l.slots).toBeLessThanOrEqual(M);
        // Abstract execution per stage: buffers hold version labels.
        l.steps.forEach((steps, k) => {
          let live = 0;
          const stash = new Array<number>(l.stashBuffers[k]!).fill(-1);
          steps.forEach((step, p) => {
            const a = s.actions[k]![p]!;
            if (step.kind !== "W" && step.weights.from === "live" && (a.weights ?? "version") === "version") expect(live).toBe(a.version ?? 0);
            if (step.weights.from === "stash") expect(stash[step.weights.buffer]).toBe(a.version ?? 0);
            if (step.stash >= 0) stash[step.stash] = live;
            if (step.update) live++;
          });
        });
        // Slots, in orders the schedule can run in (timings drawn from `costs`): an owner per slot, and
        // the stages still using it; every stage gives it up after its last action on the microbatch.
        const stepOf = new Map<string, (typeof l.steps)[0][0]>();
        l.steps.forEach((steps, k) => steps.forEach((st) => stepOf.set(`${k}${st.kind}${st.microbatch}`, st)));
        for (const [f, b, i, w] of [[1, 1, 1, 1], costs]) {
          const owner = new Array<number>(l.slots).fill(-1);
          const users = new Array<number>(l.slots).fill(0);
          for (const e of simulate(s, { f: f!, b: b!, i: i!, w: w! }).timeline) {
            const st = stepOf.get(`${e.stage}${e.kind}${e.microbatch}`)!;
            if (e.stage === 0 && st.kind === "F") {
              expect(owner[st.slot]).toBe(-1);
              owner[st.slot] = st.microbatch;
              users[st.slot] = D;
            }
            expect(owner[st.slot]).toBe(st.microbatch);
            if (st.releasesSlot && --users[st.slot]! === 0) owner[st.slot] = -1;
          }
          expect(owner.every((o) => o === -1)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("asynchronous 1F1B with weight stashing keeps D − k − 1 copies on stage k (+ the live weights: D − k versions)", () => {
    for (let D = 1; D <= 6; D++) {
      const l = lower(annotate("pipedream", asyncOneFOneB(D, 4 * D), 1), () => 1);
      expect(l.stashBuffers).toEqual(Array.from({ length: D }, (_, k) => D - k - 1));
      expect(l.slots).toBe(D);
    }
  });

  test("update points: explicit flags win; else a flushed schedule updates after each stage's last action, an asynchronous one after every B and W", () => {
    const flushed = SCHEDULES["zb-h1"]!(3, 4);
    flushed.actions.forEach((list, k) => expect(updatePoints(flushed, k)).toEqual(list.map((_, p) => p === list.length - 1)));
    const a = asyncOneFOneB(3, 4);
    a.actions.forEach((list, k) => expect(updatePoints(a, k)).toEqual(list.map((x) => x.kind === "B")));
    const bad = clone(a);
    bad.actions[0]![0]!.update = true; // an F cannot update
    expect(validateSchedule(bad).join("\n")).toMatch(/only a B or a W writes gradients/);
  });
});
