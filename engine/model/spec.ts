/**
 * Model specs as users write them on the command line:
 *   mlp:784-256-128-10        dense layers with relu between them (any widths; first = input size)
 *   mlp:784-256-10:tanh       the same with another hidden activation (relu | tanh | gelu)
 *   lenet                     LeNet-5 style: conv5-6, pool, conv5-16, pool, 120, 84, classes
 *                              (28×28×1 inputs get padding 2 on the first conv, 32×32×3 none)
 *   resnet:N                  He et al. 2016's CIFAR residual network, N = 6n + 2 (8, 20, 32, ...)
 *   resnet:N:b                the same with projection shortcuts (1×1 conv + BN) where the shape changes
 *   gpt:L-H-E-T               decoder-only transformer: L blocks, H heads, width E, context T (text data)
 */
import { UserError } from "../errors.ts";
import { buildGpt, parseGpt } from "./gpt.ts";
import { buildResnet, parseResnet } from "./resnet.ts";
import { Conv2d } from "./conv2d.ts";
import { Dense, Flatten, Pool2d, type ActName, type Layer, type Shape, shapeSize } from "./layers.ts";

const HIDDEN_ACTS: ActName[] = ["relu", "tanh", "gelu"];

export interface ModelSpec {
  text: string;
  build(inputShape: Shape, classes: number): Layer[];
  /** The input size the spec itself fixes (mlp's first width), to check against the data. */
  inputFloats?: number;
  /** Predictions per sample (a language model: one per position); 1 for classifiers. */
  positions?: number;
}

export function parseModelSpec(text: string): ModelSpec {
  const [name, ...rest] = text.split(":");
  if (name === "mlp") return parseMlp(text, rest);
  if (name === "lenet") {
    if (rest.length > 0) throw new UserError(`--model ${text}: lenet takes no options (write just "lenet")`);
    return { text, build: buildLenet };
  }
  if (name === "resnet") {
    const { depth, shortcut } = parseResnet(text, rest);
    return { text, build: (inputShape, classes) => buildResnet(text, depth, inputShape, classes, shortcut) };
  }
  if (name === "gpt") {
    const g = parseGpt(text, rest);
    return { text, positions: g.context, build: (inputShape, classes) => buildGpt(text, g, inputShape, classes) };
  }
  throw new UserError(`--model ${text}: unknown model; use mlp:784-256-128-10 (any widths), lenet, resnet:20 or gpt:4-4-128-64`);
}

function parseMlp(text: string, rest: string[]): ModelSpec {
  const [widthsText, actText, ...extra] = rest;
  const usage = `--model ${text}: expected mlp:IN-HIDDEN...-OUT[:relu|tanh|gelu], e.g. mlp:784-256-128-10`;
  if (!widthsText || extra.length > 0) throw new UserError(usage);
  const widths = widthsText.split("-").map((w) => (/^\d+$/.test(w) ? Number(w) : NaN));
  if (widths.length < 2 || widths.some((w) => !Number.isInteger(w) || w < 1 || w > 1 << 20)) throw new UserError(usage);
  const act = (actText ?? "relu") as ActName;
  if (!HIDDEN_ACTS.includes(act)) throw new UserError(`--model ${text}: unknown activation '${actText}' (use relu, tanh or gelu)`);
  return {
    text,
    inputFloats: widths[0],
    build(inputShape: Shape, classes: number): Layer[] {
      const layers: Layer[] = [];
      if (inputShape.length > 1) layers.push(new Flatten(inputShape));
      for (let i = 0; i + 1 < widths.length; i++) {
        const last = i + 2 === widths.length;
        layers.push(new Dense(widths[i]!, widths[i + 1]!, last ? "identity" : act));
      }
      checkClasses(text, widths[widths.length - 1]!, classes);
      return layers;
    },
  };
}

function buildLenet(inputShape: Shape, classes: number): Layer[] {
  if (inputShape.length !== 3) throw new UserError(`--model lenet needs image data (C×H×W); this data has flat ${shapeSize(inputShape)}-float samples`);
  const [, h, w] = inputShape as [number, number, number];
  if (h !== w || (h !== 28 && h !== 32)) {
    throw new UserError(`--model lenet expects 28×28 or 32×32 images; this data has ${h}×${w}`);
  }
  const pad = h === 28 ? 2 : 0; // 28×28 padded to LeNet's native 32×32 receptive layout
  const c1 = new Conv2d(inputShape, 6, 5, 1, pad, "relu");
  const p1 = new Pool2d(c1.outShape, "max", 2, 2);
  const c2 = new Conv2d(p1.outShape, 16, 5, 1, 0, "relu");
  const p2 = new Pool2d(c2.outShape, "max", 2, 2);
  const flat = new Flatten(p2.outShape);
  const f1 = new Dense(shapeSize(flat.outShape), 120, "relu");
  const f2 = new Dense(120, 84, "relu");
  const f3 = new Dense(84, classes, "identity");
  return [c1, p1, c2, p2, flat, f1, f2, f3];
}

function checkClasses(text: string, outputs: number, classes: number): void {
  if (outputs !== classes) throw new UserError(`--model ${text}: the last width is ${outputs} but the data has ${classes} classes`);
}

