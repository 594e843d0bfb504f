/**
 * The worker entry: instantiate the kernel module on the run's shared memory, rebuild the network
 * from its spec (same plan, same pointers as the main thread), then run role programs on request.
 * comlink carries these calls; the programs themselves synchronise through shared memory. The role
 * table comes from the algorithm registry: this entry is the one place a thread learns it.
 */
import * as Comlink from "comlink";
import { instantiateKernels } from "../engine/kernels/load.ts";
import type { KernelExports } from "../engine/kernels/abi.ts";
import { Network } from "../engine/model/network.ts";
import { Control } from "../engine/runtime/control.ts";
import type { RoleContext, RunSetup } from "../engine/runtime/context.ts";
import { ThreadSync } from "../engine/runtime/sync.ts";
import { Outbox } from "../engine/runtime/outbox.ts";
import { runRole } from "../engine/runtime/roles.ts";
import type { WorkerApi } from "../engine/runtime/worker-api.ts";
import { ROLE_TABLE } from "../engine/algorithms/registry.ts";
import { newKernelTimer, timeKernels } from "../engine/runtime/kernel-timer.ts";
import { SpanRecorder } from "../engine/runtime/trace.ts";
import { injectFault } from "../engine/runtime/fault.ts";
import { warmUp } from "../engine/runtime/warm-up.ts";

let ctx: RoleContext | null = null;

const api: WorkerApi = {
  warmUp,

  init(module, memory, setup, worker, fault) {
    let k: KernelExports = instantiateKernels(module, memory);
    if (fault && fault.worker === worker) {
      if (fault.at === "init") throw new Error(`injected fault at start-up of worker ${worker}`);
      k = injectFault(k, fault);
    }
    const kernelTimer = setup.profileKernels ? newKernelTimer() : null;
    if (kernelTimer) k = timeKernels(k, kernelTimer);
    const control = new Control(memory, setup.control, setup.programs);
    const net = new Network(setup.model, setup.inputShape, setup.classes);
    ctx = { k, memory, net, setup, worker, control, sync: threadSyncOf(control, setup, memory), kernelTimer, trace: setup.trace ? new SpanRecorder() : null };
  },

  run(role, args) {
    if (!ctx) throw new Error("worker used before init");
    return runRole(ROLE_TABLE, ctx, role, args);
  },
};

/** The barrier of this process's programs; across processes the main thread releases it (see ThreadSync). */
function threadSyncOf(control: Control, setup: RunSetup, memory: WebAssembly.Memory): ThreadSync {
  return setup.processes
    ? new ThreadSync(control, setup.processes.count, memory, undefined, true, new Outbox(memory, setup.control.outbox))
    : new ThreadSync(control, setup.programs, memory);
}

Comlink.expose(api);
