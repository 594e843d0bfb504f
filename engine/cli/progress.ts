/**
 * Progress on stderr: a redrawn bar when stderr is a terminal, occasional plain lines otherwise
 * (logs and CI get a readable record instead of carriage-return noise).
 */
import type { Progress } from "../train.ts";

const BAR_WIDTH = 24;
/** Without a TTY: one line per quarter of an epoch. */
const PLAIN_STEPS = 4;

export class ProgressDisplay {
  private lastPlain = -1;
  private drawn = false;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly tty = Boolean(process.stderr.isTTY),
  ) {}

  update(p: Progress): void {
    const frac = Math.min(1, Math.max(0, p.epochFraction));
    const stats = `${formatRate(p.samplesPerSec)} samples/s  loss ${Number.isFinite(p.loss) ? p.loss.toFixed(4) : "-"}  ETA ${formatDuration(p.etaSec)}`;
    if (this.tty) {
      const filled = Math.round(frac * BAR_WIDTH);
      const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
      this.stream.write(`\r\x1b[Kepoch ${p.epoch}/${p.epochs} ${bar} ${(frac * 100).toFixed(0).padStart(3)}%  ${stats}`);
      this.drawn = true;
      return;
    }
    const tick = (p.epoch - 1) * PLAIN_STEPS + Math.floor(frac * PLAIN_STEPS);
    if (tick > this.lastPlain && frac > 0) {
      this.lastPlain = tick;
      this.stream.write(`epoch ${p.epoch}/${p.epochs} ${(frac * 100).toFixed(0)}%  ${stats}\n`);
    }
  }

  /** A permanent line (epoch results); clears the bar first so they do not mix. */
  line(text: string): void {
    this.clear();
    this.stream.write(text + "\n");
  }

  clear(): void {
    if (this.tty && this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }
}

export function formatRate(r: number): string {
  if (!Number.isFinite(r)) return "-";
  return r >= 1000 ? `${(r / 1000).toFixed(1)}k` : r.toFixed(0);
}

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "-";
  const s = Math.round(sec);
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
