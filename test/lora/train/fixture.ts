// The PyTorch + PEFT training fixture (test/lora/train/fixture/): its inputs, made here by
// scripts/make-train-fixture.ts, and — once fixture/make_peft_reference.py has run on the GPU
// machine and its output directory is committed as fixture/reference/ — PEFT's per-step losses
// and trained adapters.
//
//   base.gguf                  the tiny llama (F32) as llama.cpp reads it
//   hf/config.json, hf/model.safetensors
//                              the same model as a Hugging Face LlamaForCausalLM checkpoint (q/k
//                              rows in HF's rotate_half order, as convert_hf_to_gguf.py undoes)
//   adapter.gguf               the initial adapter in llama.cpp's format
//   peft/adapter_config.json, peft/adapter_model.safetensors
//                              the same adapter as PEFT saves it (q/k B rows in HF order)
//   tokens.json                the optimizer settings, steps × batch × (ctx + 1) tokens, and the
//                              float64 reference's losses on step 0's batch (initial adapter / none)
//   reference/reference.json   (from the GPU machine) PEFT's per-step losses, versions, device
//   reference/peft-float32/, reference/peft-float64/   PEFT's adapters after the last step
//
// The HF ↔ GGUF row order is written out here from convert_hf_to_gguf.py's LlamaModel.permute
// (reshape(n_head, 2, d/2, …).swapaxes(1, 2)), independently of src/lora's converter, which is
// among the code these fixtures check.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type GgufSpec, type SafetensorsHeader, type SafetensorsTensorInfo, parseGguf, parseSafetensors } from "../../../src/formats/index.ts";
import { type ReferenceLora, type ReferenceModel, type ReferenceSequence, allCounted, referenceLoraFromSpec, referenceModel } from "./reference.ts";

export const TRAIN_FIXTURE_DIR = fileURLToPath(new URL("./fixture/", import.meta.url));

/** HF module names of a layer's projections → llama.cpp's tensor names. */
export const hfProjections = {
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
} as const;

/** The HF row that GGUF row `row` of a q or k projection holds (heads of `headDim` rows). */
export function hfRowOfGgufRow(row: number, headDim: number): number {
  const head = Math.floor(row / headDim);
  const within = row % headDim;
  // GGUF (head, i, t) with within = 2i + t holds HF (head, t, i) with within = t·d/2 + i.
  return head * headDim + (within % 2) * (headDim / 2) + Math.floor(within / 2);
}

/** Rows (each `rowLength` values) of a GGUF-order q/k matrix in HF order. */
export function ggufRowsToHf(values: Float32Array, rowLength: number, headDim: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let row = 0; row < values.length / rowLength; row++) {
    out.set(values.subarray(row * rowLength, (row + 1) * rowLength), hfRowOfGgufRow(row, headDim) * rowLength);
  }
  return out;
}

/** Rows of an HF-order q/k matrix in GGUF order (the inverse of ggufRowsToHf). */
export function hfRowsToGguf<T extends Float32Array | Float64Array>(values: T, rowLength: number, headDim: number): T {
  const out = values.slice() as T;
  for (let row = 0; row < values.length / rowLength; row++) {
    const from = hfRowOfGgufRow(row, headDim) * rowLength;
    out.set(values.subarray(from, from + rowLength), row * rowLength);
  }
  return out;
}

export interface TrainFixtureOptimizer {
  readonly name: "adamw";
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
}

/** tokens.json. */
export interface TrainFixtureTokens {
  readonly steps: number;
  readonly batch: number;
  /** Tokens per sequence (ctx + 1: each trains `length − 1` positions, all counted). */
  readonly length: number;
  readonly optimizer: TrainFixtureOptimizer;
  readonly rank: number;
  readonly alpha: number;
  readonly targets: readonly string[];
  /** batches[step][sequence][token]. */
  readonly batches: readonly (readonly (readonly number[])[])[];
  /** The float64 reference on step 0's batch: with the initial adapter, and with none. */
  readonly expected: { readonly initialLoss: number; readonly baseLoss: number };
}

export interface PeftRunResult {
  /** Loss of each step's batch before that step's update. */
  readonly losses: readonly number[];
  readonly base_loss?: number;
  readonly final_loss?: number;
  readonly grad_norms?: readonly number[];
  /** Subdirectory of reference/ with the adapter after the last step. */
  readonly adapter: string;
}

/** reference/reference.json, as make_peft_reference.py writes it. */
export interface PeftReferenceJson {
  readonly losses: readonly number[];
  readonly runs: Readonly<Record<string, PeftRunResult>>;
  readonly torch: string;
  readonly transformers: string;
  readonly peft: string;
  readonly device: string;
  readonly [key: string]: unknown;
}

export interface PeftReference {
  readonly json: PeftReferenceJson;
  /** PEFT's trained adapters by run ("float32", "float64"), in GGUF layout. */
  readonly adapters: ReadonlyMap<string, ReferenceLora>;
}

