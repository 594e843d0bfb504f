/**
 * The pipeline flags beyond --stages and --microbatches: --schedule FILE (a user's schedule, JSON) and
 * --pipeline-unit microbatch|batch. Which algorithms take them is the registry's to say (the train
 * command checks that); this reads and checks their values.
 */
import { readFileSync } from "node:fs";
import { UserError } from "../../errors.ts";
import type { PipelineOptions, PipelineUnit } from "./pipeline.ts";
import { parseScheduleJson } from "./schedule-file.ts";

export function pipelineScheduleFlags(given: Set<string>, v: Record<string, unknown>, sizes: Partial<PipelineOptions>): Partial<PipelineOptions> {
  const out: Partial<PipelineOptions> = {};
  if (given.has("pipeline-unit")) {
    if (given.has("schedule")) throw new UserError(`--pipeline-unit: a --schedule runs one window per batch; drop one of the two`);
    out.unit = String(v["pipeline-unit"]) as PipelineUnit;
  }
  if (given.has("schedule")) {
    const file = String(v.schedule);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      throw new UserError(`--schedule ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const schedule = parseScheduleJson(text, `--schedule ${file}`, file);
    if (sizes.stages !== undefined && sizes.stages !== schedule.stages) throw new UserError(`--schedule ${file} has ${schedule.stages} stages but --stages is ${sizes.stages}`);
    if (sizes.microbatches !== undefined && sizes.microbatches !== schedule.microbatches) throw new UserError(`--schedule ${file} has ${schedule.microbatches} microbatches but --microbatches is ${sizes.microbatches}`);
    out.schedule = schedule;
    out.stages = schedule.stages;
    out.microbatches = schedule.microbatches;
  }
  return out;
}
