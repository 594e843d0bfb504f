/**
 * Worker scaling in one process, paired: epochs of a 1-worker session, a 2-worker session and two
 * 1-worker sessions training at the same time (the capacity) alternate, rotating which goes first, so
 * drift slower than a few epochs cancels in each round's ratios.
 */
import type { TrainingSession } from "../engine/train.ts";

export interface ScalingSessions {
  one: TrainingSession;
  two: TrainingSession;
  pair: [TrainingSession, TrainingSession];
}

/** One epoch of each session, run at the same time; samples/s summed. */
export async function epochsAtOnce(sessions: TrainingSession[]): Promise<number> {
  const outcomes = await Promise.all(sessions.map((s) => s.trainEpoch()));
  return outcomes.reduce((a, o) => a + o.samples / o.seconds, 0);
}

/** Per round: 2w/1w, capacity/1w and 2w/capacity. */
export async function pairedScaling({ one, two, pair }: ScalingSessions, rounds: number): Promise<{ two: number[]; capacity: number[]; twoOfCapacity: number[] }> {
  const ratios = { two: [] as number[], capacity: [] as number[], twoOfCapacity: [] as number[] };
  const arms = [() => epochsAtOnce([one]), () => epochsAtOnce([two]), () => epochsAtOnce(pair)];
  for (let r = 0; r < rounds; r++) {
    const got: number[] = [];
    for (let j = 0; j < arms.length; j++) {
      const i = (r + j) % arms.length;
      got[i] = await arms[i]!();
    }
    const [rateOne, rateTwo, rateCapacity] = got as [number, number, number];
    ratios.two.push(rateTwo / rateOne);
    ratios.capacity.push(rateCapacity / rateOne);
    ratios.twoOfCapacity.push(rateTwo / rateCapacity);
  }
  return ratios;
}
