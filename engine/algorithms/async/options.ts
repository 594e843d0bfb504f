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
  /** Staleness-aware learning rate (Zhang, Gupta, Lian, Liu, IJCAI 2016): a gradient τ ≥ 1 versions old is applied with lr/τ. */
  stalenessLr: boolean;
  /** DC-ASGD's λ (Zheng et al., ICML 2017): compensate each gradient by λ·g⊙g⊙(w_now − w_read); 0 = off. */
  dcLambda: number;
}

export const DEFAULT_ASYNC: AsyncOptions = { replicas: 1, avgEvery: 8, fwdThreads: 1, bwdThreads: 2, queue: 4, lppWarmup: 1, stalenessLr: false, dcLambda: 0 };
