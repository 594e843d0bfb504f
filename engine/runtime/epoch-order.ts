/**
 * The epoch's order of the training split, drawn once per run and epoch by the main thread into the
 * arena instead of by every worker at the start of its epoch. The shuffle is the same pure function of
 * (count, seed, epoch) either way, so the samples and the weights do not change; what changes is when
 * it runs: in the first epoch every worker would shuffle in still-unoptimised JavaScript (a few
 * milliseconds) before its first step, and in every epoch all workers would draw the same permutation
 * on the epoch's critical path. The session publishes an epoch's order while no program of the run
 * reads it (before the workers start, before an epoch, or while they evaluate), and marks which epoch
 * it is; a program that finds another epoch marked (a process of a run that spans processes, whose
 * session never publishes) draws the order itself.
 */
import { epochOrder, epochOrderInto } from "../data/order.ts";
import { WORD, type Control } from "./control.ts";
import type { DataLayout, RoleContext } from "./context.ts";

/** Main thread, while no program reads the order: write epoch `epoch`'s order and mark it. */
export function publishEpochOrder(memory: WebAssembly.Memory, data: DataLayout, control: Control, seed: number, epoch: number): void {
  if (control.read(WORD.orderEpoch) === epoch + 1) return;
  control.reset(WORD.orderEpoch);
  epochOrderInto(new Uint32Array(memory.buffer, data.order, data.trainCount), seed, epoch);
  control.write(WORD.orderEpoch, epoch + 1);
}

/** A program's view of epoch `epoch`'s order: the published one when it is that epoch's, else drawn here. */
export function epochOrderOf(ctx: RoleContext, epoch: number): Uint32Array {
  const { data, seed } = ctx.setup;
  if (ctx.control.read(WORD.orderEpoch) === epoch + 1) return new Uint32Array(ctx.memory.buffer, data.order, data.trainCount);
  return epochOrder(data.trainCount, seed, epoch);
}
