/**
 * Quick check that the TensorFlow.js peer runs under Bun: prints the backend, samples/s over ~3 s,
 * and the loss at the start and end (it should fall, the batch is fixed). `bun bench/peers/tfjs-smoke.ts`
 */
import { createTfjsMlp } from "./tfjs-mlp.ts";

const widths = [784, 256, 128, 10];
const batch = 128;
const mlp = await createTfjsMlp({ widths, batch, lr: 0.05, seed: 7 });

// A few warm-up steps: the first ones pay for wasm compilation and kernel setup.
const firstLoss = await mlp.step();
for (let i = 0; i < 4; i++) await mlp.step();

let steps = 0;
let lastLoss = firstLoss;
const start = performance.now();
while (performance.now() - start < 3000) {
  lastLoss = await mlp.step();
  steps++;
}
const seconds = (performance.now() - start) / 1000;
mlp.dispose();

console.log(`backend: ${mlp.backend}`);
console.log(`mlp ${widths.join("-")} batch ${batch}: ${steps} steps in ${seconds.toFixed(2)} s`);
console.log(`samples/s: ${Math.round((steps * batch) / seconds)}`);
console.log(`loss: ${firstLoss.toFixed(4)} -> ${lastLoss.toFixed(4)} (${lastLoss < firstLoss ? "decreasing" : "NOT decreasing"})`);
if (!(lastLoss < firstLoss)) process.exit(1);
