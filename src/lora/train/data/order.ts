// The order sequences are taken in: one seeded permutation per epoch, a pure function of
// (seed, epoch), so a checkpoint needs only (epoch, index) to continue exactly.
import { seededRandom } from "../../../formats/tiny/random.ts";
import { TrainingError } from "../errors.ts";

function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${what} must be an integer ≥ ${min}, got ${value}`);
}

/** A 32-bit seed for one epoch's shuffle, mixing all 53 bits of the seed with the epoch (murmur3's finalizer). */
function epochSeed(seed: number, epoch: number): number {
  const low = seed >>> 0;
  const high = Math.floor(seed / 2 ** 32) >>> 0;
  let h = Math.imul(low ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(high + 0x7f4a7c15, 0xc2b2ae35) ^ Math.imul(epoch + 1, 0x27d4eb2f);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The order of epoch `epoch`: a Fisher–Yates shuffle of 0…size−1 driven by mulberry32. */
export function epochPermutation(size: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  const random = seededRandom(epochSeed(seed, epoch));
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Seeded order of sequence indices over epochs; state is two numbers, so a checkpoint restores it exactly. */
export class BatchOrder {
  readonly size: number;
  readonly seed: number;
  readonly shuffle: boolean;
  #epoch: number;
  #index: number;
  #order: Uint32Array | undefined;
  #orderEpoch = -1;

  constructor(size: number, options: { seed: number; shuffle: boolean; epoch?: number; index?: number }) {
    checkCount(size, "the number of sequences", 1);
    if (!Number.isSafeInteger(options.seed)) throw new TrainingError("ERR_TRAIN_ARGUMENT", `seed must be an integer, got ${options.seed}`);
    const epoch = options.epoch ?? 0;
    const index = options.index ?? 0;
    checkCount(epoch, "epoch", 0);
    checkCount(index, "index", 0);
    if (index >= size) throw new TrainingError("ERR_TRAIN_ARGUMENT", `index ${index} is past the ${size} sequences of an epoch`);
    this.size = size;
    this.seed = options.seed;
    this.shuffle = options.shuffle;
    this.#epoch = epoch;
    this.#index = index;
  }

  /** The next `count` sequence indices (crossing into the next epoch, reshuffled, when one ends). */
  next(count: number): number[] {
    checkCount(count, "count", 0);
    const indices: number[] = [];
    while (indices.length < count) {
      indices.push(this.shuffle ? this.#permutation()[this.#index]! : this.#index);
      if (++this.#index === this.size) {
        this.#index = 0;
        this.#epoch++;
      }
    }
    return indices;
  }

  /** Completed epochs: the epoch the next index comes from. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The position of the next index within its epoch. */
  get index(): number {
    return this.#index;
  }

  /** Steps per epoch for a batch size: batches needed to take every sequence once (the last may reach into the next epoch). */
  stepsPerEpoch(batchSize: number): number {
    checkCount(batchSize, "batch size", 1);
    return Math.ceil(this.size / batchSize);
  }

  #permutation(): Uint32Array {
    if (this.#orderEpoch !== this.#epoch) {
      this.#order = epochPermutation(this.size, this.seed, this.#epoch);
      this.#orderEpoch = this.#epoch;
    }
    return this.#order!;
  }
}
