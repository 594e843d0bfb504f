/**
 * Role programs as the runtime sees them: a table from names to generator functions, handed to the
 * executors from above. The runtime never learns which algorithms exist; the algorithm registry builds
 * the table, the orchestrator gives it to the deterministic executor, and the worker entry gives it
 * to every thread. A program's arguments are plain numbers, so they cross comlink unchanged.
 */
import type { RoleContext } from "./context.ts";
import { runToEnd, type RoleProgram } from "./sync.ts";
import { takeKernelMsByName } from "./kernel-timer.ts";

export type RoleArgs = Record<string, number>;

/** One role: the program a worker runs for it. The context's layout is the algorithm's own. */
// `any`: each role reads its own layout type, so the table is heterogeneous by design.
export type Role = (ctx: RoleContext<any>, args: RoleArgs) => RoleProgram<unknown>;

export type RoleTable = Readonly<Record<string, Role>>;

/** The role named `name`, or an error naming the roles that exist (a worker asked for an unknown one). */
export function roleOf(table: RoleTable, name: string): Role {
  const role = table[name];
  if (!role) throw new Error(`no role program named '${name}' (known: ${Object.keys(table).join(", ")})`);
  return role;
}

/** Run a role to completion on this thread (the threaded executor), adding its kernel time if profiled. */
export function runRole(table: RoleTable, ctx: RoleContext, name: string, args: RoleArgs): unknown {
  const before = ctx.kernelTimer?.ms ?? 0;
  const result = runToEnd(roleOf(table, name)(ctx, args));
  return withRunFacts(ctx, result, before);
}

/** Attach what the executor measured around a program: kernel time since `before`, trace spans. */
export function withRunFacts(ctx: RoleContext, result: unknown, before: number): unknown {
  if (typeof result !== "object" || result === null) return result;
  return {
    ...result,
    ...(ctx.kernelTimer ? { kernelMs: ctx.kernelTimer.ms - before, kernelMsByName: takeKernelMsByName(ctx.kernelTimer) } : {}),
    ...(ctx.trace ? { trace: ctx.trace.take() } : {}),
  };
}
