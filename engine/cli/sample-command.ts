/**
 * `skein sample --from RUN --prompt "The " --tokens 200 --temperature 0.8 --seed 1`: text from a
 * language model's checkpoint. The run's config names the model and the text data; the data is
 * loaded again for its vocabulary (the same text gives the same vocabulary). Each new character is
 * drawn from softmax(logits / temperature) at the last position of the context window, with a
 * seeded generator: the same seed gives the same text.
 */
import { UserError } from "../errors.ts";
import { loadDataset } from "../data/index.ts";
import { instantiateKernels, loadKernelModule } from "../kernels/load.ts";
import { ArenaPlanner, createSharedMemory, f32 } from "../memory/arena.ts";
import { Network } from "../model/network.ts";
import { Rng } from "../rng.ts";
import { openResume } from "../train.ts";
import { formatHelp, parseFlags, type FlagSpec } from "./flags.ts";

export const SAMPLE_FLAGS: FlagSpec[] = [
  { name: "from", type: "string", default: "", valueName: "RUN", help: "a run folder (or checkpoint file) of a gpt model trained on text data" },
  { name: "prompt", type: "string", default: "", valueName: "TEXT", help: "text to continue (default: a newline, or the vocabulary's first character)" },
  { name: "tokens", type: "int", default: 200, valueName: "INT", help: "characters to generate" },
  { name: "temperature", type: "number", default: 0.8, valueName: "NUMBER", help: "softmax temperature (> 0; lower is more conservative)" },
  { name: "seed", type: "int", default: 1, valueName: "INT", help: "seed of the sampling (same seed, same text)" },
];

export const SAMPLE_HELP = formatHelp(
  "skein sample --from RUN [flags]",
  "Print text from a character-level language model's checkpoint (gpt:… trained on text:…).",
  SAMPLE_FLAGS,
  'Example: skein sample --from runs/brown --prompt "The " --tokens 200 --temperature 0.8 --seed 1',
);

export async function sampleCommand(argv: string[]): Promise<number> {
  const flags = parseFlags("sample", argv, SAMPLE_FLAGS);
  if (flags.help) {
    process.stdout.write(SAMPLE_HELP);
    return 0;
  }
  const from = String(flags.values.from);
  const tokens = Number(flags.values.tokens);
  const temperature = Number(flags.values.temperature);
  if (!from) throw new UserError("--from RUN is required (a run folder of a gpt model trained on text data)");
  if (!(tokens >= 0 && tokens <= 1_000_000)) throw new UserError(`--tokens ${tokens}: want 0..1000000`);
  if (!(temperature > 0) || !Number.isFinite(temperature)) throw new UserError(`--temperature ${flags.values.temperature}: want a number > 0`);
  const text = await sample(from, String(flags.values.prompt), tokens, temperature, Number(flags.values.seed));
  process.stdout.write(text + "\n");
  return 0;
}

/** The prompt and `count` sampled characters after it. */
export async function sample(from: string, prompt: string, count: number, temperature: number, seed: number): Promise<string> {
  const checkpoint = await openResume(from);
  const config = checkpoint.state.config as { model?: unknown; data?: unknown };
  if (typeof config.model !== "string" || typeof config.data !== "string") throw new UserError(`${checkpoint.path}: the checkpoint's config names no model and data`);
  if (!config.model.startsWith("gpt:")) throw new UserError(`--from ${from}: model ${config.model} is not a language model (gpt:…)`);
  const dataset = await loadDataset(config.data);
  const vocab = dataset.classNames;
  if (!vocab) throw new UserError(`--from ${from}: data ${config.data} has no character vocabulary (train on text:…)`);
  const net = new Network(config.model, dataset.shape, dataset.classes);
  const T = net.positions;
  const V = dataset.classes;

  const planner = new ArenaPlanner();
  const params = planner.floats("parameters", "params", net.paramFloats);
  const ws = net.planWorkspace(planner, "sample", 1);
  const memory = createSharedMemory(planner.finish());
  const k = instantiateKernels((await loadKernelModule()).module, memory);
  checkpoint.restore(net, memory, { params, optimizerState: [] });

  const index = new Map(vocab.map((c, i) => [c, i]));
  const start = prompt === "" ? (index.has("\n") ? "\n" : vocab[0]!) : prompt;
  const ids = Array.from(start, (c) => {
    const id = index.get(c);
    if (id === undefined) throw new UserError(`--prompt: character ${JSON.stringify(c)} is not in the vocabulary of ${config.data}`);
    return id;
  });
  const rng = Rng.derive(seed, "sample");
  const input = f32(memory, ws.input, T + 1);
  const probs = new Float64Array(V);
  let out = prompt;
  for (let n = 0; n < count; n++) {
    // The last T characters at positions 0..m−1; positions after m are never seen by them (causal).
    const window = ids.slice(-T);
    const m = window.length;
    input.fill(0);
    input.set(window);
    net.forward(k, params, ws, 1, false);
    const logits = f32(memory, net.logits(ws) + (m - 1) * V * 4, V);
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[v]! / temperature);
    let total = 0;
    for (let v = 0; v < V; v++) total += probs[v] = Math.exp(logits[v]! / temperature - max);
    let u = rng.nextFloat() * total;
    let next = V - 1;
    for (let v = 0; v < V; v++) {
      u -= probs[v]!;
      if (u < 0) {
        next = v;
        break;
      }
    }
    ids.push(next);
    out += vocab[next]!;
  }
  return out;
}
