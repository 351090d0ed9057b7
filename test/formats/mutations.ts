// Byte-level mutations for fuzzing readers: bit flips, truncation, huge counts and lengths
// written over header fields, copied and deleted ranges. Positions favour the header, where
// the parser's decisions are.
import fc from "fast-check";

export interface Seed {
  readonly bytes: Uint8Array;
  /** Bytes at the start that hold the header; most mutations land there. */
  readonly headerLength: number;
}

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "truncate"; at: number }
  | { kind: "u64"; at: number; value: bigint }
  | { kind: "u32"; at: number; value: number }
  | { kind: "copy"; from: number; at: number; length: number }
  | { kind: "delete"; at: number; length: number };

const position = fc.nat();
const hugeU64 = fc.oneof(
  fc.constantFrom(2n ** 64n - 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 32n, 2n ** 32n - 1n, 2n ** 31n, 2n ** 53n + 1n, 1n << 40n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: 0n, max: 4096n }),
);
const smallOrHugeU32 = fc.oneof(fc.integer({ min: -2, max: 64 }).map((n) => n >>> 0), fc.integer({ min: 0, max: 0xffffffff }));

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, bit: fc.nat(7) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({ kind: fc.constant("u64" as const), at: position, value: hugeU64 }),
  fc.record({ kind: fc.constant("u32" as const), at: position, value: smallOrHugeU32 }),
  fc.record({ kind: fc.constant("copy" as const), from: position, at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 16 }) }),
);

function apply(seed: Seed, mutations: readonly Mutation[]): Uint8Array {
  let bytes = seed.bytes.slice();
  for (const m of mutations) {
    if (bytes.length === 0) break;
    // Four in five mutations hit the header.
    const span = m.at % 5 === 0 ? bytes.length : Math.min(bytes.length, seed.headerLength);
    const at = Math.floor(m.at / 5) % span;
    const view = new DataView(bytes.buffer);
    switch (m.kind) {
      case "flip": bytes[at] = bytes[at]! ^ (1 << m.bit); break;
      case "truncate": bytes = bytes.slice(0, at); break;
      case "u64": if (at + 8 <= bytes.length) view.setBigUint64(at, m.value, true); break;
      case "u32": if (at + 4 <= bytes.length) view.setUint32(at, m.value, true); break;
      case "copy": bytes.copyWithin(at, m.from % bytes.length, (m.from % bytes.length) + m.length); break;
      case "delete": bytes = Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + m.length)); break;
    }
  }
  return bytes;
}

/** Files made by applying one to four random mutations to one of the seeds. */
export function mutatedFile(seeds: readonly Seed[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.nat(seeds.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 }))
    .map(([i, mutations]) => apply(seeds[i]!, mutations));
}

/**
 * Runs `parse` on `runs` inputs and fails on anything but success or `isExpected` errors, or
 * on an input slower than `maxMsPerInput`. Returns how many inputs parsed successfully.
 */
export function fuzz(inputs: fc.Arbitrary<Uint8Array>, runs: number, parse: (bytes: Uint8Array) => void, isExpected: (error: unknown) => boolean, maxMsPerInput = 500): number {
  let accepted = 0;
  fc.assert(fc.property(inputs, (bytes) => {
    const start = performance.now();
    try {
      parse(bytes);
      accepted++;
    } catch (error) {
      if (!isExpected(error)) throw error;
    }
    const ms = performance.now() - start;
    if (ms > maxMsPerInput) throw new Error(`input of ${bytes.length} bytes took ${ms.toFixed(0)} ms`);
  }), { numRuns: runs });
  return accepted;
}
