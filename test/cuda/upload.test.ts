// Streamed uploads on the host-memory libcudart (test/cuda/fake-cudart.ts) in its deferred mode:
// queued copies run only when the "GPU" catches up (a timer here), and read their source then,
// so refilling a staging slot before its copy ran would corrupt the result, and unregistering a
// window of the mapped file before its copy ran shows up in the fake's `faults`.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import { CudaArgumentError, CudaContext, CudaError, PinnedPool, RegisteredHostMemory, UploadError, uploadFileRanges, type UploadOptions, uploadStrategies, type UploadStrategy, uploadTensors } from "../../src/cuda/index.ts";
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
    fc.option(fc.integer({ min: 1, max: 6 }), { nil: undefined }),
    (spans, chunkBytes, slots, strategy, readsAsked) => withSlowGpu(async (context) => {
      // Ranges may overlap and come in any order (a mapped window then serves several of them).
      const ranges = spans.map(([offset, length]) => ({ offset, byteLength: Math.min(length, data.length - offset) }));
      const targets = ranges.map((r) => context.alloc(r.byteLength + 16));
      const reads = strategy === "mapped" ? undefined : readsAsked;
      const stats = await uploadFileRanges(context, path, ranges.map((r, i) => ({ ...r, target: targets[i]!, targetOffset: 16 })), { chunkBytes, slots, strategy, reads });
      assert.equal(stats.bytes, ranges.reduce((n, r) => n + r.byteLength, 0));
      // Reads in flight: as asked, else the slots up to the machine's cores; a mapped upload reads nothing.
      assert.equal(stats.reads, strategy === "mapped" ? undefined : reads ?? Math.min(slots, availableParallelism()));
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

/** `body` with `data` written to a file in a temporary folder. */
const withDataFile = <T>(data: Uint8Array, body: (path: string, data: Uint8Array) => Promise<T>) => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  await writeFile(path, data);
  return body(path, data);
});

/** A hybrid upload of `ranges` of `data` (in the file at `path`), each into a target of its own; checks the bytes and the progress reports. */
async function uploadHybridChecked(context: CudaContext, fake: ReturnType<typeof fakeCudart>, path: string, data: Uint8Array, spans: readonly (readonly [number, number])[], options: UploadOptions) {
  const ranges = spans.map(([offset, byteLength]) => ({ offset, byteLength, target: context.alloc(byteLength + 16), targetOffset: 16 }));
  const progress: number[] = [];
  const registered = fake.hostRegistrations.length;
  try {
    const stats = await uploadFileRanges(context, path, ranges, { strategy: "hybrid", onProgress: (done, total) => progress.push(done, total), ...options });
    const total = spans.reduce((n, [, length]) => n + length, 0);
    ranges.forEach((r, i) => assert.deepEqual(r.target.read(undefined, { offset: 16 }), data.subarray(r.offset, r.offset + r.byteLength), `range ${i}`));
    // Every byte counted once: the reports grow by whole copies and end at the total.
    const done = progress.filter((_, i) => i % 2 === 0);
    assert.ok(progress.every((n, i) => i % 2 === 0 || n === total));
    assert.ok(done.every((n, i) => n > (done[i - 1] ?? 0)), "each report adds bytes");
    assert.equal(done.at(-1) ?? 0, total);
    assert.equal(stats.bytes, total);
    assert.equal(stats.strategy, "hybrid");
    assert.ok(stats.mappedBytes! >= 0 && stats.mappedBytes! <= total);
    // The mapped side's windows: page-aligned runs of at most windowChunks chunks.
    const window = Math.ceil(stats.chunkBytes / pageSize()) * pageSize();
    for (const r of fake.hostRegistrations.slice(registered)) assert.ok(r.ptr % pageSize() === 0 && r.byteLength <= stats.windowChunks! * window, String(r.byteLength));
    return stats;
  } finally {
    for (const r of ranges) r.target.dispose();
  }
}

