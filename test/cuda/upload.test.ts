// Streamed uploads on the host-memory libcudart (test/cuda/fake-cudart.ts) in its deferred mode:
// queued copies run only when the "GPU" catches up (a timer here), and read their source then,
// so refilling a staging slot before its copy ran would corrupt the result, and unregistering a
// window of the mapped file before its copy ran shows up in the fake's `faults`.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import { CudaArgumentError, CudaContext, CudaError, PinnedPool, RegisteredHostMemory, UploadError, uploadFileRanges, uploadStrategies, type UploadStrategy, uploadTensors } from "../../src/cuda/index.ts";
import { HostMemory, pageSize } from "../../src/ffi/index.ts";
import { encodeSafetensors, openGguf } from "../../src/formats/index.ts";
import { type FakeCudartOptions, fakeCudart } from "./fake-cudart.ts";
import { tinyModel } from "../llama/fixtures.ts";
import { inTempDir, runCli } from "../lora/tools-fixtures.ts";
import { probeGpu } from "./gpu-probe.ts";

/**
 * A fake GPU that runs its queued work every millisecond while `body` runs. Afterwards nothing
 * may be registered any more, and no copy may have run from memory unregistered before it.
 */
async function withSlowGpu<T>(body: (context: CudaContext, fake: ReturnType<typeof fakeCudart>) => Promise<T>, options: FakeCudartOptions = {}): Promise<T> {
  const fake = fakeCudart({ deferred: true, ...options });
  const timer = setInterval(() => fake.runQueued(), 1);
  const context = CudaContext.create({ runtime: fake.runtime });
  try {
    const result = await body(context, fake);
    assert.deepEqual(fake.faults, []);
    assert.equal(fake.liveRegistrations, 0, "every registered window is unregistered");
    return result;
  } finally {
    clearInterval(timer);
    context.dispose();
  }
}

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);

test("upload: every tensor of a GGUF arrives intact through a small ring (chunks ≪ tensors, slots refilled many times)", () => withSlowGpu(async (context, fake) => {
  const progress: number[] = [];
  const { buffers, stats } = await uploadTensors(context, tinyModel().path, { chunkBytes: 4000, slots: 2, onProgress: (done) => progress.push(done) });
  // Asynchronous: copies went to a stream, and nothing blocked on it (events and the stream were polled).
  const calls = [...fake.calls];
  await using file = await openGguf(tinyModel().path);
  assert.equal(buffers.size, file.tensors.length);
  for (const t of file.tensors) assert.deepEqual(buffers.get(t.name)!.read().subarray(0, t.byteLength), await file.readTensor(t.name), t.name);
  assert.equal(progress.at(-1), file.tensors.reduce((n, t) => n + t.byteLength, 0));
  assert.equal(stats.bytes, progress.at(-1));
  assert.ok(calls.filter((c) => c === "cudaMemcpyAsync").length > 2 * file.tensors.length);
  assert.equal(calls.filter((c) => c === "cudaStreamSynchronize").length, 0);
  for (const buffer of buffers.values()) buffer.dispose();
  assert.equal(fake.live.size, 0, "staging buffers and device buffers are all freed");
}));

test("upload: any ranges, chunk sizes, slot counts and strategies land at their targets (property)", () => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  // Several pages, and not a whole number of them, so that mapped windows end past the file.
  const data = pattern(5 * pageSize() + 1234, 3);
  await writeFile(path, data);
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat({ max: data.length - 1 }), fc.nat({ max: 3 * pageSize() })), { minLength: 1, maxLength: 6 }),
    fc.integer({ min: 1_000, max: 2 * pageSize() }),
    fc.integer({ min: 1, max: 5 }),
    fc.constantFrom(...uploadStrategies),
    (spans, chunkBytes, slots, strategy) => withSlowGpu(async (context) => {
      // Ranges may overlap and come in any order (a mapped window then serves several of them).
      const ranges = spans.map(([offset, length]) => ({ offset, byteLength: Math.min(length, data.length - offset) }));
      const targets = ranges.map((r) => context.alloc(r.byteLength + 16));
      const stats = await uploadFileRanges(context, path, ranges.map((r, i) => ({ ...r, target: targets[i]!, targetOffset: 16 })), { chunkBytes, slots, strategy });
      assert.equal(stats.bytes, ranges.reduce((n, r) => n + r.byteLength, 0));
      ranges.forEach((r, i) => assert.deepEqual(targets[i]!.read(undefined, { offset: 16 }), data.subarray(r.offset, r.offset + r.byteLength)));
    }),
  ), { numRuns: 30 });
}));

