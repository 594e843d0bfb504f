/**
 * One progress bar for a run that spans processes: each follower sends its programs' progress a few
 * times a second (and once at the end of an epoch), and the coordinator writes it into those programs'
 * progress cells of its own control block, where the session reads it as if they ran here.
 *
 * The body is, per program of the sender in order, its Σ loss and its samples so far this epoch, as
 * two f64s.
 */
import type { Control } from "../runtime/control.ts";

/** How often a follower sends its progress while an epoch runs. */
export const PROGRESS_MS = 200;

/** The progress of programs first … first + count − 1, as a follower sends it. */
export function progressBody(control: Control, first: number, count: number): Uint8Array {
  const body = new Float64Array(2 * count);
  for (let d = 0; d < count; d++) body.set(control.progressOf(first + d), 2 * d);
  return new Uint8Array(body.buffer);
}

/** Coordinator: a follower's progress, into that follower's programs' progress cells here. */
export function writeProgress(control: Control, programsOf: (rank: number) => { first: number; count: number }, from: number, body: Uint8Array): void {
  const { first, count } = programsOf(from);
  if (body.length !== 16 * count) return; // a follower's progress is advisory: a wrong size is ignored, not trusted
  const figures = new Float64Array(Uint8Array.from(body).buffer);
  for (let d = 0; d < count; d++) control.setProgress(first + d, figures[2 * d]!, figures[2 * d + 1]!);
}
