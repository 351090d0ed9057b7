// The neutral description of a C library that every backend compiles: scalar type names,
// struct layouts and function signatures. Nothing here knows which runtime it runs on.

/**
 * A native address. gpuffi represents every pointer as a plain JS `number`, `0` being NULL.
 *
 * Why a number: it is Bun's own pointer representation, so Bun calls need no conversion on the
 * hot path; Deno and koffi take it through their pointer-sized integer types (`usize`,
 * `uintptr_t`). User-space addresses on x86-64 and AArch64 are below 2^48, far inside the 2^53
 * that a double holds exactly, and a number supports the arithmetic that pitched buffers and
 * sub-views need (`ptr + row * pitch`), compares with `===` and works as a Map key.
 */
export type Pointer = number;

/** Integer types that fit a double exactly and are passed and returned as `number`. */
export type SmallIntType = "i8" | "u8" | "i16" | "u16" | "i32" | "u32";
/**
 * 64-bit integers. `i64`/`u64` are exact and come back as `bigint` (seeds, hashes, counters that
 * can pass 2^53); `isize`/`usize` (size_t, ssize_t, offsets) come back as `number`, since a size
 * or an offset past 2^53 bytes does not occur.
 */
export type BigIntType = "i64" | "u64";
export type SizeType = "isize" | "usize";
export type FloatType = "f32" | "f64";
export type NumericType = SmallIntType | BigIntType | SizeType | FloatType;

/**
 * Parameter and result types.
 * - `ptr`: any pointer, as a {@link Pointer} number.
 * - `buffer`: JS memory handed to C for the duration of the call (a typed array or DataView;
 *   out-parameters use it), or `null`.
 * - `cstring`: a `const char *`: a JS string in (encoded as UTF-8 with a NUL), a string or `null` out.
 * - `callback`: a function pointer: a {@link CallbackHandle} (or a raw pointer / `null`).
 */
export type ScalarType = NumericType | "bool" | "ptr";
export type ParameterType = ScalarType | "buffer" | "cstring" | "callback" | StructType;
export type ResultType = ScalarType | "void" | "cstring" | StructType;

/** A fixed-length C array inside a struct, e.g. `char key[128]`. */
export interface ArrayFieldType {
  readonly array: ScalarType;
  readonly length: number;
}
export type FieldType = ScalarType | StructType | ArrayFieldType;
export type StructFields = Readonly<Record<string, FieldType>>;

export interface FieldLayout {
  readonly name: string;
  readonly type: FieldType;
  readonly offset: number;
}

/** A C struct with a computed System V layout, passed by value or described in memory. */
export interface StructType<F extends StructFields = StructFields> {
  readonly kind: "struct";
  readonly name: string;
  readonly fields: F;
  readonly layout: readonly FieldLayout[];
  readonly size: number;
  readonly alignment: number;
}

/** One C function: its parameters and result, in declaration order. */
export interface FunctionDefinition {
  readonly parameters: readonly ParameterType[];
  readonly result: ResultType;
  /**
   * The C symbol, when it differs from the table key: binds one symbol under a second key with
   * another signature (e.g. a `void *` parameter taken once as a pointer, once as a JS buffer).
   */
  readonly symbol?: string;
  /** Missing from the library → the symbol is `undefined` instead of a load error. */
  readonly optional?: boolean;
  /**
   * Also expose a Promise-returning variant in `library.async` that runs the call off the JS
   * thread where the runtime can (Deno `nonblocking`, koffi `.async`). Bun has no such call.
   */
  readonly nonblocking?: boolean;
}

export type SymbolTable = Readonly<Record<string, FunctionDefinition>>;

/** The signature of a C function pointer that JS implements. Structs by value are not supported. */
export interface CallbackDefinition {
  readonly parameters: readonly (ScalarType | "cstring")[];
  readonly result: ScalarType | "void";
}

// ----- JS value types derived from the table --------------------------------------------------

export type ScalarValue<T> = T extends "bool" ? boolean : T extends BigIntType ? bigint : number;
export type ScalarInput<T> = T extends "bool" ? boolean : T extends BigIntType ? bigint | number : number;

/** What a struct looks like in JS when it is read from C. */
export type StructValue<F extends StructFields> = {
  -readonly [K in keyof F]: FieldValue<F[K]>;
};
export type FieldValue<T> = T extends StructType<infer G>
  ? StructValue<G>
  : T extends ArrayFieldType
    ? ScalarValue<T["array"]>[]
    : ScalarValue<T>;

/** What JS may pass for a struct: any field left out is zero, as `= {0}` would make it in C. */
export type StructInit<F extends StructFields> = {
  -readonly [K in keyof F]?: FieldInit<F[K]>;
};
export type FieldInit<T> = T extends StructType<infer G>
  ? StructInit<G>
  : T extends ArrayFieldType
    ? ArrayLike<ScalarInput<T["array"]>>
    : ScalarInput<T>;

/** A handle whose `ptr` is a C function pointer (see `createCallback`). */
export interface CallbackHandle {
  readonly ptr: Pointer;
}

