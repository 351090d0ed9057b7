// The NCCL layer on the fake libnccl and the host-memory libcudart: every argument is checked in
// JS before a C call, layouts of the collectives (counts per rank, in-place forms), typed errors,
// groups, async errors, abort, and a communicator destroyed before its context's memory and streams.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { DisposedError, defineSymbols, encodeStruct, openLibrary } from "../../../src/ffi/index.ts";
import { ncclUniqueIdStruct } from "../../../src/cuda/nccl/nccl-library.ts";
import {
  CudaArgumentError,
  CudaContext,
  CudaStateError,
  DevicePool,
  NcclCommunicator,
  NcclError,
  NcclResult,
  decodeNcclVersion,
  disableNvlinkMulticast,
} from "../../../src/cuda/index.ts";
import { fakeCudart } from "../fake-cudart.ts";
import { fakeNccl } from "./nccl-fake.ts";
import { freePort } from "./rendezvous-helpers.ts";

function setup(nranks = 1, rank = 0, version?: number, deferred = false) {
  const cudart = fakeCudart({ deferred });
  const fake = fakeNccl({ log: cudart.calls, version });
  const context = CudaContext.create({ runtime: cudart.runtime });
  const stream = context.createStream();
  const comm = NcclCommunicator.initRank(context, { uniqueId: fake.nccl.uniqueId(), rank, nranks, nccl: fake.nccl });
  return { cudart, fake, context, stream, comm };
}

/** Runs `fn`, expects a CudaArgumentError matching `pattern`, and that no NCCL call was made. */
function rejects(fake: ReturnType<typeof fakeNccl>, fn: () => unknown, pattern: RegExp): void {
  const before = fake.calls.length;
  assert.throws(fn, (e: unknown) => e instanceof CudaArgumentError && pattern.test((e as Error).message), String(pattern));
  assert.deepEqual(fake.calls.slice(before).map((c) => c.name), [], "no NCCL call after a rejected argument");
}

test("versions decode in both of NCCL's encodings; the unique id is 128 bytes", () => {
  const { fake, context } = setup();
  assert.deepEqual(fake.nccl.version, { major: 2, minor: 28, patch: 3, code: 22803 });
  assert.deepEqual(decodeNcclVersion(2708), { major: 2, minor: 7, patch: 8, code: 2708 });
  assert.equal(fake.nccl.uniqueId().byteLength, 128);
  context.dispose();
});

test("the unique id goes to ncclCommInitRank by value as its 128 bytes, byte for byte", () => {
  const id = Uint8Array.from({ length: 128 }, (_, i) => 255 - i);
  assert.deepEqual([ncclUniqueIdStruct.size, ncclUniqueIdStruct.alignment], [128, 1]);
  assert.deepEqual(encodeStruct(ncclUniqueIdStruct, { internal: id }), id);
});

test("initRank checks nranks, rank and the unique id before calling NCCL", () => {
  const { fake, context } = setup();
  const uniqueId = new Uint8Array(128);
  const init = (options: object) => () => NcclCommunicator.initRank(context, { uniqueId, rank: 0, nranks: 1, nccl: fake.nccl, ...options });
  rejects(fake, init({ nranks: 0 }), /nranks must be a whole number ≥ 1/);
  rejects(fake, init({ nranks: 1.5 }), /nranks/);
  rejects(fake, init({ rank: 2, nranks: 2 }), /rank must be a whole number in \[0, 2\), got 2/);
  rejects(fake, init({ rank: -1 }), /rank must be/);
  rejects(fake, init({ uniqueId: new Uint8Array(64) }), /128-byte Uint8Array/);
  rejects(fake, init({ uniqueId: "id" }), /128-byte Uint8Array/);
  const comm = init({ rank: 3, nranks: 4 })();
  assert.deepEqual([comm.rank, comm.size], [3, 4]);
  const call = fake.calls.filter((c) => c.name === "ncclCommInitRank").at(-1)!;
  assert.deepEqual(call.args.slice(1), [4, { internal: uniqueId }, 3], "nranks, the id by value, rank");
  context.dispose();
});

test("a failed init throws NcclError with NCCL's name and string", () => {
  const { fake, context } = setup();
  fake.failNext.set("ncclCommInitRank", NcclResult.invalidUsage);
  assert.throws(() => NcclCommunicator.initRank(context, { uniqueId: new Uint8Array(128), rank: 0, nranks: 1, nccl: fake.nccl }), (e: unknown) => {
    assert.ok(e instanceof NcclError);
    assert.equal(e.status, 5);
    assert.equal(e.resultName, "ncclInvalidUsage");
    assert.equal(e.code, "ERR_NCCL_5");
    assert.match(e.message, /ncclCommInitRank failed: ncclInvalidUsage \(5\): invalid usage\. rank 0 of 1 on device 0/);
    return true;
  });
  context.dispose();
});