export interface TrainFixture {
  readonly dir: string;
  readonly basePath: string;
  readonly base: GgufSpec;
  readonly model: ReferenceModel;
  readonly adapterPath: string;
  readonly adapter: GgufSpec;
  /** The initial adapter. */
  readonly lora: ReferenceLora;
  readonly hfDir: string;
  readonly peftDir: string;
  readonly tokens: TrainFixtureTokens;
  /** The reference outputs, when fixture/reference/ is there. */
  readonly reference: PeftReference | undefined;
  /** Step `step`'s batch, every position counted. */
  batch(step: number): ReferenceSequence[];
}

/** A whole GGUF file as a spec (metadata and tensors with their bytes). */
export function readGgufSpec(path: string): GgufSpec {
  const bytes = new Uint8Array(readFileSync(path));
  const header = parseGguf(bytes);
  return {
    metadata: header.metadata,
    tensors: header.tensors.map((t) => ({
      name: t.name, type: t.type, shape: t.shape,
      data: bytes.subarray(header.dataOffset + t.offset, header.dataOffset + t.offset + t.byteLength),
    })),
  };
}

function safetensorsValues(bytes: Uint8Array, header: SafetensorsHeader, info: SafetensorsTensorInfo): Float64Array {
  const begin = header.dataOffset + info.dataOffsets[0];
  const copy = bytes.slice(begin, begin + info.byteLength);
  if (info.dtype === "F32") return Float64Array.from(new Float32Array(copy.buffer));
  if (info.dtype === "F64") return new Float64Array(copy.buffer);
  throw new Error(`${info.name}: dtype ${info.dtype} (expected F32 or F64)`);
}

/**
 * A PEFT adapter directory as a ReferenceLora in GGUF layout: A ([r, in]) as is, B ([out, r])
 * with q/k rows moved back to llama.cpp's order.
 */
export function readPeftAdapter(dir: string, model: ReferenceModel): ReferenceLora {
  const config = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as { r: number; lora_alpha: number; use_rslora?: boolean };
  if (config.use_rslora === true) throw new Error(`${dir}: rsLoRA is not what the fixture uses`);
  const bytes = new Uint8Array(readFileSync(join(dir, "adapter_model.safetensors")));
  const header = parseSafetensors(bytes);
  const parts = new Map<string, { a?: Float64Array; b?: Float64Array }>();
  for (const info of header.tensors) {
    const match = /^base_model\.model\.model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$/.exec(info.name);
    if (match === null) throw new Error(`${dir}: unexpected tensor ${info.name}`);
    const target = `blk.${match[1]}.${hfProjections[match[2] as keyof typeof hfProjections]}.weight`;
    let values = safetensorsValues(bytes, header, info);
    if (match[3] === "B" && /\.[qk]_proj$/.test(match[2]!)) values = hfRowsToGguf(values, config.r, model.headDim);
    const entry = parts.get(target) ?? {};
    if (match[3] === "A") entry.a = values;
    else entry.b = values;
    parts.set(target, entry);
  }
  const pairs = new Map<string, { a: Float64Array; b: Float64Array }>();
  for (const [target, { a, b }] of parts) {
    if (a === undefined || b === undefined) throw new Error(`${dir}: ${target} lacks lora_A or lora_B`);
    pairs.set(target, { a, b });
  }
  return { rank: config.r, alpha: config.lora_alpha, pairs };
}

/** Reads the fixture; the reference outputs only when fixture/reference/reference.json exists. */
export function loadTrainFixture(dir: string = TRAIN_FIXTURE_DIR): TrainFixture {
  const basePath = join(dir, "base.gguf");
  const adapterPath = join(dir, "adapter.gguf");
  const base = readGgufSpec(basePath);
  const adapter = readGgufSpec(adapterPath);
  const model = referenceModel(base);
  const tokens = JSON.parse(readFileSync(join(dir, "tokens.json"), "utf8")) as TrainFixtureTokens;
  const referencePath = join(dir, "reference", "reference.json");
  let reference: PeftReference | undefined;
  if (existsSync(referencePath)) {
    const json = JSON.parse(readFileSync(referencePath, "utf8")) as PeftReferenceJson;
    const adapters = new Map<string, ReferenceLora>();
    for (const [run, result] of Object.entries(json.runs)) {
      const adapterDir = join(dir, "reference", result.adapter);
      if (existsSync(join(adapterDir, "adapter_model.safetensors"))) adapters.set(run, readPeftAdapter(adapterDir, model));
    }
    reference = { json, adapters };
  }
  return {
    dir, basePath, base, model, adapterPath, adapter, lora: referenceLoraFromSpec(adapter),
    hfDir: join(dir, "hf"), peftDir: join(dir, "peft"), tokens, reference,
    batch: (step) => {
      const sequences = tokens.batches[step];
      if (sequences === undefined) throw new RangeError(`the fixture has ${tokens.steps} steps, not ${step + 1}`);
      return sequences.map((s) => allCounted(Int32Array.from(s)));
    },
  };
}
