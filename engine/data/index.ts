/** The data layer: sources → Dataset (u8 samples + normalization), epoch orders and partitions. */
export type { Dataset, Split } from "./types.ts";
export { sampleSize, standardizeFromTrain } from "./types.ts";
export { loadEmbeddedDigits, setEmbeddedDigits, buildDigitsCache, DIGITS_CACHE_PATH } from "./embedded.ts";
export { loadIdx, encodeIdx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, type IdxOptions } from "./idx.ts";
export { loadCifar10, encodeCifarBatch } from "./cifar10.ts";
export { synthetic, type SyntheticOptions } from "./synthetic.ts";
export { parseDataSpec, loadDataset, DEFAULT_DATA_SPEC, type DataSpec } from "./source.ts";
export { epochOrder, partition, parsePartitionSpec, type PartitionSpec } from "./order.ts";
