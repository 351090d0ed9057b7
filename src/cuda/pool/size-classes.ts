// Size classes: a request is rounded up to one of eight steps per power of two, so a block
// handed out is never more than 12.5% larger than asked (the CuPy/PyTorch trade-off between
// reuse and waste), and every size is a multiple of the unit the memory is split in.

/**
 * Rounds `count` up to the next multiple of an eighth of its power of two (exact up to 8), in
 * whole units. Waste is below `count / 8` for every count above 8.
 */
export function roundToClass(count: number): number {
  if (count <= 8) return count;
  // On every pool allocation: integer bit arithmetic where it fits 32 bits (Math.log2 and 2 ** n
  // took a tenth of a pool hit's time on V8).
  const step = count < 2 ** 31 ? 1 << (28 - Math.clz32(count)) : 2 ** (Math.floor(Math.log2(count)) - 3);
  return Math.ceil(count / step) * step;
}

/** Rounds a byte count to its class in units of `unit` bytes: the unit count to reserve. */
export function unitsForBytes(bytes: number, unit: number): number {
  return roundToClass(Math.ceil(bytes / unit));
}
