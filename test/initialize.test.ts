/**
 * Network.initialize draws every weight tensor, in layer order, element by element, from one stream:
 * N(0, std²) with std = √(gain / fan-in), biases zero. The draw loop is its own function (kept off the
 * FTL tier, engine/kernels/jit.ts); this pins the weights to that definition, written out here as
 * plainly as possible, for generated MLP shapes and seeds.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Network } from "../engine/model/network.ts";
import { Rng } from "../engine/rng.ts";

/**
 * The definition for an mlp with relu hidden layers: per dense layer its weight (He: gain 2; the last
 * layer, identity: gain 1), then its bias, zero. Placed at the tensors' offsets (padding stays zero).
 */
function reference(net: Network, sizes: number[], seed: number): Float32Array<ArrayBuffer> {
  const rng = Rng.derive(seed, "init");
  const out = new Float32Array(net.paramFloats);
  for (let l = 0; l + 1 < sizes.length; l++) {
    const [fanIn, fanOut] = [sizes[l]!, sizes[l + 1]!];
    const std = Math.sqrt((l + 2 < sizes.length ? 2 : 1) / fanIn);
    const [weight, bias] = net.params[l]!.tensors;
    expect([weight!.floats, bias!.floats]).toEqual([fanIn * fanOut, fanOut]);
    for (let e = 0; e < fanIn * fanOut; e++) out[weight!.offset + e] = rng.normal() * std;
  }
  return out;
}

describe("Network.initialize", () => {
  test("equals one stream of Gaussian draws, tensor by tensor, scaled by each layer's std", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 2, maxLength: 4 }), fc.integer({ min: 1, max: 1 << 30 }), (sizes, seed) => {
        const net = new Network(`mlp:${sizes.join("-")}`, [sizes[0]!], sizes.at(-1)!);
        const params = new Float32Array(net.paramFloats);
        net.initialize(params, Rng.derive(seed, "init"));
        expect(new Uint32Array(params.buffer)).toEqual(new Uint32Array(reference(net, sizes, seed).buffer)); // bitwise
      }),
      { numRuns: 60 },
    );
  });
});