test("upload (mapped): page-aligned read-only windows, registered ahead of the copies and unregistered only after them", () => withSlowGpu(async (context, fake) => {
  const page = pageSize();
  const { buffers } = await uploadTensors(context, tinyModel().path, { strategy: "mapped", chunkBytes: page + 1, slots: 2 });
  const calls = [...fake.calls];
  await using file = await openGguf(tinyModel().path);
  for (const t of file.tensors) assert.deepEqual(buffers.get(t.name)!.read().subarray(0, t.byteLength), await file.readTensor(t.name), t.name);
  for (const buffer of buffers.values()) buffer.dispose();
  // chunkBytes rounds up to two pages; windows never share a page (the fake refuses that).
  assert.ok(fake.hostRegistrations.length > 3);
  for (const r of fake.hostRegistrations) {
    assert.equal(r.ptr % page, 0);
    assert.ok(r.byteLength % page === 0 && r.byteLength <= 2 * page, String(r.byteLength));
    assert.equal(r.flags, 0x01 | 0x08, "cudaHostRegisterPortable | cudaHostRegisterReadOnly");
  }
  // Pipelined: the second window is registered before the first is unregistered, and never more than `slots` at once.
  const lifecycle = calls.filter((c) => c === "cudaHostRegister" || c === "cudaHostUnregister");
  assert.deepEqual(lifecycle.slice(0, 3), ["cudaHostRegister", "cudaHostRegister", "cudaHostUnregister"]);
  let live = 0;
  for (const call of lifecycle) assert.ok((live += call === "cudaHostRegister" ? 1 : -1) <= 2);
  assert.equal(calls.filter((c) => c === "cudaStreamSynchronize").length, 0, "waits are on events, asynchronously");
  assert.equal(fake.live.size, 0);
}));

test("the fake GPU catches a window unregistered before its queued copy ran", () => withSlowGpu(async (context, fake) => {
  using source = HostMemory.alloc(2 * pageSize());
  using target = context.alloc(16);
  using stream = context.createStream();
  const page = source.ptr % pageSize() === 0 ? source.ptr : source.ptr + pageSize() - (source.ptr % pageSize());
  const registered = RegisteredHostMemory.register(context, page, 16, { readOnly: true });
  target.copyFrom(registered, { stream });
  registered.dispose();
  fake.runQueued();
  assert.equal(fake.faults.length, 1);
  fake.faults.length = 0;
}));

test("upload (mapped): without read-only registration the CUDA error says so, and nothing stays registered or allocated", () => withSlowGpu(async (context, fake) => {
  await assert.rejects(uploadTensors(context, tinyModel().path, { strategy: "mapped" }), (e) =>
    e instanceof CudaError && e.errorName === "cudaErrorNotSupported" && e.message.includes("cannot register read-only memory (cudaDevAttrHostRegisterReadOnlySupported is 0)"));
  assert.equal(fake.live.size, 0);
}, { readOnlyRegister: false }));

for (const [call, strategy] of [["cudaMemcpyAsync", "staged"], ["cudaMemcpyAsync", "mapped"], ["cudaHostRegister", "mapped"]] as const) {
  // With copies of earlier chunks still queued when it fails: they must run before their memory goes.
  test(`upload (${strategy}): a failing ${call} after a few chunks frees and unregisters everything and reports the CUDA error`, () => withSlowGpu(async (context, fake) => {
    let calls = 0;
    const failAfter = 2;
    await assert.rejects(uploadTensors(context, tinyModel().path, {
      strategy,
      chunkBytes: 4096,
      slots: 8,
      onProgress: () => void (++calls === failAfter && fake.failNext.set(call, 1)),
    }), (e) => e instanceof CudaError && e.message.includes(call));
    assert.equal(fake.live.size, 0);
  }));
}

