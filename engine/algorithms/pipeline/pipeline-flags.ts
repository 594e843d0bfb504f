/**
 * The pipeline flags beyond --stages and --microbatches: --schedule NAME|FILE (a built-in schedule such
 * as zb-h1 or interleaved:2 at the run's sizes, or a user's schedule, JSON) and
 * --pipeline-unit microbatch|batch. Which algorithms take them is the registry's to say (the train
 * command checks that); this reads and checks their values.
 */
import { existsSync } from "node:fs";
import { UserError } from "../../errors.ts";
import { readUserTextFile } from "../../user-file.ts";
import { DEFAULT_PIPELINE, type PipelineOptions, type PipelineUnit } from "./pipeline.ts";
import { buildSchedule, SCHEDULES, type Schedule } from "./schedule.ts";
import { parseScheduleJson } from "./schedule-file.ts";

const isScheduleName = (text: string) => text in SCHEDULES || /^interleaved:\d+$/.test(text);

export function pipelineScheduleFlags(given: Set<string>, v: Record<string, unknown>, sizes: Partial<PipelineOptions>): Partial<PipelineOptions> {
  const out: Partial<PipelineOptions> = {};
  if (given.has("pipeline-unit")) {
    if (given.has("schedule")) throw new UserError(`--pipeline-unit: a --schedule runs one window per batch; drop one of the two`);
    out.unit = String(v["pipeline-unit"]) as PipelineUnit;
  }
  if (given.has("schedule")) {
    const file = String(v.schedule);
    let schedule: Schedule;
    if (isScheduleName(file) && !existsSync(file)) {
      // A built-in schedule by name (zb-h1, interleaved:2, …) at the run's --stages and --microbatches.
      try {
        schedule = buildSchedule(file, sizes.stages ?? DEFAULT_PIPELINE.stages, sizes.microbatches ?? DEFAULT_PIPELINE.microbatches);
      } catch (e) {
        if (e instanceof RangeError) throw new UserError(`--schedule ${e.message.startsWith(file) ? "" : `${file}: `}${e.message}`);
        throw e;
      }
      out.schedule = schedule;
      return out;
    }
    schedule = parseScheduleJson(readUserTextFile(file, `--schedule ${file}`), `--schedule ${file}`, file);
    if (sizes.stages !== undefined && sizes.stages !== schedule.stages) throw new UserError(`--schedule ${file} has ${schedule.stages} stages but --stages is ${sizes.stages}`);
    if (sizes.microbatches !== undefined && sizes.microbatches !== schedule.microbatches) throw new UserError(`--schedule ${file} has ${schedule.microbatches} microbatches but --microbatches is ${sizes.microbatches}`);
    out.schedule = schedule;
    out.stages = schedule.stages;
    out.microbatches = schedule.microbatches;
  }
  return out;
}
