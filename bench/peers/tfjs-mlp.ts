/**
 * The TensorFlow.js peer for the end-to-end benchmark: the same MLP skein trains (dense + relu,
 * softmax cross-entropy, plain SGD), built with tfjs-layers and run on the tfjs WebAssembly backend
 * (XNNPACK with SIMD) under Bun, so samples/s compare like with like: wasm SIMD against wasm SIMD.
 *
 * tfjs-backend-wasm turns its thread pool off whenever it detects Node (Bun reports itself as Node),
 * so this peer runs on one core; the benchmark report should say so next to the number.
 */
import * as tf from "@tensorflow/tfjs-core";
import * as tfl from "@tensorflow/tfjs-layers";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface TfjsMlpOptions {
  /** Layer widths from input to classes, e.g. [784, 256, 128, 10]. */
  widths: number[];
  batch: number;
  lr: number;
  /** Seeds the weight initializers and the fixed random batch. */
  seed?: number;
}

export interface TfjsMlp {
  /** The tfjs backend actually in use ("wasm"). */
  backend: string;
  /** One SGD step on the fixed batch; resolves once the loss has been read back from the backend. */
  step(): Promise<number>;
  dispose(): void;
}

let wasmBackendReady: Promise<string> | undefined;

/**
 * Points the backend at its .wasm binaries inside node_modules (resolved from this file, so it works
 * from any working directory) and selects it. Done once per process: tfjs refuses a second
 * setWasmPaths after initialization.
 */
function selectWasmBackend(): Promise<string> {
  wasmBackendReady ??= (async () => {
    const packageMain = fileURLToPath(import.meta.resolve("@tensorflow/tfjs-backend-wasm"));
    // The package's main file lives in dist/, next to tfjs-backend-wasm{,-simd,-threaded-simd}.wasm.
    setWasmPaths(join(dirname(packageMain), "/"));
    const selected = await tf.setBackend("wasm");
    if (!selected) throw new Error("tfjs-mlp: the tfjs wasm backend failed to initialize");
    await tf.ready();
    return tf.getBackend();
  })();
  return wasmBackendReady;
}

/** mulberry32: a tiny seeded generator, so the fixed batch is the same on every run. */
function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function createTfjsMlp(opts: TfjsMlpOptions): Promise<TfjsMlp> {
  const { widths, batch, lr, seed = 1 } = opts;
  if (widths.length < 2) throw new Error("tfjs-mlp: widths needs at least an input and an output width");
  const backend = await selectWasmBackend();

  const model = tfl.sequential();
  for (let layer = 1; layer < widths.length; layer++) {
    const isLast = layer === widths.length - 1;
    model.add(
      tfl.layers.dense({
        inputShape: layer === 1 ? [widths[0]] : undefined,
        units: widths[layer],
        // The last layer emits logits; softmax lives inside the fused loss below, as in skein.
        activation: isLast ? "linear" : "relu",
        kernelInitializer: tfl.initializers.heUniform({ seed: seed + layer }),
        biasInitializer: "zeros",
      }),
    );
  }

  const inputWidth = widths[0];
  const classes = widths[widths.length - 1];
  const uniform = seededUniform(seed);
  const pixels = new Float32Array(batch * inputWidth);
  for (let i = 0; i < pixels.length; i++) pixels[i] = uniform();
  const labels = new Int32Array(batch);
  for (let i = 0; i < batch; i++) labels[i] = Math.floor(uniform() * classes);
  const inputs = tf.tensor2d(pixels, [batch, inputWidth]);
  const labelIndices = tf.tensor1d(labels, "int32");
  const oneHotLabels = tf.cast(tf.oneHot(labelIndices, classes), "float32");
  labelIndices.dispose();

  const optimizer = tf.train.sgd(lr);
  const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);

  return {
    backend,
    async step(): Promise<number> {
      const loss = optimizer.minimize(
        () => tf.losses.softmaxCrossEntropy(oneHotLabels, model.apply(inputs) as tf.Tensor) as tf.Scalar,
        true,
        trainable,
      );
      if (!loss) throw new Error("tfjs-mlp: optimizer.minimize returned no loss");
      // Reading the loss back waits for the backend; the wasm backend runs kernels eagerly, so the
      // weight updates issued in the same minimize call are done by then too.
      const [value] = await loss.data();
      loss.dispose();
      return value;
    },
    dispose(): void {
      optimizer.dispose();
      model.dispose();
      inputs.dispose();
      oneHotLabels.dispose();
    },
  };
}
