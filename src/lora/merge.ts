// Merging LoRA adapters into a base model: W' = W + Σ scale·(alpha/r)·B·A for every adapted
// tensor, the factor exactly as llama.cpp applies it at run time (llama_adapter_lora_weight::
// get_scale: scale·alpha/r, or just scale when alpha is 0). On the CPU each row is summed in
// float64 and rounded to float32, then to the base tensor's type; a MergeDevice (merge-cuda.ts)
// may do the arithmetic elsewhere. Files are merged tensor by tensor: only the tensor being
// merged and the adapters' pairs for it are in memory. Adapted tensors of a quantized base are
// refused, or, when asked, dequantized (ggml's legacy block types) and written as F16 or F32;
// the base's other tensors keep their type.
import {
  type GgufMetadata, type GgufSpec, type GgufTensorSpec, type GgufValue, GgmlType, InvalidOptionError, dequantizableTypes, dequantize, ggmlTypeInfo, openGguf, type GgufFile,
} from "../formats/index.ts";
import { LoraShapeError, QuantizedBaseError, UnsupportedAdapterError } from "./convert/errors.ts";
import { decodeFloats, encodeFloats, isFloatType } from "./convert/float-data.ts";
import { writeGgufStreamed } from "./convert/gguf-stream.ts";

interface TensorRef {
  readonly name: string;
  readonly type: number;
  readonly shape: readonly number[];
}

/** An adapter's pairs and how to read them: the same code serves files and in-memory specs. */
interface AdapterSource {
  readonly label: string;
  readonly alpha: number;
  readonly scale: number;
  readonly tensors: ReadonlyMap<string, TensorRef>;
  read(name: string): Promise<Uint8Array>;
}

/** One adapter's contribution to one base tensor. */
interface Delta {
  readonly adapter: AdapterSource;
  readonly a: TensorRef;
  readonly b: TensorRef;
  readonly rank: number;
}

function adapterAlpha(label: string, metadata: GgufMetadata | ReadonlyMap<string, GgufValue>): number {
  const type = metadata.get("adapter.type");
  if (type?.type !== "string" || type.value !== "lora") throw new UnsupportedAdapterError("adapter.type", `${label} is not a LoRA adapter GGUF`);
  const alpha = metadata.get("adapter.lora.alpha");
  return typeof alpha?.value === "number" ? alpha.value : 0;
}

const typeName = (type: number) => ggmlTypeInfo(type)?.name ?? String(type);

/**
 * Pairs each adapted base tensor with its deltas, checking names, shapes and types before
 * anything is written. `dequantizeTo` (a float type) admits quantized base tensors that
 * {@link dequantize} handles.
 */