test("one rank: allReduce copies send into recv and passes count, dtype, op and stream to NCCL", () => {
  const { fake, context, stream, comm } = setup();
  const send = context.alloc(64);
  const recv = context.alloc(64);
  const data = Float32Array.from({ length: 16 }, (_, i) => i * 1.5);
  send.write(data);
  comm.allReduce(send, recv, { dtype: "float32", op: "max", stream });
  assert.deepEqual(recv.read(new Float32Array(16)), data);
  const call = fake.calls.find((c) => c.name === "ncclAllReduce")!;
  assert.deepEqual(call.args, [send.ptr, recv.ptr, 16, 7, 2, comm.handle, stream.handle]);
  comm.allReduce(send, recv, { dtype: "int8", count: 10, sendOffset: 3, recvOffset: 5, stream });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 5), [send.ptr + 3, recv.ptr + 5, 10, 0, 0], "offsets, count, int8, sum by default");
  context.dispose();
});

test("collective arguments are checked against buffers, dtypes, ops, devices and streams before NCCL", () => {
  const { cudart, fake, context, stream, comm } = setup();
  const send = context.alloc(64);
  const recv = context.alloc(64);
  const other = CudaContext.create({ runtime: cudart.runtime, device: 1 });
  const elsewhere = other.alloc(64);
  const otherStream = other.createStream();
  const pinned = context.allocPinned(64);
  const run = (options: object, s: unknown = send, r: unknown = recv) => () => comm.allReduce(s as never, r as never, { dtype: "float32", stream, ...options } as never);
  rejects(fake, run({ dtype: "float128" }), /unknown dtype "float128"; known: int8, uint8/);
  rejects(fake, run({ op: "xor" }), /unknown op "xor"; known: sum, prod, max, min, avg/);
  rejects(fake, run({ count: 17 }), /send.*bytes \[0, 68\) are out of range for a buffer of 64 bytes/);
  rejects(fake, run({ count: -1 }), /count must be a whole number/);
  rejects(fake, run({ count: 2.5 }), /count must be a whole number/);
  rejects(fake, run({ dtype: "float64", sendOffset: 4 }), /sendOffset must be a byte offset ≥ 0 and a multiple of the element size \(8\)/);
  rejects(fake, run({ recvOffset: 8, count: 15 }), /recv.*out of range/);
  rejects(fake, run({ sendOffset: 8, count: 16 }), /send.*out of range/);
  rejects(fake, run({}, elsewhere), /send is on device 1, but rank 0 runs on device 0/);
  rejects(fake, run({}, send, pinned), /recv must be device memory/);
  rejects(fake, run({}, new Float32Array(16)), /send must be device memory.*Float32Array of 64 bytes/);
  rejects(fake, run({ stream: undefined }), /a CudaStream is required/);
  rejects(fake, run({ stream: otherStream }), /the stream belongs to device 1, but the operation is on device 0/);
  const odd = context.alloc(62);
  rejects(fake, run({}, odd, odd), /62 bytes after the offset are not a whole number of 1 × float32/);
  rejects(fake, () => comm.allReduce(send, recv, undefined as never), /options with dtype and stream are required/);
  rejects(fake, run({ count: 8, recvOffset: 16 }, send, send), /overlap, and not in NCCL's in-place layout/);
  comm.allReduce(send, send, { dtype: "float32", stream });
  assert.equal(fake.calls.at(-1)!.name, "ncclAllReduce", "in place is allowed");
  other.dispose();
  context.dispose();
});

test("four ranks: counts per rank for reduceScatter and allGather, their in-place forms, roots", () => {
  const { fake, context, stream, comm } = setup(4, 2);
  const big = context.alloc(4 * 32);
  const small = context.alloc(32);
  comm.allGather(small, big, { dtype: "float32", stream });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 4), [small.ptr, big.ptr, 8, 7], "sendcount from the send buffer");
  rejects(fake, () => comm.allGather(small, small, { dtype: "float32", stream }), /recv.*out of range for a buffer of 32 bytes/);
  comm.allGather(big, big, { dtype: "float32", stream, count: 8, sendOffset: 2 * 32 });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 3), [big.ptr + 64, big.ptr, 8], "in place: send is block `rank` of recv");
  rejects(fake, () => comm.allGather(big, big, { dtype: "float32", stream, count: 8, sendOffset: 32 }), /overlap.*send must start 64 bytes after recv/);
  comm.reduceScatter(big, small, { dtype: "float32", op: "avg", stream });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 5), [big.ptr, small.ptr, 8, 7, 4], "recvcount from the recv buffer, avg");
  rejects(fake, () => comm.reduceScatter(small, small, { dtype: "float32", stream }), /send.*out of range/);
  comm.reduceScatter(big, big, { dtype: "float32", stream, count: 8, recvOffset: 2 * 32 });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 2), [big.ptr, big.ptr + 64], "in place: recv is block `rank` of send");
  rejects(fake, () => comm.broadcast(null, small, { dtype: "float32", stream, root: 4 }), /root must be a whole number in \[0, 4\), got 4/);
  comm.broadcast(null, small, { dtype: "float32", stream, root: 0 });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 5), [small.ptr, small.ptr, 8, 7, 0], "a non-root rank needs no send buffer");
  rejects(fake, () => comm.broadcast(null, small, { dtype: "float32", stream, root: 2 }), /rank 2 is the root\): send is required/);
  comm.reduce(small, null, { dtype: "uint8", stream, root: 1 });
  assert.deepEqual(fake.calls.at(-1)!.args.slice(0, 6), [small.ptr, 0, 32, 1, 0, 1], "a non-root rank needs no recv buffer");
  rejects(fake, () => comm.reduce(small, null, { dtype: "float32", stream, root: 2 }), /recv is required/);
  context.dispose();
});

