/**
 * Can TensorFlow.js's wasm backend train a convolutional network at all? One conv2d forward, then
 * its gradient, on the wasm backend under Bun; prints what happens. `npx bun bench/peers/tfjs-conv-grad.ts`
 */
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-core/dist/register_all_gradients";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { dirname, join } from "node:path";

setWasmPaths(join(dirname(Bun.resolveSync("@tensorflow/tfjs-backend-wasm/package.json", import.meta.dir)), "dist") + "/");
await tf.setBackend("wasm");
await tf.ready();
const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D;
const w = tf.randomNormal([3, 3, 3, 16]) as tf.Tensor4D;
const y = tf.conv2d(x, w, 1, "same");
console.log(`backend ${tf.getBackend()}: conv2d forward ${y.shape.join("×")} ok`);
try {
  const g = tf.grad((filter: tf.Tensor) => tf.sum(tf.conv2d(x, filter as tf.Tensor4D, 1, "same")))(w);
  console.log(`conv2d gradient ${g.shape.join("×")} ok`);
} catch (e) {
  console.log(`conv2d gradient fails: ${(e as Error).message.split("\n")[0]}`);
}
try {
  const g = tf.grad((input: tf.Tensor) => tf.sum(tf.conv2d(input as tf.Tensor4D, w, 1, "same")))(x);
  console.log(`conv2d input gradient ${g.shape.join("×")} ok`);
} catch (e) {
  console.log(`conv2d input gradient fails: ${(e as Error).message.split("\n")[0]}`);
}
