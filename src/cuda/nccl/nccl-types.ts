// NCCL's data types and reduction operations by name, with the element sizes that JS checks
// counts and offsets against before a collective reaches C.
import { CudaArgumentError } from "../errors.ts";

/** ncclDataType_t codes and element sizes (nccl.h). The fp8 types need NCCL 2.24+ and sm_90+. */
export const NcclDataType = {
  int8: { code: 0, bytes: 1 },
  uint8: { code: 1, bytes: 1 },
  int32: { code: 2, bytes: 4 },
  uint32: { code: 3, bytes: 4 },
  int64: { code: 4, bytes: 8 },
  uint64: { code: 5, bytes: 8 },
  float16: { code: 6, bytes: 2 },
  float32: { code: 7, bytes: 4 },
  float64: { code: 8, bytes: 8 },
  bfloat16: { code: 9, bytes: 2 },
  float8e4m3: { code: 10, bytes: 1 },
  float8e5m2: { code: 11, bytes: 1 },
} as const;
export type NcclDataTypeName = keyof typeof NcclDataType;

/** The NCCL version (ncclGetVersion's code) that introduced each data type beyond the first ten. */
export const ncclDataTypeSince: Partial<Record<NcclDataTypeName, number>> = { float8e4m3: 22400, float8e5m2: 22400 };

/** ncclRedOp_t codes (nccl.h). `avg` divides by the number of ranks (integer division for integer types). */
export const NcclReduceOp = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 } as const;
export type NcclReduceOpName = keyof typeof NcclReduceOp;

export function checkDataType(dtype: unknown, what: string, version: number): (typeof NcclDataType)[NcclDataTypeName] {
  const type = typeof dtype === "string" && Object.hasOwn(NcclDataType, dtype) ? NcclDataType[dtype as NcclDataTypeName] : undefined;
  if (!type) throw new CudaArgumentError(`${what}: unknown dtype ${JSON.stringify(dtype)}; known: ${Object.keys(NcclDataType).join(", ")}`);
  const since = ncclDataTypeSince[dtype as NcclDataTypeName];
  if (since !== undefined && version < since) {
    throw new CudaArgumentError(`${what}: dtype ${dtype as string} needs NCCL ${formatNcclVersion(since)} or newer; the loaded NCCL is ${formatNcclVersion(version)}`);
  }
  return type;
}

export function checkReduceOp(op: unknown, what: string): number {
  if (typeof op !== "string" || !Object.hasOwn(NcclReduceOp, op)) {
    throw new CudaArgumentError(`${what}: unknown op ${JSON.stringify(op)}; known: ${Object.keys(NcclReduceOp).join(", ")}`);
  }
  return NcclReduceOp[op as NcclReduceOpName];
}

export interface NcclVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** ncclGetVersion's integer, e.g. 22803 for 2.28.3. */
  readonly code: number;
}

/** Decodes NCCL_VERSION_CODE: X*10000 + Y*100 + Z since 2.9, X*1000 + Y*100 + Z before. */
export function decodeNcclVersion(code: number): NcclVersion {
  const [major, minor, patch] = code >= 20900
    ? [Math.floor(code / 10000), Math.floor(code / 100) % 100, code % 100]
    : [Math.floor(code / 1000), Math.floor(code / 100) % 10, code % 100];
  return { major, minor, patch, code };
}

export function formatNcclVersion(code: number): string {
  const { major, minor, patch } = decodeNcclVersion(code);
  return `${major}.${minor}.${patch}`;
}