test("fp8 dtypes need NCCL 2.24: an older library is refused in JS", () => {
  const { fake, context, stream, comm } = setup(1, 0, 22304);
  const buffer = context.alloc(16);
  rejects(fake, () => comm.allReduce(buffer, buffer, { dtype: "float8e4m3", stream }), /float8e4m3 needs NCCL 2\.24\.0 or newer; the loaded NCCL is 2\.23\.4/);
  comm.allReduce(buffer, buffer, { dtype: "bfloat16", stream });
  context.dispose();
});

test("pool buffers work as collective buffers", () => {
  const { context, stream, comm } = setup();
  const pool = new DevicePool(context);
  const send = pool.alloc(256, { stream });
  const recv = pool.alloc(256, { stream });
  send.write(new Uint8Array(256).fill(9));
  comm.allGather(send, recv, { dtype: "uint64", stream });
  assert.equal(recv.read()[255], 9);
  send.dispose();
  recv.dispose();
  pool.dispose();
  context.dispose();
});

test("disposal: use after dispose throws; the context destroys its communicator before memory and streams", () => {
  const { cudart, fake, context, stream, comm } = setup();
  const buffer = context.alloc(16);
  void stream;
  comm.dispose();
  assert.throws(() => comm.allReduce(buffer, buffer, { dtype: "uint8", stream }), DisposedError);
  assert.throws(() => comm.dispose(), DisposedError);
  assert.equal(fake.live.size, 0);
  const second = NcclCommunicator.initRank(context, { uniqueId: new Uint8Array(128), rank: 0, nranks: 1, nccl: fake.nccl });
  context.dispose();
  assert.ok(second.disposed);
  assert.equal(fake.live.size, 0);
  const order = cudart.calls.filter((c) => ["ncclCommDestroy", "cudaFree", "cudaStreamDestroy"].includes(c));
  assert.deepEqual(order.slice(-3), ["ncclCommDestroy", "cudaFree", "cudaStreamDestroy"]);
  assert.throws(() => NcclCommunicator.initRank(context, { uniqueId: new Uint8Array(128), rank: 0, nranks: 1, nccl: fake.nccl }), DisposedError);
});

test("abort ends the communicator at once; a failed destroy throws NcclError after it is gone", () => {
  const { fake, context, comm } = setup();
  comm.abort();
  assert.ok(comm.disposed);
  comm.abort();
  assert.deepEqual(fake.calls.filter((c) => c.name.startsWith("ncclComm") && c.name !== "ncclCommInitRank").map((c) => c.name), ["ncclCommAbort"]);
  const second = NcclCommunicator.initRank(context, { uniqueId: new Uint8Array(128), rank: 0, nranks: 1, nccl: fake.nccl });
  fake.failNext.set("ncclCommDestroy", NcclResult.internalError);
  assert.throws(() => second.dispose(), (e: unknown) => e instanceof NcclError && e.call === "ncclCommDestroy" && e.resultName === "ncclInternalError");
  assert.ok(second.disposed);
  context.dispose();
});

