/**
 * The algorithm registry is the one list of algorithms: every entry runs, counts its steps the way
 * it makes them, takes exactly its own flags, and shows in help laid out for an 80–100 column terminal.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { ALGORITHMS, ALGORITHM_NAMES, ROLE_TABLE, algorithmNamed } from "../engine/algorithms/registry.ts";
import { TrainingSession } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { formatColumns, HELP_COLUMNS, wrap } from "../engine/cli/flags.ts";
import { HELP } from "../engine/cli/main.ts";
import { TRAIN_HELP } from "../engine/cli/train-command.ts";
import { SCHEDULE_HELP } from "../engine/cli/schedule-command.ts";
import { TOPOLOGY_HELP } from "../engine/cli/topology-command.ts";
import { EXPERIMENT_HELP } from "../engine/cli/experiment-command.ts";
import { REPORT_HELP } from "../engine/cli/report-command.ts";
import { UserError } from "../engine/errors.ts";

const columns = (line: string) => [...line].length;

describe("the registry", () => {
  test("names are unique, every algorithm has its epoch role, and unknown names are refused with the list", () => {
    expect(new Set(ALGORITHM_NAMES).size).toBe(ALGORITHMS.length);
    for (const name of ALGORITHM_NAMES) expect(typeof ROLE_TABLE[name]).toBe("function");
    expect(typeof ROLE_TABLE.evaluate).toBe("function");
    expect(() => algorithmNamed("bogus")).toThrow(UserError);
    expect(() => algorithmNamed("bogus")).toThrow(/expected one of sync, hogwild/);
  });

  // One epoch of every algorithm on 203 samples (a partial last batch), batch 16, 3 gossip nodes,
  // 4 microbatches: the steps the algorithm says it makes are the updates its programs report.
  test("steps per epoch = the updates an epoch applies, for every algorithm", async () => {
    const expected: Record<string, number> = {
      sync: 13, hogwild: 13, lap: 13, lpp: 13, layerwise: 13, layup: 13, // ⌈203/16⌉ batches
      gpipe: 12, "1f1b": 12, "2bw": 12, // ⌊203/16⌋ full batches, one update each
      pipedream: 48, spectrain: 48, pipeoptim: 48, // an update per microbatch: 12 × 4
      pmsgd: 5, dsgd: 5, dmsgd: 5, decentlam: 5, gt: 5, ed: 5, qgm: 5, sgp: 5, localsgd: 5, slowmo: 5, // ⌈203/(3·16)⌉ rounds
    };
    expect(Object.keys(expected).sort()).toEqual([...ALGORITHM_NAMES].sort());
    for (const algorithm of ALGORITHMS) {
      const session = await TrainingSession.open({
        algo: algorithm.name,
        model: "mlp:784-8-10",
        data: "synthetic:203",
        epochs: 1,
        batch: 16,
        workers: 2,
        executor: "deterministic",
        seed: 1,
        // Gradient tracking and exact diffusion take plain steps.
        optimizer: defaultOptimizer(algorithm.name === "gt" || algorithm.name === "ed" ? "sgd" : "momentum"),
        gossip: { nodes: 3 },
        pipeline: { stages: 2, microbatches: 4 },
      });
      try {
        const epoch = await session.trainEpoch();
        expect([algorithm.name, session.stepsPerEpoch]).toEqual([algorithm.name, expected[algorithm.name]!]);
        expect([algorithm.name, epoch.updates]).toEqual([algorithm.name, session.stepsPerEpoch]);
      } finally {
        session.close();
      }
    }
  });

  test("a pipeline that streams whole batches (--pipeline-unit batch) counts one step per batch", async () => {
    const session = await TrainingSession.open({
      algo: "pipeoptim",
      model: "mlp:784-8-10",
      data: "synthetic:203",
      epochs: 1,
      batch: 16,
      workers: 2,
      executor: "deterministic",
      seed: 1,
      optimizer: defaultOptimizer("momentum"),
      pipeline: { stages: 2, microbatches: 4, unit: "batch" },
    });
    try {
      const epoch = await session.trainEpoch();
      expect([session.stepsPerEpoch, epoch.updates]).toEqual([12, 12]);
    } finally {
      session.close();
    }
  });
});

describe("help", () => {
  const helps = { "skein --help": HELP, "skein train --help": TRAIN_HELP, "skein schedule --help": SCHEDULE_HELP, "skein topology --help": TOPOLOGY_HELP, "skein experiment --help": EXPERIMENT_HELP, "skein report --help": REPORT_HELP };

  test("no help line is wider than 100 columns", () => {
    for (const [what, text] of Object.entries(helps)) {
      const wide = text.split("\n").filter((l) => columns(l) > HELP_COLUMNS);
      expect([what, wide]).toEqual([what, []]);
    }
  });

  test("command names never run into their descriptions", () => {
    for (const name of ["train", "schedule", "experiment", "report", "topology"]) expect(HELP).toMatch(new RegExp(`^  ${name}  +\\S`, "m"));
  });

  test("skein train --help lists every algorithm of the registry, each with its description", () => {
    for (const a of ALGORITHMS) expect(TRAIN_HELP).toMatch(new RegExp(`^  ${a.name}  +${a.about.split(" ")[0]!.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`, "m"));
  });

  test("two columns: lines within width, a gap of two or more spaces after each name, every word kept in order", () => {
    const word = fc.stringMatching(/^[a-z0-9|:.-]{1,12}$/);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.stringMatching(/^--?[a-z][a-z0-9-]{0,40}$/), fc.array(word, { minLength: 1, maxLength: 40 })), { minLength: 1, maxLength: 8 }),
        (rows) => {
          const text = formatColumns(rows.map(([name, words]) => [name, words.join(" ")] as const));
          const lines = text.split("\n");
          for (const line of lines) expect(columns(line)).toBeLessThanOrEqual(HELP_COLUMNS);
          // Each row starts at the indent with its name; a name is followed by a gap or ends its line.
          const starts = lines.map((l, i) => [l, i] as const).filter(([l]) => /^ {2}\S/.test(l));
          expect(starts.length).toBe(rows.length);
          starts.forEach(([line], r) => {
            const name = rows[r]![0];
            expect(line.startsWith(`  ${name}`)).toBe(true);
            const rest = line.slice(2 + name.length);
            expect(rest === "" || /^ {2,}\S/.test(rest)).toBe(true);
          });
          // Every word of every description, in order.
          const words = text.split(/\s+/).filter(Boolean);
          const expectedWords = rows.flatMap(([name, ws]) => [name, ...ws]);
          expect(words).toEqual(expectedWords);
        },
      ),
    );
  });

  test("wrap keeps lines within the width unless one word is longer", () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z]{1,15}$/), { maxLength: 60 }), fc.integer({ min: 10, max: 100 }), (words, width) => {
        const lines = wrap(words.join(" "), width);
        for (const l of lines) expect(l.length <= width || !l.includes(" ")).toBe(true);
        expect(lines.join(" ").split(" ").filter(Boolean)).toEqual(words);
      }),
    );
  });
});
