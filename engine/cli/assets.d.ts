// Files embedded in the single binary with `import path from "..." with { type: "file" }`.
declare module "*.wasm" {
  const path: string;
  export default path;
}
declare module "*.bin" {
  const path: string;
  export default path;
}
declare const WORKER_IN_BINARY: string;
