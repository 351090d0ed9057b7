// A kernel's argument block, as cuLaunchKernel takes it: `void **kernelParams`, one pointer per
// C parameter, each to that parameter's value. gpuffi builds it once per kernel signature in C
// heap memory (the pointer array, then one 8-byte slot per parameter, to which the pointers
// point for good), and a launch only writes the values into the slots through typed views: no
// allocation, and the launch call itself passes nothing but numbers.
import { HostMemory, type Pointer, nativeView } from "../../ffi/index.ts";
import { f32ToBf16Bits, f32ToF16Bits } from "../../formats/half.ts";
import type { CudaContext } from "../context.ts";
import { CudaArgumentError } from "../errors.ts";
import { CudaMemory, DeviceBuffer } from "../memory.ts";

/**
 * C parameter types a kernel signature declares. "ptr" is any `T *`; "pitched" is two C
 * parameters, `T *p, size_t pitch`, from one pitched matrix or view; "f16"/"bf16" are `__half` /
 * `__nv_bfloat16` by value, given as JS numbers and rounded to nearest even.
 */
export const kernelArgTypes = ["ptr", "pitched", "i32", "u32", "i64", "u64", "usize", "f32", "f64", "f16", "bf16"] as const;
export type KernelArgType = (typeof kernelArgTypes)[number];

/** Device memory by what gpuffi hands out (buffers, pool blocks, pitched matrices and views, Matrix), or an address. */
export type DevicePointerArg = Pointer | CudaMemory | { readonly ptr: Pointer };
/** A pitched matrix or view: its address and its pitch in bytes. */
export type PitchedArg = { readonly ptr: Pointer; readonly pitch: number };

/** The JS value a parameter of type T takes. */
export type KernelArgValue<T extends KernelArgType> = T extends "ptr" ? DevicePointerArg : T extends "pitched" ? PitchedArg : T extends "i64" | "u64" ? number | bigint : number;

const codes: Readonly<Record<KernelArgType, number>> = { ptr: 0, pitched: 1, i32: 2, u32: 3, i64: 4, u64: 5, usize: 6, f32: 7, f64: 8, f16: 9, bf16: 10 };

export function checkSignature(signature: unknown, what: string): asserts signature is readonly KernelArgType[] {
  if (!Array.isArray(signature)) throw new CudaArgumentError(`${what}: the signature must be an array of parameter types (${kernelArgTypes.join(", ")})`);
  signature.forEach((type, i) => {
    if (!Object.hasOwn(codes, type as string)) throw new CudaArgumentError(`${what}: parameter ${i} has unknown type ${JSON.stringify(type)}; known: ${kernelArgTypes.join(", ")}`);
  });
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "an object";
  return typeof value === "bigint" ? `${value}n` : typeof value === "string" ? JSON.stringify(value) : String(value);
}

const twoTo32 = 4294967296;

export class ArgumentBlock {
  /** The `void **kernelParams` to pass (C heap memory). */
  readonly params: Pointer;
  readonly #memory: HostMemory;
  readonly #codes: Uint8Array;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  readonly #f32: Float32Array;
  readonly #f64: Float64Array;
  readonly #u16: Uint16Array;
  readonly #i64: BigInt64Array;
  readonly #u64: BigUint64Array;

  constructor(signature: readonly KernelArgType[]) {
    this.#codes = Uint8Array.from(signature, (type) => codes[type]);
    const count = signature.reduce((n, type) => n + (type === "pitched" ? 2 : 1), 0);
    const memory = HostMemory.alloc(count * 16);
    const pointers = new BigUint64Array(nativeView(memory.ptr, count * 16), 0, count);
    for (let i = 0; i < count; i++) pointers[i] = BigInt(memory.ptr + (count + i) * 8);
    const slots = count === 0 ? new ArrayBuffer(8) : nativeView(memory.ptr + count * 8, count * 8);
    this.#memory = memory;
    this.params = memory.ptr;
    this.#u32 = new Uint32Array(slots);
    this.#i32 = new Int32Array(slots);
    this.#f32 = new Float32Array(slots);
    this.#f64 = new Float64Array(slots);
    this.#u16 = new Uint16Array(slots);
    this.#i64 = new BigInt64Array(slots);
    this.#u64 = new BigUint64Array(slots);
  }

  /** The number of JS arguments a launch takes. */
  get arity(): number {
    return this.#codes.length;
  }

