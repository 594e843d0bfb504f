// The kernel module: every export listed in engine/kernels/abi.ts (KernelExports), plus fma_ceiling
// for benchmarks. No allocation, no mutable globals, no static data: every worker instantiates this
// module on the same shared memory (asm/build.ts checks the output).

export * from "./gemm";
export * from "./activations";
export * from "./loss";
export * from "./conv";
export * from "./pool";
export * from "./optim";
export * from "./predict";
export * from "./vector";
export * from "./data";
export * from "./ceiling";
export * from "./resnet";
export * from "./winograd";
export * from "./gpt";
export * from "./attention";