test("synchronized aborts and throws on an asynchronous error, and on its timeout", async () => {
  const done = setup();
  await done.comm.synchronized(done.stream);
  done.context.dispose();
  for (const failure of ["async", "timeout"] as const) {
    // Deferred: the memset stays queued, so the stream never reports done.
    const { cudart, fake, context, stream, comm } = setup(1, 0, undefined, true);
    // Held until the end: a collected buffer's cudaFree would run the queue and finish the stream.
    const pending = context.alloc(16);
    pending.fill(1, { stream });
    if (failure === "async") fake.asyncError = NcclResult.remoteError;
    const waiting = comm.synchronized(stream, { timeoutMs: 50 });
    await assert.rejects(waiting, failure === "async"
      ? (e: unknown) => e instanceof NcclError && e.resultName === "ncclRemoteError" && /remote process exited/.test(e.message)
      : (e: unknown) => e instanceof CudaStateError && /did not finish within 50 ms; the communicator was aborted/.test((e as Error).message));
    assert.ok(comm.disposed, "aborted");
    assert.equal(fake.calls.at(-1)!.name, "ncclCommAbort");
    assert.equal(stream.query(), false, "still pending when the wait gave up");
    cudart.runQueued();
    pending.dispose();
    context.dispose();
  }
});

test("groups close even when their body throws; initAll and disposeAll over two devices", () => {
  const cudart = fakeCudart();
  const fake = fakeNccl({ log: cudart.calls });
  const contexts = [0, 1].map((device) => CudaContext.create({ runtime: cudart.runtime, device }));
  rejects(fake, () => NcclCommunicator.initAll([contexts[0]!, contexts[0]!], { nccl: fake.nccl }), /each device may appear once/);
  rejects(fake, () => NcclCommunicator.initAll([], { nccl: fake.nccl }), /non-empty array/);
  const comms = NcclCommunicator.initAll(contexts, { nccl: fake.nccl });
  assert.deepEqual(comms.map((c) => [c.rank, c.size, c.context.device]), [[0, 2, 0], [1, 2, 1]]);
  assert.deepEqual(Array.from(fake.calls.find((c) => c.name === "ncclCommInitAll")!.args[2] as Int32Array), [0, 1]);
  const streams = contexts.map((context) => context.createStream());
  const buffers = contexts.map((context) => context.alloc(32));
  fake.calls.length = 0;
  assert.throws(() => fake.nccl.group(() => {
    comms[0]!.allReduce(buffers[0]!, buffers[0]!, { dtype: "float32", stream: streams[0]! });
    comms[1]!.allReduce(buffers[0]!, buffers[0]!, { dtype: "float32", stream: streams[1]! });
  }), /send is on device 0, but rank 1 runs on device 1/);
  assert.deepEqual(fake.calls.map((c) => c.name), ["ncclGroupStart", "ncclAllReduce", "ncclGroupEnd"]);
  fake.nccl.group(() => comms.forEach((comm, i) => comm.allReduce(buffers[i]!, buffers[i]!, { dtype: "float32", stream: streams[i]! })));
  fake.calls.length = 0;
  NcclCommunicator.disposeAll(comms);
  assert.deepEqual(fake.calls.map((c) => c.name), ["ncclGroupStart", "ncclCommFinalize", "ncclCommFinalize", "ncclGroupEnd", "ncclCommDestroy", "ncclCommDestroy"]);
  assert.ok(comms.every((c) => c.disposed));
  for (const context of contexts) context.dispose();
});

test("connect: rendezvous on 127.0.0.1, then every rank joins with the same id", async () => {
  const cudart = fakeCudart();
  const fake = fakeNccl();
  const contexts = [0, 1].map((device) => CudaContext.create({ runtime: cudart.runtime, device }));
  const port = await freePort();
  const comms = await Promise.all(contexts.map((context, rank) => NcclCommunicator.connect(context, { host: "127.0.0.1", port, rank, nranks: 2, timeoutMs: 10_000, nccl: fake.nccl })));
  assert.deepEqual(comms.map((c) => c.rank), [0, 1]);
  const ids = fake.calls.filter((c) => c.name === "ncclCommInitRank").map((c) => Array.from((c.args[2] as { internal: Uint8Array }).internal));
  assert.equal(ids.length, 2);
  assert.deepEqual(ids[0], ids[1]);
  assert.deepEqual(ids[0], Array.from(fake.nccl.uniqueId()));
  for (const context of contexts) context.dispose();
});

test("NCCL_NVLS_ENABLE=0 is set in the C environment and in process.env", () => {
  disableNvlinkMulticast();
  const libc = openLibrary("libc", "libc.so.6", defineSymbols({ getenv: { parameters: ["cstring"], result: "cstring" } }));
  assert.equal(libc.symbols.getenv("NCCL_NVLS_ENABLE"), "0");
  assert.equal(process.env.NCCL_NVLS_ENABLE, "0");
});
