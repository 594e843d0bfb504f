/**
 * Staleness accounting for asynchronous updates. Every layer has a version counter, bumped by each
 * update applied to it. A forward pass records the version of each layer it read; when that pass's
 * gradient for layer m is applied, staleness = version at apply − version read = the number of other
 * updates the layer received in between (0 = the gradient was computed on the current weights).
 *
 * The report also counts gradients produced and applied per layer: an update lost or applied twice
 * shows up as produced ≠ applied.
 */
export const HISTOGRAM_BINS = 32; // staleness 0..30, and 31 for "31 or more"

export interface LayerStaleness {
  layer: number;
  produced: number;
  applied: number;
  sum: number;
  max: number;
  histogram: number[];
}

export interface StalenessReport {
  layers: LayerStaleness[];
}

export class StalenessRecorder {
  private readonly byLayer = new Map<number, LayerStaleness>();

  constructor(layers: number[]) {
    for (const layer of layers) this.byLayer.set(layer, { layer, produced: 0, applied: 0, sum: 0, max: 0, histogram: new Array(HISTOGRAM_BINS).fill(0) });
  }

  produced(layer: number): void {
    this.byLayer.get(layer)!.produced++;
  }

  applied(layer: number, staleness: number): void {
    const s = this.byLayer.get(layer)!;
    s.applied++;
    s.sum += staleness;
    s.max = Math.max(s.max, staleness);
    s.histogram[Math.min(staleness, HISTOGRAM_BINS - 1)]!++;
  }

  report(): StalenessReport {
    return { layers: [...this.byLayer.values()] };
  }
}

/** Sum of reports (per layer, in layer order). */
export function mergeStaleness(reports: (StalenessReport | undefined)[]): StalenessReport | undefined {
  const present = reports.filter((r): r is StalenessReport => r !== undefined);
  if (present.length === 0) return undefined;
  const byLayer = new Map<number, LayerStaleness>();
  for (const r of present) {
    for (const l of r.layers) {
      const m = byLayer.get(l.layer) ?? { layer: l.layer, produced: 0, applied: 0, sum: 0, max: 0, histogram: new Array(HISTOGRAM_BINS).fill(0) };
      m.produced += l.produced;
      m.applied += l.applied;
      m.sum += l.sum;
      m.max = Math.max(m.max, l.max);
      l.histogram.forEach((c, i) => (m.histogram[i]! += c));
      byLayer.set(l.layer, m);
    }
  }
  return { layers: [...byLayer.values()].sort((a, b) => a.layer - b.layer) };
}

/** Per-layer mean and max, for metrics lines and the summary. */
export function summarizeStaleness(r: StalenessReport): { layer: number; mean: number; max: number; applied: number; histogram: number[] }[] {
  return r.layers.map((l) => ({ layer: l.layer, mean: l.applied > 0 ? l.sum / l.applied : 0, max: l.max, applied: l.applied, histogram: l.histogram }));
}

/** Over all layers: the mean staleness of every applied update, and the largest. */
export function overallStaleness(layers: readonly { mean: number; max: number; applied: number }[]): { mean: number; max: number } {
  const applied = layers.reduce((a, l) => a + l.applied, 0);
  const mean = layers.reduce((a, l) => a + l.mean * l.applied, 0) / Math.max(applied, 1);
  return { mean, max: Math.max(0, ...layers.map((l) => l.max)) };
}
