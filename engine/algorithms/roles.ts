/**
 * Every role program a worker can run, by name. Workers receive the name and plain-JSON arguments
 * over comlink, so this table is the whole surface between the orchestrator and the programs.
 */
import type { RoleContext } from "../runtime/context.ts";
import { runToEnd, type RoleProgram } from "../runtime/sync.ts";
import { evaluateRange } from "./evaluate.ts";
import { syncWorkerEpoch } from "./sync.ts";
import { hogwildWorkerEpoch } from "./async/hogwild.ts";
import { layerwiseEpoch } from "./async/layerwise.ts";
import { gossipWorkerEpoch } from "./gossip/gossip.ts";
import { pipelineStageEpoch } from "./pipeline/pipeline.ts";

type Args = Record<string, number>;

export const ROLES = {
  "sync.epoch": (ctx: RoleContext, a: Args) => syncWorkerEpoch(ctx, a.epoch!),
  "hogwild.epoch": (ctx: RoleContext, a: Args) => hogwildWorkerEpoch(ctx, a.epoch!),
  "layerwise.epoch": (ctx: RoleContext, a: Args) => layerwiseEpoch(ctx, a.epoch!),
  "gossip.epoch": (ctx: RoleContext, a: Args) => gossipWorkerEpoch(ctx, a.epoch!),
  "pipeline.epoch": (ctx: RoleContext, a: Args) => pipelineStageEpoch(ctx, a.epoch!),
  evaluate: (ctx: RoleContext, a: Args) => evaluateRange(ctx, a.params!, a.lo!, a.hi!),
} satisfies Record<string, (ctx: RoleContext, args: Args) => RoleProgram<unknown>>;

export type RoleName = keyof typeof ROLES;

/** Run a role to completion on this thread (the threaded executor), adding its kernel time if profiled. */
export function runRole(ctx: RoleContext, role: RoleName, args: Args): unknown {
  const before = ctx.kernelTimer?.ms ?? 0;
  const result = runToEnd(ROLES[role](ctx, args) as RoleProgram<unknown>);
  return withRunFacts(ctx, result, before);
}

/** Attach what the executor measured around a program: kernel time since `before`, trace spans. */
export function withRunFacts(ctx: RoleContext, result: unknown, before: number): unknown {
  if (typeof result !== "object" || result === null) return result;
  return {
    ...result,
    ...(ctx.kernelTimer ? { kernelMs: ctx.kernelTimer.ms - before } : {}),
    ...(ctx.trace ? { trace: ctx.trace.take() } : {}),
  };
}