test("upload: bad options and ranges outside the file or the target are refused before anything is queued", () => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  await writeFile(path, pattern(1000, 1));
  await withSlowGpu(async (context, fake) => {
    using target = context.alloc(100);
    using pool = new PinnedPool(context);
    const range = { offset: 0, byteLength: 100, target };
    const refused: [Parameters<typeof uploadFileRanges>[2], Parameters<typeof uploadFileRanges>[3], RegExp][] = [
      [[range], { strategy: "copied" as UploadStrategy }, /strategy must be "staged" or "mapped", got "copied"/],
      [[range], { chunkBytes: 0 }, /chunkBytes must be a positive integer, got 0/],
      [[range], { slots: 1.5 }, /slots must be a positive integer, got 1.5/],
      [[range], { strategy: "mapped", pool }, /pool is for the staged strategy/],
      [[{ ...range, offset: 950 }], {}, /range 0: bytes \[950, 1050\) lie beyond the end of .*data\.bin \(1000 bytes\)/],
      [[range, { ...range, offset: -1 }], {}, /range 1: offset and byteLength must be whole numbers ≥ 0, got -1 and 100/],
    ];
    for (const strategy of uploadStrategies) {
      for (const [ranges, options, message] of refused) {
        await assert.rejects(uploadFileRanges(context, path, ranges, { strategy, ...options }), (e) => e instanceof UploadError && message.test(e.message), message.source);
      }
      await assert.rejects(uploadFileRanges(context, path, [{ ...range, targetOffset: 1 }], { strategy }), (e) => e instanceof CudaArgumentError && /range 0: target/.test(e.message));
    }
    assert.deepEqual(fake.calls.filter((c) => c === "cudaMemcpyAsync" || c === "cudaHostRegister"), []);
  });
}));

test("upload: safetensors files, named tensors, staging from a PinnedPool, and mapped windows", () => inTempDir(async (dir) => {
  const path = join(dir, "w.safetensors");
  const tensors = [{ name: "a", dtype: "U8" as const, shape: [3000], data: pattern(3000, 1) }, { name: "b", dtype: "U8" as const, shape: [0], data: new Uint8Array(0) }, { name: "c", dtype: "U8" as const, shape: [777], data: pattern(777, 2) }];
  await writeFile(path, encodeSafetensors({ tensors }));
  await withSlowGpu(async (context) => {
    using pool = new PinnedPool(context);
    for (const options of [{ pool, chunkBytes: 512, slots: 3 }, { strategy: "mapped" as const, chunkBytes: 512, slots: 1 }]) {
      const { buffers } = await uploadTensors(context, path, { names: ["c", "a", "b"], ...options });
      assert.deepEqual([...buffers.keys()], ["c", "a", "b"]);
      assert.deepEqual(buffers.get("a")!.read(), tensors[0]!.data);
      assert.deepEqual(buffers.get("c")!.read(), tensors[2]!.data);
      for (const buffer of buffers.values()) buffer.dispose();
    }
    assert.ok(pool.stats().allocations >= 1);
    await assert.rejects(uploadTensors(context, path, { names: ["missing"] }), (e) => e instanceof UploadError && /no tensor named "missing"/.test(e.message));
  });
}));

test("gpuffi upload: wrong arguments are usage errors (exit 2) that name the option", async () => {
  const model = tinyModel().path;
  const cases: [string[], RegExp][] = [
    [[], /expected FILE, got nothing/],
    [[model, "--slots", "0"], /--slots needs an integer ≥ 1, got 0/],
    [[model, "--chunk", "1.5"], /--chunk needs an integer, got "1.5"/],
    [[model, "--chunk", "0"], /--chunk needs an integer ≥ 1, got 0/],
    [[model, "--device=-1"], /--device needs an integer ≥ 0, got -1/],
    [[model, "--strategy", "copied"], /--strategy takes staged or mapped, got "copied"/],
    [[model, "--fast"], /Unknown option '--fast'/],
  ];
  for (const [args, message] of cases) {
    const { code, err } = await runCli("upload", ...args);
    assert.equal(code, 2, args.join(" "));
    assert.match(err, message);
    assert.match(err, /usage: gpuffi upload FILE/);
  }
});

test("gpuffi upload: a file that is not a model, or is missing, is an error (exit 1) without a GPU being asked", () => inTempDir(async (dir) => {
  const text = join(dir, "notes.txt");
  await writeFile(text, "not a model file at all");
  const notModel = await runCli("upload", text);
  assert.equal(notModel.code, 1);
  assert.match(notModel.err, /notes\.txt is neither a GGUF file \(it does not start with "GGUF"\) nor a safetensors file/);
  const missing = await runCli("upload", join(dir, "missing.gguf"));
  assert.equal(missing.code, 1);
  assert.match(missing.err, /ENOENT/);
}));

test("gpuffi upload: without a usable GPU it exits 1 with CUDA's reason in one message", async () => {
  const { code, out, err } = await runCli("upload", tinyModel().path, "--strategy", "mapped");
  assert.equal(code, 1);
  assert.equal(out, "");
  assert.match(err, /^gpuffi upload: (CUDA version check failed|cudaGetDeviceCount failed)/);
  assert.doesNotMatch(err, /\n\s+at /, "no stack trace");
}, { skip: probeGpu().available ? "a GPU is present (upload-gpu.test.ts runs the command)" : undefined });
