/**
 * skein against PyTorch, one core each, side by side in one run (dev-only: PyTorch is not a
 * dependency; where it is absent the script says so and exits 0).
 *
 *   npx bun bench/torch.bench.ts [--rounds 9] [--steps 128]
 *   SKEIN_PYTHON=/path/to/python3 npx bun bench/torch.bench.ts     # a Python other than /usr/bin/python3
 *
 * Models: mlp:784-256-128-10 at batch 128 and lenet at batch 64, plain SGD. skein: one worker, an epoch
 * of `steps` batches on a warm session. PyTorch: torch.set_num_threads(1), the same number of steps on
 * a fixed batch (bench/peers/torch_peer.py, a long-lived process answering timing requests). skein's
 * epoch also pays for handing the epoch to its worker thread and back, which PyTorch's loop does not:
 * at 32 steps (about 80 ms of MLP training) that cost about 3 points of the ceiling fraction (0.75 at
 * 32 steps, 0.78 at 160, load 2.4-2.7), hence 128 by default; a user's epoch is hundreds of steps. Each round
 * measures skein, PyTorch and the multiply-add ceiling back to back, rotating the order; printed are the
 * medians of the per-round ratios with their interquartile range, and the MLP's training GFLOP/s
 * (FLOPs counted from the layers' shapes) as a fraction of the ceiling measured in the same round
 * (the multiply-add loop's mean over a window as long as skein's epoch, right after it).
 */
import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
import { CeilingProbe } from "../engine/kernels/ceiling.ts";
import { trainingFlopsPerSample } from "../engine/model/flops.ts";
import { benchArgs, numberFlag } from "./args.ts";
import { openTorchPeer } from "./peers/torch-client.ts";
import { withIqr } from "./stats.ts";

const SCRIPT = "torch.bench";
const { values: v } = benchArgs(SCRIPT, { options: { rounds: { type: "string" }, steps: { type: "string" } } });
const ROUNDS = numberFlag(SCRIPT, "rounds", v.rounds, 9, { min: 1, max: 1000, integer: true });
const STEPS = numberFlag(SCRIPT, "steps", v.steps, 128, { min: 1, max: 100000, integer: true });

const peer = await openTorchPeer();
if (typeof peer === "string") {
  console.log(`${SCRIPT}: skipped: ${peer}`);
  process.exit(0);
}
const { version: torchVersion, blas, referenceBlas } = peer;
if (referenceBlas) console.log(`${SCRIPT}: note: PyTorch runs its GEMMs through the reference BLAS (${blas}), not a peer worth beating: apt-get install libopenblas0 for a fair comparison`);
const torchRate = (model: string, batch: number) => peer.rate(model, batch, STEPS);

const CASES = [
  { model: "mlp", spec: "mlp:784-256-128-10", batch: 128 },
  { model: "lenet", spec: "lenet", batch: 64 },
];
const sessions = new Map<string, TrainingSession>();
for (const c of CASES) {
  const config: TrainConfig = {
    algo: "sync",
    model: c.spec,
    data: `synthetic:${c.batch * STEPS}`,
    epochs: 1_000_000,
    batch: c.batch,
    workers: 1,
    executor: "threads",
    seed: 1,
    optimizer: { ...defaultOptimizer("sgd"), lr: 0.01 },
  };
  const session = await TrainingSession.open(config);
  await session.trainEpoch(); // warm
  sessions.set(c.model, session);
}
const skeinRate = async (model: string) => {
  const o = await sessions.get(model)!.trainEpoch();
  return o.samples / o.seconds;
};

const ratios = new Map<string, number[]>(CASES.map((c) => [c.model, []]));
const rates = new Map<string, number[]>();
const ofCeiling: number[] = [];
const ceilings: number[] = [];
const mlpFlops = trainingFlopsPerSample(sessions.get("mlp")!.net).total;
for (let r = 0; r < ROUNDS; r++) {
  for (const c of CASES) {
    await torchRate(c.model, c.batch); // first request builds the model; later ones are warm
    const order = r % 2 === 0 ? ["skein", "torch"] : ["torch", "skein"];
    const got: Record<string, number> = {};
    for (const who of order) got[who] = who === "skein" ? await skeinRate(c.model) : await torchRate(c.model, c.batch);
    ratios.get(c.model)!.push(got.skein! / got.torch!);
    for (const who of ["skein", "torch"]) rates.set(`${c.model} ${who}`, [...(rates.get(`${c.model} ${who}`) ?? []), got[who]!]);
    if (c.model === "mlp") {
      // The ceiling over a window as long as skein's epoch, right after it: the mean, so a busy
      // machine takes from both alike (the best short burst would dodge what the epoch paid).
      const probe = await CeilingProbe.open();
      const gflopsPerCore = probe.sample((1000 * c.batch * STEPS) / got.skein!);
      ceilings.push(gflopsPerCore);
      ofCeiling.push((got.skein! * mlpFlops) / 1e9 / gflopsPerCore);
    }
  }
}
peer.close();
for (const s of sessions.values()) s.close();

const show = withIqr;
console.log(`skein 1 worker vs PyTorch ${torchVersion} 1 thread (BLAS: ${blas}${referenceBlas ? ", the reference BLAS: not a fair peer" : ""}), ${ROUNDS} alternating rounds of ${STEPS} steps; median [p25–p75]`);
for (const c of CASES) {
  console.log(
    `  ${c.spec.padEnd(20)} batch ${String(c.batch).padEnd(4)} skein ${show(rates.get(`${c.model} skein`)!, 0)} samples/s   torch ${show(rates.get(`${c.model} torch`)!, 0)}   skein/torch ${show(ratios.get(c.model)!)}`,
  );
}
console.log(`  mlp training GFLOP/s on 1 worker / multiply-add ceiling (same round): ${show(ofCeiling)}   ceiling ${show(ceilings, 1)} GFLOP/s per core`);
