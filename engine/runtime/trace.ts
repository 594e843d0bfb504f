/**
 * Spans for a Chrome trace (trace.json, opens in Perfetto or chrome://tracing): each role program
 * records what it did when (forward, backward, update, mix…), the session writes one track per worker.
 *
 * Off unless the run has a run folder: `mark` then returns 0 and `span` does nothing, so algorithms
 * can call them unconditionally at the cost of a branch.
 */
export interface SpanLog {
  names: string[];
  /** Flat triples: name index, start (µs since the epoch of Unix time), duration (µs). */
  spans: number[];
}

/** Spans per program per epoch beyond which a trace keeps counting time but stops recording. */
const MAX_SPANS = 50_000;

export class SpanRecorder {
  private names: string[] = [];
  private index = new Map<string, number>();
  private spans: number[] = [];

  /** `now`: the program's clock in µs (wall-clock by default; the simulated executor's virtual clock). */
  constructor(readonly now: () => number = SpanRecorder.wallNow) {}

  /** Now, in µs of wall-clock time: comparable across workers (each has its own timeOrigin). */
  static wallNow(): number {
    return (performance.timeOrigin + performance.now()) * 1000;
  }

  record(name: string, startUs: number): void {
    if (this.spans.length >= MAX_SPANS * 3) return;
    let i = this.index.get(name);
    if (i === undefined) this.index.set(name, (i = this.names.push(name) - 1));
    this.spans.push(i, startUs, this.now() - startUs);
  }

  /** Hand over what was recorded since the last call. */
  take(): SpanLog {
    const log = { names: this.names, spans: this.spans };
    this.names = [];
    this.index = new Map();
    this.spans = [];
    return log;
  }
}

/** The start of a span, or 0 when the program is not traced. */
export function mark(trace: SpanRecorder | null): number {
  return trace ? trace.now() : 0;
}

export function span(trace: SpanRecorder | null, name: string, start: number): void {
  if (trace) trace.record(name, start);
}

export interface TraceEvent {
  name: string;
  cat?: string;
  ph: "X" | "M";
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  args?: Record<string, unknown>;
}

/** Chrome trace events for one program's log (tid = worker), plus its track name. */
export function traceEvents(log: SpanLog, worker: number, track: string): TraceEvent[] {
  const events: TraceEvent[] = [{ name: "thread_name", ph: "M", pid: 1, tid: worker, args: { name: track } }];
  for (let s = 0; s < log.spans.length; s += 3) {
    events.push({ name: log.names[log.spans[s]!]!, cat: "skein", ph: "X", ts: log.spans[s + 1]!, dur: log.spans[s + 2]!, pid: 1, tid: worker });
  }
  return events;
}
