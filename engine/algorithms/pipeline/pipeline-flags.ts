/**
 * The pipeline flags beyond --stages and --microbatches: --schedule FILE (a user's schedule, JSON) and
 * --pipeline-unit microbatch|batch. Kept here so the train command only forwards to it.
 */
import { readFileSync } from "node:fs";
import { UserError } from "../../errors.ts";
import type { PipelineOptions, PipelineUnit } from "./pipeline.ts";
import { parseScheduleJson } from "./schedule-file.ts";
import { isPipeline, PIPELINE_ALGORITHMS } from "./strategies.ts";

export function pipelineScheduleFlags(algo: string, given: Set<string>, v: Record<string, unknown>, sizes: Partial<PipelineOptions>): Partial<PipelineOptions> {
  const out: Partial<PipelineOptions> = {};
  for (const flag of ["schedule", "pipeline-unit"]) {
    if (given.has(flag) && !isPipeline(algo)) throw new UserError(`--${flag} applies to --algo ${PIPELINE_ALGORITHMS.join("|")}, not ${algo}`);
  }
  if (given.has("pipeline-unit")) {
    if (algo !== "pipedream" && algo !== "spectrain" && algo !== "pipeoptim") throw new UserError(`--pipeline-unit applies to --algo pipedream|spectrain|pipeoptim; ${algo} always updates once per batch`);
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