  free(): void {
    if (!this.#memory.disposed) this.#memory.dispose();
  }

  /** Checks every argument and writes it into its slot(s); throws before anything is launched. */
  write(args: readonly unknown[], context: CudaContext, what: string): void {
    const codes = this.#codes;
    if (!Array.isArray(args) || args.length !== codes.length) {
      throw new CudaArgumentError(`${what}: takes ${codes.length} argument${codes.length === 1 ? "" : "s"}, got ${Array.isArray(args) ? args.length : describe(args)}`);
    }
    let slot = 0;
    for (let i = 0; i < codes.length; i++) {
      const value = args[i];
      switch (codes[i]) {
        case 0:
          this.#word(slot++, pointerOf(value, context, what, i));
          break;
        case 1: {
          const ptr = pointerOf(value, context, what, i);
          const pitch = (value as { pitch?: unknown }).pitch;
          if (typeof pitch !== "number" || !Number.isSafeInteger(pitch) || pitch <= 0) throw bad(what, i, "pitched", value, "a pitched matrix or view (with ptr and pitch)");
          this.#word(slot++, ptr);
          this.#word(slot++, pitch);
          break;
        }
        case 2:
          if (((value as number) | 0) !== value) throw bad(what, i, "i32", value, "a whole number from -2^31 to 2^31 - 1");
          this.#i32[slot++ * 2] = value as number;
          break;
        case 3:
          if (((value as number) >>> 0) !== value) throw bad(what, i, "u32", value, "a whole number from 0 to 2^32 - 1");
          this.#u32[slot++ * 2] = value as number;
          break;
        case 4:
          if (typeof value === "bigint") {
            if (BigInt.asIntN(64, value) !== value) throw bad(what, i, "i64", value, "within 64 bits");
            this.#i64[slot++] = value;
          } else if (Number.isSafeInteger(value)) this.#word(slot++, value as number);
          else throw bad(what, i, "i64", value, "a safe integer or a bigint");
          break;
        case 5:
        case 6:
          if (typeof value === "bigint") {
            if (BigInt.asUintN(64, value) !== value) throw bad(what, i, codes[i] === 5 ? "u64" : "usize", value, "within 64 bits, ≥ 0");
            this.#u64[slot++] = value;
          } else if (Number.isSafeInteger(value) && (value as number) >= 0) this.#word(slot++, value as number);
          else throw bad(what, i, codes[i] === 5 ? "u64" : "usize", value, "a whole number ≥ 0");
          break;
        case 7:
          if (typeof value !== "number") throw bad(what, i, "f32", value, "a number");
          this.#f32[slot++ * 2] = value;
          break;
        case 8:
          if (typeof value !== "number") throw bad(what, i, "f64", value, "a number");
          this.#f64[slot++] = value;
          break;
        case 9:
          if (typeof value !== "number") throw bad(what, i, "f16", value, "a number");
          this.#u16[slot++ * 4] = f32ToF16Bits(value);
          break;
        default:
          if (typeof value !== "number") throw bad(what, i, "bf16", value, "a number");
          this.#u16[slot++ * 4] = f32ToBf16Bits(value);
      }
    }
  }

  /** A 64-bit word from a safe integer, without a bigint: two's complement for negatives. */
  #word(slot: number, value: number): void {
    this.#u32[slot * 2] = value >>> 0;
    this.#u32[slot * 2 + 1] = Math.floor(value / twoTo32) >>> 0;
  }
}

function bad(what: string, index: number, type: string, value: unknown, expected: string): CudaArgumentError {
  return new CudaArgumentError(`${what}: argument ${index} (${type}) must be ${expected}, got ${describe(value)}`);
}

/** The device address an argument stands for, after checking that its memory is alive and on the kernel's device. */
function pointerOf(value: unknown, context: CudaContext, what: string, index: number): Pointer {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value) || value < 0) throw bad(what, index, "ptr", value, "a device address (a whole number ≥ 0)");
    return value;
  }
  if (value instanceof CudaMemory) {
    value.assertUsable();
    if (value instanceof DeviceBuffer && value.device !== context.device) {
      throw new CudaArgumentError(`${what}: argument ${index} is a ${value.kind} of device ${value.device}, but the kernel runs on device ${context.device} (with peer access enabled, pass its address, buffer.ptr)`);
    }
    return value.ptr;
  }
  if (typeof value === "object" && value !== null) {
    // Pitched views and Matrix check that their memory is alive when their ptr is read.
    const ptr = (value as { ptr?: unknown }).ptr;
    if (typeof ptr === "number") return ptr;
  }
  throw bad(what, index, "ptr", value, "device memory (a buffer, a pool block, a pitched matrix or view, a Matrix) or an address");
}
