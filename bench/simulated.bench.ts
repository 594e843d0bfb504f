/**
 * The simulated executor against reality, on this machine:
 *
 *   npx bun bench/simulated.bench.ts [--workers 1,2] [--models mlp,lenet] [--algos sync,hogwild,...]
 *                                    [--repeats 3] [--epochs 2] [--costs FILE] [--overhead-only]
 *
 * 1. Validation: per algorithm, model and P, the threaded executor's measured training seconds per
 *    epoch (warm session: one epoch to warm up, then --epochs timed; --repeats sessions alternating
 *    with the simulation; the median epoch) against the simulated executor's virtual seconds per epoch
 *    under the same configuration, and for the asynchronous ones the mean staleness of both.
 *    P is the program count: workers (sync, hogwild, dmsgd), stages (gpipe, pipedream), layerwise
 *    threads (1 forward + P−1 backward; P = 1 is skipped).
 * 2. Overhead: wall seconds of a simulated epoch over a deterministic-executor epoch of the same
 *    configuration (same programs, same interleaving machinery), alternating, median of ratios.
 *
 * On a machine with more cores (e.g. 16): --workers 4,8,16 gives the same table there; calibrate the
 * table on that machine first (skein calibrate --out costs.json, then --costs costs.json).
 */
import { overallStaleness, summarizeStaleness } from "../engine/algorithms/async/staleness.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { Network } from "../engine/model/network.ts";
import type { EpochOutcome } from "../engine/run-metrics.ts";
import { benchArgs, intListFlag, numberFlag } from "./args.ts";

const SCRIPT = "simulated.bench";
const { values: flags } = benchArgs(SCRIPT, {
  options: {
    workers: { type: "string" },
    models: { type: "string" },
    algos: { type: "string" },
    repeats: { type: "string" },
    epochs: { type: "string" },
    costs: { type: "string" },
    "overhead-only": { type: "boolean" },
  },
});
const WORKERS = intListFlag(SCRIPT, "workers", flags.workers ?? "1,2");
const MODELS: Record<string, string> = { mlp: "mlp:784-256-128-10", lenet: "lenet" };
const models = (flags.models ?? "mlp,lenet").split(",");
for (const m of models) if (!MODELS[m]) fail(`--models ${m}: want mlp or lenet`);
const ALGOS = (flags.algos ?? "sync,hogwild,layerwise,gpipe,pipedream,dmsgd").split(",");
const REPEATS = numberFlag(SCRIPT, "repeats", flags.repeats, 3, { min: 1, integer: true });
const EPOCHS = numberFlag(SCRIPT, "epochs", flags.epochs, 2, { min: 1, integer: true });

function fail(message: string): never {
  console.error(`${SCRIPT}: ${message}`);
  process.exit(2);
}

/** The configuration of `algo` with P programs, or null where P does not fit it. */
function configOf(algo: string, model: string, P: number): TrainConfig | null {
  const base: TrainConfig = { algo, model: MODELS[model]!, data: "digits", epochs: 1 + EPOCHS, batch: 64, workers: P, executor: "threads", seed: 1, optimizer: defaultOptimizer("momentum") };
  if (flags.costs) base.simulation = { costs: flags.costs };
  switch (algo) {
    case "layerwise":
      return P < 2 ? null : { ...base, async: { fwdThreads: 1, bwdThreads: P - 1, queue: P } };
    case "gpipe":
    case "pipedream":
    case "1f1b":
      // A stage needs a layer with parameters: deeper pipelines than the model allows are skipped.
      return P > new Network(base.model, [1, 28, 28], 10).trainableLayers.length ? null : { ...base, pipeline: { stages: P, microbatches: 4 } };
    case "dmsgd":
    case "pmsgd":
    case "decentlam":
      return { ...base, gossip: { nodes: Math.max(8, P) } };
    default:
      return base;
  }
}

/** Per epoch after the first: seconds, and the mean staleness when the algorithm records it. */
async function epochs(config: TrainConfig): Promise<{ seconds: number[]; staleness: number | null; wall: number[] }> {
  const session = await TrainingSession.open(config);
  try {
    const seconds: number[] = [];
    const wall: number[] = [];
    const outcomes: EpochOutcome[] = [];
    for (let e = 0; e < config.epochs; e++) {
      const started = performance.now();
      const outcome = await session.trainEpoch();
      if (e === 0) continue; // warm-up: JIT, first touch of the arena
      seconds.push(outcome.seconds);
      wall.push((performance.now() - started) / 1000);
      outcomes.push(outcome);
    }
    const report = outcomes.map((o) => o.staleness).filter((s) => s !== undefined);
    const staleness = report.length > 0 ? overallStaleness(summarizeStaleness(report[report.length - 1]!)).mean : null;
    return { seconds, staleness, wall };
  } finally {
    session.close();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const fmt = (x: number | null, digits = 3) => (x === null ? "-" : x.toFixed(digits));

if (!flags["overhead-only"]) {
  console.log(`Validation: seconds per epoch, threads (median of ${REPEATS} sessions × ${EPOCHS} epochs, alternating) vs simulated; ${navigator.hardwareConcurrency} cores here`);
  console.log("algo       model  P  threads s  simulated s  sim/threads  staleness threads  staleness sim");
  for (const model of models) {
    for (const algo of ALGOS) {
      for (const P of WORKERS) {
        const config = configOf(algo, model, P);
        if (!config) continue;
        const threads: number[] = [];
        const threadStaleness: number[] = [];
        let simulated: Awaited<ReturnType<typeof epochs>> | null = null;
        for (let r = 0; r < REPEATS; r++) {
          const t = await epochs(config);
          threads.push(...t.seconds);
          if (t.staleness !== null) threadStaleness.push(t.staleness);
          // The simulation is the same every time: run it once, between the threaded sessions.
          if (r === 0) simulated = await epochs({ ...config, executor: "simulated" });
        }
        const real = median(threads);
        const sim = median(simulated!.seconds);
        const line = [algo.padEnd(10), model.padEnd(6), String(P).padStart(2), fmt(real).padStart(10), fmt(sim).padStart(12), fmt(sim / real, 2).padStart(12), fmt(threadStaleness.length ? median(threadStaleness) : null, 2).padStart(18), fmt(simulated!.staleness, 2).padStart(14)];
        console.log(line.join(" "));
      }
    }
  }
}

console.log(`\nOverhead: wall seconds of a simulated epoch / a deterministic epoch (same config, alternating, median of ${REPEATS * EPOCHS} ratios)`);
console.log("algo       model  P  deterministic s  simulated s  ratio");
for (const [algo, P] of [["sync", 2], ["hogwild", 4], ["layerwise", 3], ["gpipe", 3], ["dmsgd", 8]] as const) {
  const config = configOf(algo, "mlp", P)!;
  const ratios: number[] = [];
  const det: number[] = [];
  const sim: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const d = await epochs({ ...config, executor: "deterministic" });
    const s = await epochs({ ...config, executor: "simulated" });
    det.push(...d.wall);
    sim.push(...s.wall);
    d.wall.forEach((w, i) => ratios.push(s.wall[i]! / w));
  }
  console.log([algo.padEnd(10), "mlp".padEnd(6), String(P).padStart(2), fmt(median(det)).padStart(16), fmt(median(sim)).padStart(12), fmt(median(ratios), 2).padStart(6)].join(" "));
}
