export * from "./abi.ts";
export { ensureKernelsBuilt, kernelPath, kernelsUpToDate, KERNEL_FILES } from "./build.ts";
export {
  chooseVariant,
  instantiateKernels,
  loadKernelModule,
  setEmbeddedKernels,
  supportsRelaxedSimd,
  type KernelVariant,
} from "./load.ts";
