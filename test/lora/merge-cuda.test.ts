// The CUDA merge (cuBLAS SGEMM with beta = 1 on pitched pool buffers) against the CPU merge:
// the same tensors within fp32 rounding. Registered twice: on the fake libcudart + libcublas
// (test/cuda/blas/cublas-fake.ts runs the reference GEMM on host memory), and on a real GPU.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "../harness.ts";
import { CublasHandle, CudaContext, type CublasHandleOptions } from "../../src/cuda/index.ts";
import { type GgufSpec, type GgufTensorSpec, GgmlType, f16ToF32Array, f32ToF16Array, openGguf, writeGgufFile } from "../../src/formats/index.ts";
import { seededRandom, uniformValues } from "../../src/formats/tiny/random.ts";
import { CudaMergeDevice, mergeLoraFiles, mergeLoraSpecs } from "../../src/lora/index.ts";
import { fakeCublas, fakeCudartWith2D } from "../cuda/blas/cublas-fake.ts";
import { probeGpu } from "../cuda/gpu-probe.ts";
import { tinyLora, tinyModel } from "../llama/fixtures.ts";
import { inTempDir } from "./tools-fixtures.ts";

const floats = (t: { type: number; data: Uint8Array }) =>
  t.type === GgmlType.F16 ? f16ToF32Array(new Uint16Array(t.data.slice().buffer)) : new Float32Array(t.data.slice().buffer);

/** An adapter of the token embedding only, in llama.cpp's flipped layout: lora_a [r, vocab], lora_b [r, dim]. */
function embeddingAdapter(): GgufSpec {
  const [dim, vocab] = tinyModel().spec.tensors.find((t) => t.name === "token_embd.weight")!.shape as [number, number];
  const random = seededRandom(41);
  const rank = 3;
  const tensor = (name: string, shape: number[]): GgufTensorSpec => ({ name, type: GgmlType.F32, shape, data: new Uint8Array(uniformValues(random, shape[0]! * shape[1]!, 0.5).buffer) });
  return {
    metadata: [["adapter.type", { type: "string", value: "lora" }], ["adapter.lora.alpha", { type: "f32", value: 6 }]],
    tensors: [tensor("token_embd.weight.lora_a", [rank, vocab]), tensor("token_embd.weight.lora_b", [rank, dim])],
  };
}

/** Every element within `ulp` relative (plus a tiny absolute floor) of the CPU's. */
function assertSameTensors(actual: readonly { name: string; type: number; data: Uint8Array }[], expected: GgufSpec, ulp: number): void {
  for (const [i, t] of expected.tensors.entries()) {
    const [got, want] = [floats(actual[i]!), floats(t)];
    assert.equal(actual[i]!.name, t.name);
    for (let j = 0; j < want.length; j++) {
      assert.ok(Math.abs(got[j]! - want[j]!) <= ulp * Math.abs(want[j]!) + 1e-7, `${t.name}[${j}]: ${got[j]} vs ${want[j]}`);
    }
  }
}

function registerCudaMerge(label: string, setup: () => { context: CudaContext; cublas: CublasHandleOptions; [Symbol.dispose](): void }, skip: string | undefined): void {
  const withDevice = async (body: (device: CudaMergeDevice) => Promise<void>) => {
    using env = setup();
    using stream = env.context.createStream();
    using cublas = CublasHandle.create(env.context, { ...env.cublas, stream });
    using device = new CudaMergeDevice(env.context, cublas, stream);
    await body(device);
  };

  test(`${label}: linear and embedding pairs, two adapters, merge as on the CPU within fp32 rounding`, () => withDevice(async (device) => {
    const adapters = [{ spec: tinyLora("ma", { rank: 4, alpha: 8, seed: 31 }).spec, scale: 0.7 }, { spec: embeddingAdapter(), scale: 1.3 }];
    const cpu = await mergeLoraSpecs(tinyModel().spec, adapters);
    const cuda = await mergeLoraSpecs(tinyModel().spec, adapters, device);
    assertSameTensors(cuda.tensors, cpu, 2e-6);
    assert.notDeepEqual(cpu.tensors[0]!.data, tinyModel().spec.tensors[0]!.data, "the embedding was merged");
  }), { skip });

  test(`${label}: an F16 base merged file to file through the CUDA device`, () => inTempDir((dir) => withDevice(async (device) => {
    const base = tinyModel().spec;
    const f16: GgufSpec = { ...base, tensors: base.tensors.map((t) => t.shape.length !== 2 ? t : { ...t, type: GgmlType.F16, data: new Uint8Array(f32ToF16Array(floats(t)).buffer) }) };
    const basePath = join(dir, "f16.gguf");
    await writeGgufFile(basePath, f16);
    const out = join(dir, "merged.gguf");
    await mergeLoraFiles(basePath, [{ path: tinyLora("ma", { rank: 4, alpha: 8, seed: 31 }).path, scale: 1 }], out, { device });
    await using file = await openGguf(out);
    const written = await Promise.all(file.tensors.map(async (t) => ({ name: t.name, type: t.type, data: await file.readTensor(t.name) })));
    assert.ok(written.every((t, i) => t.type === f16.tensors[i]!.type));
    // Rounding to f16 can land one f16 step apart where fp32 results straddle a rounding boundary.
    assertSameTensors(written, await mergeLoraSpecs(f16, [{ spec: tinyLora("ma", { rank: 4, alpha: 8, seed: 31 }).spec, scale: 1 }]), 2 ** -10);
  })), { skip, timeout: 60_000 });
}

registerCudaMerge("merge on CUDA (fake libcudart + libcublas)", () => {
  const cuda = fakeCudartWith2D();
  const context = CudaContext.create({ runtime: cuda.runtime });
  return { context, cublas: { api: fakeCublas({ log: cuda.calls }).api }, [Symbol.dispose]: () => context.dispose() };
}, undefined);

const gpu = probeGpu().reason;
registerCudaMerge("merge on CUDA (GPU)", () => {
  const context = CudaContext.create({ device: 0 });
  return { context, cublas: {}, [Symbol.dispose]: () => context.dispose() };
}, gpu);
