import { TrainingSession, type TrainConfig } from "../engine/train.ts";
import { defaultOptimizer } from "../engine/optim/optimizer.ts";
const algo = process.argv[2] ?? "hogwild";
const batch = Number(process.argv[3] ?? 64);
const cfg = (workers: number): TrainConfig => ({ algo, model: "mlp:784-256-128-10", data: "synthetic:8192", epochs: 1e6, batch, workers, executor: "threads", seed: 1, optimizer: { ...defaultOptimizer("sgd"), lr: 0.01 } });
const s = [await TrainingSession.open(cfg(1), { profileKernels: true }), await TrainingSession.open(cfg(2), { profileKernels: true })];
const acc = [0, 1].map(() => ({ wall: 0, kernel: 0, busy: 0, waited: 0, samples: 0 }));
for (let r = 0; r < 8; r++) for (const i of r % 2 ? [0, 1] : [1, 0]) {
  const o = await s[i]!.trainEpoch();
  const a = acc[i]!;
  a.wall += o.seconds * 1000; a.samples += o.samples;
  for (const x of o.results) { a.kernel += x.kernelMs ?? 0; a.busy += x.elapsedMs - x.waitedMs; a.waited += x.waitedMs; }
}
for (const [i, a] of acc.entries()) console.log(`${algo} b${batch} ${i + 1}w: samples/s ${(a.samples / a.wall * 1000).toFixed(0)}  per 1000 samples: kernel ${(a.kernel / a.samples * 1000).toFixed(2)} ms, busy outside kernels ${((a.busy - a.kernel) / a.samples * 1000).toFixed(2)} ms, waited ${(a.waited / a.samples * 1000).toFixed(2)} ms (summed over workers)`);
for (const x of s) x.close();
