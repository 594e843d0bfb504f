/** Options of the asynchronous family (hogwild, lap, lpp, layerwise); the others ignore them. */
export interface AsyncOptions {
  /** Model replicas (lap, lpp, layerwise): each trained by its own group of threads, averaged every avgEvery batches. */
  replicas: number;
  avgEvery: number;
  /** layerwise: forward and backward threads per replica, and activation slots in flight per replica. */
  fwdThreads: number;
  bwdThreads: number;
  queue: number;
  /** lpp: epochs of full-gradient steps before partial steps start. */
  lppWarmup: number;
}

export const DEFAULT_ASYNC: AsyncOptions = { replicas: 1, avgEvery: 8, fwdThreads: 1, bwdThreads: 2, queue: 4, lppWarmup: 1 };
