// Tensor bytes of the float types the LoRA tools handle (F32, F16, BF16) to and from float32.
// Quantized types are refused by the callers before they get here.
import { GgmlType, bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from "../../formats/index.ts";

export const floatTypes = [GgmlType.F32, GgmlType.F16, GgmlType.BF16] as const;

export function isFloatType(type: number): boolean {
  return (floatTypes as readonly number[]).includes(type);
}

/** A typed-array view of `bytes`, copying only when they are not aligned for `bytesPer` (in-memory sources hand out subarrays). */
function aligned(bytes: Uint8Array, bytesPer: number): ArrayBuffer {
  const copy = bytes.byteOffset % bytesPer !== 0 || !(bytes.buffer instanceof ArrayBuffer);
  return (copy ? bytes.slice() : bytes).buffer as ArrayBuffer;
}

/** The values of a tensor of ggml type F32, F16 or BF16 as float32 (a view for aligned F32 data). */
export function decodeFloats(bytes: Uint8Array, type: number): Float32Array {
  if (type === GgmlType.F32) {
    const buffer = aligned(bytes, 4);
    return new Float32Array(buffer, buffer === bytes.buffer ? bytes.byteOffset : 0, bytes.length / 4);
  }
  const buffer = aligned(bytes, 2);
  const bits = new Uint16Array(buffer, buffer === bytes.buffer ? bytes.byteOffset : 0, bytes.length / 2);
  if (type === GgmlType.F16) return f16ToF32Array(bits);
  if (type === GgmlType.BF16) return bf16ToF32Array(bits);
  throw new RangeError(`ggml type ${type} is not F32, F16 or BF16`);
}

/** float32 values as tensor bytes of type F32, F16 or BF16 (round to nearest even). */
export function encodeFloats(values: Float32Array, type: number): Uint8Array {
  const out = type === GgmlType.F32 ? values : type === GgmlType.F16 ? f32ToF16Array(values) : type === GgmlType.BF16 ? f32ToBf16Array(values) : undefined;
  if (out === undefined) throw new RangeError(`ggml type ${type} is not F32, F16 or BF16`);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