test("upload (hybrid): odd and overlapping ranges in any order, chunk sizes, rings and windows land at their targets, every byte reported once (property)", () => withDataFile(pattern(12 * pageSize() + 1234, 5), async (path, data) => {
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat({ max: data.length - 1 }), fc.nat({ max: 5 * pageSize() })), { minLength: 1, maxLength: 8 }),
    fc.integer({ min: 1, max: 3 * pageSize() }),
    fc.integer({ min: 1, max: 5 }),
    fc.integer({ min: 1, max: 4 }),
    (spans, chunkBytes, slots, windowChunks) => withSlowGpu(async (context, fake) => {
      const clipped = spans.map(([offset, length]) => [offset, Math.min(length, data.length - offset)] as const);
      const stats = await uploadHybridChecked(context, fake, path, data, clipped, { chunkBytes, slots, windowChunks });
      assert.deepEqual([stats.chunkBytes, stats.slots, stats.windowChunks], [chunkBytes, slots, windowChunks]);
      assert.equal(fake.live.size, 0);
    }),
  ), { numRuns: 30 });
}));

test("upload (hybrid): many small ranges sharing pages, split between the staging ring and the mapped windows", () => withDataFile(pattern(40 * pageSize() + 77, 6), async (path, data) => {
  // 600 ranges of 1–61 bytes, ~15 to a page, some overlapping their neighbours.
  const spans = Array.from({ length: 600 }, (_, i) => [Math.floor((i * data.length) / 600) + (i % 7), 1 + ((i * 37) % 61)] as const);
  await withSlowGpu(async (context, fake) => {
    const stats = await uploadHybridChecked(context, fake, path, data, spans, { chunkBytes: pageSize(), slots: 3, windowChunks: 1 });
    assert.ok(stats.mappedBytes! > 0 && stats.mappedBytes! < stats.bytes, `both sides worked: ${stats.mappedBytes} of ${stats.bytes} bytes mapped`);
    assert.ok(stats.chunks >= spans.length, "a copy per range at least (more where one crosses a chunk)");
    assert.equal(fake.live.size, 0);
  });
}));

test("upload (mapped): the event loop gets a turn after every window, even where each wait finds its copy done and waits are polled (Bun)", () => withDataFile(pattern(16 * pageSize(), 9), async (path, data) => {
  // Copies run at once on this fake and it has no off-thread waits: without a yield per window the
  // loop would run to its end in microtasks, holding back every I/O callback and timer (in a
  // hybrid, the staged side's reads: on the H200 host, Bun's hybrids went 100% mapped).
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime });
  using target = context.alloc(data.length);
  let turned = false;
  const seen: boolean[] = [];
  const onProgress = () => {
    // From the first window on: has the event loop run what was queued behind it?
    if (seen.length === 0) setImmediate(() => void (turned = true));
    seen.push(turned);
  };
  await uploadFileRanges(context, path, [{ offset: 0, byteLength: data.length, target }], { strategy: "mapped", chunkBytes: pageSize(), slots: 4, onProgress });
  assert.deepEqual(target.read(), data);
  assert.ok(seen.length === 16 && seen.at(-1) === true, `no turn of the event loop between windows (${seen.join(", ")})`);
}));

test("upload (hybrid): a range smaller than a chunk, and ranges whose chunks all go to the mapped side", () => withDataFile(pattern(6 * pageSize() + 5, 7), async (path, data) => {
  await withSlowGpu(async (context, fake) => {
    const small = await uploadHybridChecked(context, fake, path, data, [[pageSize() + 13, 101]], {});
    assert.deepEqual([small.chunks, small.bytes], [1, 101]);
    // The mapped side starts first and takes runs from the back: with windows as large as the
    // whole upload it takes everything at once, and the staging ring reads nothing.
    const before = fake.hostRegistrations.length;
    const spans = [[3, 2 * pageSize()], [2 * pageSize() + 1, 3 * pageSize()], [100, 50]] as const;
    const mapped = await uploadHybridChecked(context, fake, path, data, spans, { chunkBytes: pageSize(), windowChunks: 16 });
    assert.equal(mapped.mappedBytes, mapped.bytes);
    assert.equal(fake.hostRegistrations.length - before, 1, "one window for the whole run");
    assert.equal(fake.live.size, 0, "the unused staging ring is freed too");
  });
}));