export type ParameterValue<T> = T extends StructType<infer F>
  ? StructInit<F>
  : T extends "buffer"
    ? ArrayBufferView | null
    : T extends "cstring"
      ? string | null
      : T extends "callback"
        ? CallbackHandle | Pointer | null
        : ScalarInput<T>;

export type ResultValue<T> = T extends StructType<infer F>
  ? StructValue<F>
  : T extends "void"
    ? void
    : T extends "cstring"
      ? string | null
      : ScalarValue<T>;

export type ParameterValues<P extends readonly ParameterType[]> = { -readonly [K in keyof P]: ParameterValue<P[K]> };

/** The JS function type of one table entry. */
export type NativeFunction<D extends FunctionDefinition> = (
  ...args: ParameterValues<D["parameters"]>
) => ResultValue<D["result"]>;

/** The JS type of a whole symbol table: optional entries may be `undefined`. */
export type NativeSymbols<T extends SymbolTable> = {
  readonly [K in keyof T]: T[K]["optional"] extends true ? NativeFunction<T[K]> | undefined : NativeFunction<T[K]>;
};

export type NonblockingKeys<T extends SymbolTable> = {
  [K in keyof T]: T[K]["nonblocking"] extends true ? K : never;
}[keyof T];

/** Promise-returning variants of the entries marked `nonblocking`. */
export type AsyncSymbols<T extends SymbolTable> = {
  readonly [K in NonblockingKeys<T>]: (
    ...args: Parameters<NativeFunction<T[K]>>
  ) => Promise<ReturnType<NativeFunction<T[K]>>>;
};

/** The JS function type a callback definition asks for. */
export type CallbackFunction<D extends CallbackDefinition> = (
  ...args: CallbackArguments<D["parameters"]>
) => D["result"] extends "void" ? void : ScalarInput<D["result"]>;
export type CallbackArguments<P extends readonly (ScalarType | "cstring")[]> = {
  -readonly [K in keyof P]: P[K] extends "cstring" ? string | null : ScalarValue<P[K]>;
};

// ----- Sizes and layout ----------------------------------------------------------------------

const scalarSizes: Record<ScalarType, number> = {
  bool: 1, i8: 1, u8: 1, i16: 2, u16: 2, i32: 4, u32: 4, f32: 4,
  i64: 8, u64: 8, isize: 8, usize: 8, f64: 8, ptr: 8,
};

export function isStructType(type: unknown): type is StructType {
  return typeof type === "object" && type !== null && (type as StructType).kind === "struct";
}

export function isArrayField(type: FieldType): type is ArrayFieldType {
  return typeof type === "object" && "array" in type;
}

export function isScalarType(type: unknown): type is ScalarType {
  return typeof type === "string" && type in scalarSizes;
}

/** Size in bytes of a field type (LP64: pointers and size_t are 8 bytes). */
export function sizeOf(type: FieldType): number {
  if (isStructType(type)) return type.size;
  if (isArrayField(type)) return scalarSizes[type.array] * type.length;
  return scalarSizes[type];
}

/** Natural alignment, as the System V ABI lays out C structs. */
export function alignOf(type: FieldType): number {
  if (isStructType(type)) return type.alignment;
  if (isArrayField(type)) return scalarSizes[type.array];
  return scalarSizes[type];
}

/**
 * Declares a C struct, fields in declaration order, e.g.
 * `defineStruct("div_t", { quot: "i32", rem: "i32" })`. Offsets, size and alignment follow the
 * System V rules that gcc, clang and TinyCC use on 64-bit Linux.
 */
export function defineStruct<const F extends StructFields>(name: string, fields: F): StructType<F> {
  let offset = 0;
  let alignment = 1;
  const layout: FieldLayout[] = [];
  for (const [fieldName, type] of Object.entries(fields)) {
    if (isArrayField(type) && !(Number.isInteger(type.length) && type.length > 0)) {
      throw new TypeError(`struct ${name}: field ${fieldName} needs a positive whole array length, got ${type.length}`);
    }
    if (!isStructType(type) && !isArrayField(type) && !isScalarType(type)) {
      throw new TypeError(`struct ${name}: field ${fieldName} has unknown type ${JSON.stringify(type)}`);
    }
    const align = alignOf(type);
    offset = Math.ceil(offset / align) * align;
    layout.push({ name: fieldName, type, offset });
    offset += sizeOf(type);
    alignment = Math.max(alignment, align);
  }
  if (layout.length === 0) throw new TypeError(`struct ${name} has no fields; C does not allow that`);
  const size = Math.ceil(offset / alignment) * alignment;
  return Object.freeze({ kind: "struct", name, fields, layout: Object.freeze(layout), size, alignment });
}

/** Declares a callback signature for `createCallback`. */
export function defineCallback<const D extends CallbackDefinition>(definition: D): D {
  return definition;
}

/**
 * Declares a library's symbol table. The table is data: `loadLibrary` compiles it for the
 * runtime at hand. Keep entries in header order with the C declaration beside each one.
 */
export function defineSymbols<const T extends SymbolTable>(table: T): T {
  return table;
}
