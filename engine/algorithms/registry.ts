/**
 * Every algorithm `skein train --algo` knows, in one table: the CLI's help and validation, the
 * training loop, the report and the experiment suites learn from here which algorithms exist. Adding
 * one is a file exporting an `Algorithm` and a line below.
 */
import { UserError } from "../errors.ts";
import type { Role, RoleTable } from "../runtime/roles.ts";
import type { Algorithm, Family } from "./algorithm.ts";
import { evaluateBlocks } from "./evaluate.ts";
import { syncSgd } from "./sync-sgd.ts";
import { hogwild } from "./async/hogwild.ts";
import { lap } from "./async/lap.ts";
import { lpp } from "./async/lpp.ts";
import { layerwise } from "./async/layerwise.ts";
import { layup } from "./async/layup.ts";
import { pmsgd } from "./gossip/pmsgd.ts";
import { dsgd } from "./gossip/dsgd.ts";
import { dmsgd } from "./gossip/dmsgd.ts";
import { decentlam } from "./gossip/decentlam.ts";
import { gt } from "./gossip/gt.ts";
import { ed } from "./gossip/ed.ts";
import { qgm } from "./gossip/qgm.ts";
import { sgp } from "./gossip/sgp.ts";
import { localsgd, slowmo } from "./gossip/slowmo.ts";
import { gpipe, oneFOneB, pipedream, pipeoptim, spectrain, twoBW } from "./pipeline/algorithms.ts";

export const ALGORITHMS: readonly Algorithm[] = [
  syncSgd,
  hogwild,
  lap,
  lpp,
  layerwise,
  layup,
  gpipe,
  oneFOneB,
  pipedream,
  twoBW,
  spectrain,
  pipeoptim,
  pmsgd,
  dsgd,
  dmsgd,
  decentlam,
  gt,
  ed,
  qgm,
  sgp,
  localsgd,
  slowmo,
];

export const ALGORITHM_NAMES: readonly string[] = ALGORITHMS.map((a) => a.name);

const byName = new Map(ALGORITHMS.map((a) => [a.name, a]));

/** The algorithm called `name`, or a UserError listing the ones that exist. */
export function algorithmNamed(name: string, where = "--algo"): Algorithm {
  const algorithm = byName.get(name);
  if (!algorithm) throw new UserError(`${where} ${name}: expected one of ${ALGORITHM_NAMES.join(", ")}`);
  return algorithm;
}

export function algorithmsOf(family: Family): Algorithm[] {
  return ALGORITHMS.filter((a) => a.family === family);
}

export const isFamily = (name: string, family: Family): boolean => byName.get(name)?.family === family;

/** Role programs by name, for the executors: each algorithm's epoch under its own name, and evaluation. */
export const ROLE_TABLE: RoleTable = {
  ...Object.fromEntries(ALGORITHMS.map((a): [string, Role] => [a.name, (ctx, args) => a.epoch(ctx, args.epoch!)])),
  evaluate: (ctx, a) => evaluateBlocks(ctx, a.params!, a.count!, a.rows!, a.cells!),
};