function planMerge(base: readonly TensorRef[], adapters: readonly AdapterSource[], dequantizeTo?: number): Map<string, Delta[]> {
  const byName = new Map(base.map((t) => [t.name, t]));
  const plan = new Map<string, Delta[]>();
  for (const adapter of adapters) {
    for (const name of adapter.tensors.keys()) {
      const match = /^(.+)\.lora_([ab])$/.exec(name);
      if (match === null) throw new LoraShapeError(name, `${adapter.label}: not a .lora_a/.lora_b tensor`);
      if (match[2] === "b") continue;
      const target = match[1]!;
      const a = adapter.tensors.get(name)!;
      const b = adapter.tensors.get(`${target}.lora_b`);
      if (b === undefined) throw new LoraShapeError(name, `${adapter.label}: has no matching lora_b`);
      const weight = byName.get(target);
      if (weight === undefined) throw new LoraShapeError(target, `${adapter.label} adapts it, but the base has no such tensor (wrong base?)`);
      if (!isFloatType(weight.type) && !(dequantizeTo !== undefined && dequantizableTypes.includes(weight.type))) {
        throw new QuantizedBaseError(target, typeName(weight.type), dequantizeTo !== undefined);
      }
      for (const t of [a, b]) if (!isFloatType(t.type)) throw new UnsupportedAdapterError("adapter type", `${adapter.label}: "${t.name}" is ${typeName(t.type)}; only F32, F16 and BF16 adapters merge`);
      const embedding = target === "token_embd.weight";
      // The same checks as llama.cpp's adapter loader (llama-adapter.cpp).
      const [nIn, nOut] = weight.shape;
      const fits = embedding
        ? nIn === b.shape[1] && nOut === a.shape[1] && a.shape[0] === b.shape[0]
        : nIn === a.shape[0] && nOut === b.shape[1] && a.shape[1] === b.shape[0];
      if (weight.shape.length !== 2 || !fits) {
        throw new LoraShapeError(target, `${adapter.label}: lora_a [${a.shape.join(", ")}] and lora_b [${b.shape.join(", ")}] do not fit the base's [${weight.shape.join(", ")}]`);
      }
      const deltas = plan.get(target) ?? [];
      deltas.push({ adapter, a, b, rank: b.shape[0]! });
      plan.set(target, deltas);
    }
  }
  return plan;
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** ΔW = factor·left·right, left nOut × rank and right rank × nIn, both row-major. */
export interface MergeTerm {
  readonly left: Float32Array;
  readonly right: Float32Array;
  readonly rank: number;
  readonly factor: number;
}

/** Where W + Σ factor·left·right is computed: the CPU (default) or a GPU (merge-cuda.ts). */
export interface MergeDevice {
  /** `weight` is nOut rows of nIn, row-major; returns the merged values (may reuse `weight`). */
  addDeltas(weight: Float32Array, nIn: number, nOut: number, terms: readonly MergeTerm[]): Promise<Float32Array>;
}

/** The CPU: each row summed in float64, rounded once to float32. */
export const cpuMergeDevice: MergeDevice = {
  addDeltas(w, nIn, nOut, terms) {
    const out = new Float32Array(w.length);
    const row = new Float64Array(nIn);
    for (let o = 0; o < nOut; o++) {
      for (let i = 0; i < nIn; i++) row[i] = w[o * nIn + i]!;
      for (const { left, right, rank, factor } of terms) {
        for (let k = 0; k < rank; k++) {
          const scaled = factor * left[o * rank + k]!;
          const base = k * nIn;
          for (let i = 0; i < nIn; i++) row[i]! += scaled * right[base + i]!;
        }
      }
      out.set(row, o * nIn);
    }
    return Promise.resolve(out);
  },
};

/** The merged bytes of one base tensor (ggml shape [nIn, nOut]: nOut rows of nIn), as `outType` (default: its own type). */
async function mergeTensor(weight: TensorRef, bytes: Uint8Array, deltas: readonly Delta[], device: MergeDevice, outType = weight.type): Promise<Uint8Array> {
  const [nIn, nOut] = weight.shape as [number, number];
  const terms = await Promise.all(deltas.map(async ({ adapter, a, b, rank }): Promise<MergeTerm> => {
    const valuesA = decodeFloats(await adapter.read(a.name), a.type);
    const valuesB = decodeFloats(await adapter.read(b.name), b.type);
    const factor = adapter.alpha === 0 ? adapter.scale : adapter.scale * adapter.alpha / rank;
    // The token embedding's pair is stored flipped: lora_a holds a row of rank values per token
    // and lora_b a row per embedding dimension (llm_build_inp_embd), so ΔW[t][d] = Σk a[t][k]·b[d][k].
    return weight.name === "token_embd.weight"
      ? { left: valuesA, right: transpose(valuesB, nIn, rank), rank, factor }
      : { left: valuesB, right: valuesA, rank, factor };
  }));
  const values = isFloatType(weight.type) ? decodeFloats(bytes, weight.type) : dequantize(bytes, weight.type);
  return encodeFloats(await device.addDeltas(values, nIn, nOut, terms), outType);
}

export interface MergeAdapter {
  readonly path: string;
  /** Multiplies the adapter's alpha/r, as llama.cpp's adapter scale does (default 1). */
  readonly scale?: number;
}

/** The float types quantized tensors can be dequantized to. */
export type DequantizeTarget = "f16" | "f32";
const dequantizeTargets: Readonly<Record<DequantizeTarget, number>> = { f16: GgmlType.F16, f32: GgmlType.F32 };

export interface MergeOptions {
  /** Where the arithmetic runs (default: the CPU). */
  readonly device?: MergeDevice;
  /**
   * Dequantize adapted tensors that are Q8_0, Q4_0, Q4_1, Q5_0 or Q5_1 (as ggml does) and store
   * their merged values as F16 or F32. Without it such tensors are refused (QuantizedBaseError).
   * Unadapted tensors keep their type either way.
   */
  readonly dequantize?: DequantizeTarget;
  /** Called after each tensor with the bytes written so far and the total. */
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

/** An adapted tensor that was dequantized to be merged. */
export interface DequantizedTensor {
  readonly name: string;
  /** The base's type, e.g. "Q8_0". */
  readonly from: string;
  /** The merged tensor's type: "F16" or "F32". */
  readonly to: string;
}

export interface MergeResult {
  readonly mergedTensors: number;
  readonly tensors: number;
  readonly dequantized: readonly DequantizedTensor[];
}

function fileSource(label: string, file: GgufFile, scale: number): AdapterSource {
  return { label, alpha: adapterAlpha(label, file.metadata), scale, tensors: new Map(file.tensors.map((t) => [t.name, t])), read: (name) => file.readTensor(name) };
}

/** Merges the adapters into the base GGUF at `basePath`, writing the merged model to `outPath` tensor by tensor. */
export async function mergeLoraFiles(basePath: string, adapters: readonly MergeAdapter[], outPath: string, options: MergeOptions = {}): Promise<MergeResult> {
  const dequantizeTo = options.dequantize === undefined ? undefined : dequantizeTargets[options.dequantize];
  if (options.dequantize !== undefined && dequantizeTo === undefined) {
    throw new InvalidOptionError("dequantize", `expected "f16" or "f32", got ${JSON.stringify(options.dequantize)}`);
  }
  await using base = await openGguf(basePath);
  const files: GgufFile[] = [];
  try {
    const sources: AdapterSource[] = [];
    for (const { path, scale = 1 } of adapters) {
      const file = await openGguf(path);
      files.push(file);
      sources.push(fileSource(path, file, scale));
    }
    const plan = planMerge(base.tensors, sources, dequantizeTo);
    const outTypes = base.tensors.map((t) => (plan.has(t.name) && !isFloatType(t.type) ? dequantizeTo! : t.type));
    const total = base.tensors.reduce((n, t) => n + t.byteLength, 0);
    let done = 0;
    await writeGgufStreamed(outPath, base.metadata, base.tensors.map((t, i) => ({ ...t, type: outTypes[i]! })), async (i) => {
      const info = base.tensors[i]!;
      const bytes = await base.readTensor(info.name);
      const deltas = plan.get(info.name);
      const out = deltas === undefined ? bytes : await mergeTensor(info, bytes, deltas, options.device ?? cpuMergeDevice, outTypes[i]);
      options.onProgress?.((done += info.byteLength), total);
      return out;
    });
    const dequantized = base.tensors.flatMap((t, i) => (t.type === outTypes[i] ? [] : [{ name: t.name, from: typeName(t.type), to: typeName(outTypes[i]!) }]));
    return { mergedTensors: plan.size, tensors: base.tensors.length, dequantized };
  } finally {
    for (const file of files) await file.close();
  }
}

/** In-memory counterpart of {@link mergeLoraFiles}: `base` with each adapter spec merged at its scale. */
export async function mergeLoraSpecs(base: GgufSpec, adapters: readonly { spec: GgufSpec; scale?: number }[], device: MergeDevice = cpuMergeDevice): Promise<GgufSpec> {
  const sources = adapters.map(({ spec, scale = 1 }, i): AdapterSource => {
    const label = `adapter ${i}`;
    const byName = new Map(spec.tensors.map((t) => [t.name, t]));
    const metadata = new Map(Symbol.iterator in spec.metadata ? [...(spec.metadata as Iterable<readonly [string, GgufValue]>)] : Object.entries(spec.metadata));
    return { label, alpha: adapterAlpha(label, metadata), scale, tensors: byName, read: (name) => Promise.resolve(byName.get(name)!.data) };
  });
  const plan = planMerge(base.tensors, sources);
  const tensors: GgufTensorSpec[] = [];
  for (const tensor of base.tensors) {
    const deltas = plan.get(tensor.name);
    tensors.push(deltas === undefined ? tensor : { ...tensor, data: await mergeTensor(tensor, tensor.data, deltas, device) });
  }
  return { ...base, tensors };
}