test("upload (hybrid): staged copies on the caller's stream, mapped ones on a stream that waits for the caller's earlier work; both drained at return", () => withDataFile(pattern(8 * pageSize(), 8), async (path, data) => {
  await withSlowGpu(async (context, fake) => {
    using stream = context.createStream();
    using target = context.alloc(data.length);
    using stale = context.alloc(data.length);
    stale.fill(0xee);
    // Queued before the upload on the caller's stream: it must not land after the upload's copies.
    target.copyFrom(stale, { stream });
    const stats = await uploadFileRanges(context, path, [{ offset: 0, byteLength: data.length, target }], { strategy: "hybrid", stream, chunkBytes: pageSize(), windowChunks: 2 });
    assert.ok(stats.mappedBytes! > 0);
    assert.ok(stream.query(), "the caller's stream has drained");
    assert.equal(fake.queuedOperations, 0, "and so has the mapped side's");
    const waits = fake.calls.indexOf("cudaStreamWaitEvent");
    assert.ok(waits >= 0 && waits < fake.calls.indexOf("cudaHostRegister"), "the mapped stream waits before its first copy");
    assert.deepEqual(target.read(), data);
  });
}));

test("the fake GPU's cudaStreamWaitEvent holds a stream's later work until the event's stream got there", () => withSlowGpu(async (context, fake) => {
  using first = context.createStream();
  using second = context.createStream();
  using a = context.alloc(4);
  using b = context.alloc(4);
  using source = context.alloc(4);
  source.write(Uint8Array.of(1, 2, 3, 4));
  a.copyFrom(source, { stream: first });
  using done = first.record({ timing: false });
  second.waitEvent(done);
  b.copyFrom(a, { stream: second });
  second.synchronize();
  assert.deepEqual(b.read(), Uint8Array.of(1, 2, 3, 4));
  assert.equal(fake.queuedOperations, 0);
}));

for (const [call, failAfter] of [["cudaHostRegister", 0], ["cudaHostRegister", 3], ["cudaHostAlloc", 0], ["cudaMemcpyAsync", 1], ["cudaMemcpyAsync", 4], ["cudaMemcpyAsync", 9], ["cudaEventRecord", 6]] as const) {
  test(`upload (hybrid): a failing ${call} ${failAfter === 0 ? "at once" : `after ${failAfter} copies`} stops both sides, frees and unregisters everything and reports the CUDA error`, () => withDataFile(pattern(64 * pageSize(), 9), async (path) => {
    await withSlowGpu(async (context, fake) => {
      using target = context.alloc(64 * pageSize());
      let copies = 0;
      if (failAfter === 0) fake.failNext.set(call, 1);
      let reported = 0;
      await assert.rejects(uploadFileRanges(context, path, [{ offset: 0, byteLength: 64 * pageSize(), target }], {
        strategy: "hybrid",
        chunkBytes: pageSize(),
        slots: 4,
        windowChunks: 2,
        onProgress: (done) => {
          reported = done;
          if (++copies === failAfter) fake.failNext.set(call, 1);
        },
      }), (e) => e instanceof CudaError && e.message.includes(call));
      assert.ok(reported < 64 * pageSize(), "the other side stopped before the end");
      assert.equal(fake.live.size, 1, "only the target is left");
    });
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
      [[range], { strategy: "copied" as UploadStrategy }, /strategy must be "staged", "mapped" or "hybrid", got "copied"/],
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
      const windowChunks = strategy === "hybrid" ? /windowChunks must be a positive integer, got 0/ : new RegExp(`windowChunks is for the hybrid strategy: the ${strategy} one`);
      await assert.rejects(uploadFileRanges(context, path, [range], { strategy, windowChunks: 0 }), (e) => e instanceof UploadError && windowChunks.test(e.message));
      const reads = strategy === "mapped" ? /reads is for the staged and hybrid strategies: the mapped one reads nothing/ : /reads must be a positive integer, got 0/;
      await assert.rejects(uploadFileRanges(context, path, [range], { strategy, reads: 0 }), (e) => e instanceof UploadError && reads.test(e.message));
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
    [[model, "--strategy", "copied"], /--strategy takes one of staged, mapped, hybrid, got "copied"/],
    [[model, "--window", "0", "--strategy", "hybrid"], /--window needs an integer ≥ 1, got 0/],
    [[model, "--window", "2"], /--window is for --strategy hybrid/],
    [[model, "--reads", "0"], /--reads needs an integer ≥ 1, got 0/],
    [[model, "--reads", "2", "--strategy", "mapped"], /--reads is for --strategy staged or hybrid/],
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
