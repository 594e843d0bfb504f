/**
 * A run's checkpoint: parameters and optimizer state in safetensors (openable by any safetensors
 * reader), the configuration and progress in its string metadata. Written at every epoch end, by
 * temp file + rename, so an interrupted run always leaves the last complete epoch to resume from.
 */
import { UserError } from "../errors.ts";
import { f32 } from "../memory/arena.ts";
import type { Network } from "../model/network.ts";
import { readSafetensors, tensorAsFloat32, writeSafetensors, type TensorToWrite } from "./safetensors.ts";

export const CHECKPOINT_FILE = "checkpoint.safetensors";
const FORMAT = "skein-checkpoint-1";

export interface CheckpointState {
  /** The run's configuration as JSON (what `--resume` restores). */
  config: unknown;
  epochsDone: number;
  /** Algorithm counters a resumed run continues from (per-layer update versions); [] for sync. */
  counters: number[];
}

/**
 * Vectors laid out like the parameter vector: the parameters, then each optimizer slot; then any
 * other state the algorithm keeps (saved as one flat tensor each, "state.<name>").
 */
export interface ModelVectors {
  params: number;
  optimizerState: number[];
  extra?: { name: string; ptr: number; floats: number }[];
}

const slotName = (slot: number, tensor: string) => `optimizer.slot${slot}.${tensor}`;

export async function saveCheckpoint(path: string, net: Network, memory: WebAssembly.Memory, v: ModelVectors, state: CheckpointState): Promise<void> {
  const tensors: Record<string, TensorToWrite> = {};
  for (const layer of net.params) {
    for (const t of layer.tensors) {
      // Copies: the shared memory may change under the writer's feet otherwise.
      tensors[t.name] = { dtype: "F32", shape: t.shape, data: f32(memory, v.params + t.offset * 4, t.floats).slice() };
      v.optimizerState.forEach((base, s) => {
        tensors[slotName(s, t.name)] = { dtype: "F32", shape: t.shape, data: f32(memory, base + t.offset * 4, t.floats).slice() };
      });
    }
  }
  for (const e of v.extra ?? []) tensors[`state.${e.name}`] = { dtype: "F32", shape: [e.floats], data: f32(memory, e.ptr, e.floats).slice() };
  await writeSafetensors(path, tensors, {
    format: FORMAT,
    model: net.specText,
    config: JSON.stringify(state.config),
    epochsDone: String(state.epochsDone),
    counters: JSON.stringify(state.counters),
  });
}

export interface LoadedCheckpoint {
  path: string;
  state: CheckpointState;
  /** Copies the saved vectors into the arena; checks every tensor is there with the right shape. */
  restore(net: Network, memory: WebAssembly.Memory, v: ModelVectors): void;
}

export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  const { tensors, metadata } = await readSafetensors(path);
  if (metadata.format !== FORMAT) throw new UserError(`${path}: not a skein checkpoint (metadata format is ${JSON.stringify(metadata.format ?? null)})`);
  let config: unknown;
  try {
    config = JSON.parse(metadata.config ?? "");
  } catch {
    throw new UserError(`${path}: the checkpoint's config metadata is not valid JSON`);
  }
  // Plain decimal counts only: "1e9" or " 3" is a hand edit, not something skein wrote.
  const count = (text: string | undefined) => (text !== undefined && /^(0|[1-9]\d{0,14})$/.test(text) ? Number(text) : NaN);
  const epochsDone = count(metadata.epochsDone);
  if (!Number.isInteger(epochsDone)) {
    throw new UserError(`${path}: the checkpoint's epochsDone metadata is not a count`);
  }
  let counters: unknown = [];
  try {
    counters = JSON.parse(metadata.counters ?? "[]");
  } catch {
    // reported below
  }
  // Counters live in Int32 words of the arena.
  if (!Array.isArray(counters) || !counters.every((c) => Number.isInteger(c) && c >= 0 && c <= 2 ** 31 - 1)) {
    throw new UserError(`${path}: the checkpoint's counters metadata is not a list of counts`);
  }
  return {
    path,
    state: { config, epochsDone, counters: counters as number[] },
    restore(net, memory, v) {
      const put = (name: string, shape: number[], base: number, offset: number) => {
        const t = tensors.get(name);
        if (!t) throw new UserError(`${path}: the checkpoint has no tensor ${name} (was it written for another model or optimizer?)`);
        if (t.dtype !== "F32" || t.shape.join("×") !== shape.join("×")) {
          throw new UserError(`${path}: tensor ${name} is ${t.dtype} ${t.shape.join("×")}, the model needs F32 ${shape.join("×")}`);
        }
        const values = tensorAsFloat32(t);
        // A NaN or infinity would train into more of them and be saved again: refuse it here.
        const bad = values.findIndex((x) => !Number.isFinite(x));
        if (bad >= 0) throw new UserError(`${path}: tensor ${name} holds ${values[bad]} at element ${bad}; a checkpoint must hold finite numbers`);
        f32(memory, base + offset * 4, shapeFloats(shape)).set(values);
      };
      for (const layer of net.params) {
        for (const t of layer.tensors) {
          put(t.name, t.shape, v.params, t.offset);
          v.optimizerState.forEach((base, s) => put(slotName(s, t.name), t.shape, base, t.offset));
        }
      }
      for (const e of v.extra ?? []) put(`state.${e.name}`, [e.floats], e.ptr, 0);
    },
  };
}

const shapeFloats = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
