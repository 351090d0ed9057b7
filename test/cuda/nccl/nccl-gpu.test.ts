// NCCL on real GPUs (skips without a GPU or libnccl). One GPU: the version, one-rank
// communicators from a unique id (directly and over the TCP rendezvous), every collective is the
// identity with one rank for every dtype and op on random data, groups, abort and destroy.
// Several GPUs in one process: nccl-multi-gpu.test.ts.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  CudaContext,
  type CudaStream,
  type DeviceBuffer,
  DevicePool,
  NcclCommunicator,
  NcclDataType,
  type NcclDataTypeName,
  NcclReduceOp,
  type NcclReduceOpName,
  RendezvousServer,
  fetchUniqueId,
  nccl,
} from "../../../src/cuda/index.ts";
import { assertSame, randomElements } from "./nccl-reference.ts";
import { gpu, ncclSkip as skip } from "./nccl-probe.ts";
import { randomBytes } from "../random.ts";

const dtypes = Object.keys(NcclDataType) as NcclDataTypeName[];
const ops = Object.keys(NcclReduceOp) as NcclReduceOpName[];

function oneRank(context: CudaContext): NcclCommunicator {
  return NcclCommunicator.initRank(context, { uniqueId: nccl().uniqueId(), rank: 0, nranks: 1 });
}

async function fill(buffer: DeviceBuffer, data: Uint8Array, stream: CudaStream): Promise<void> {
  buffer.write(data, { stream });
  await stream.synchronized();
}

test("libnccl loads with NVLink multicast off and reports its version", () => {
  const library = nccl();
  assert.match(library.path, /libnccl\.so/);
  assert.equal(library.version.major, 2);
  assert.ok(library.version.code >= 21200, `NCCL ${library.version.major}.${library.version.minor}`);
  assert.equal(process.env.NCCL_NVLS_ENABLE, "0");
  assert.equal(library.uniqueId().byteLength, 128);
}, { skip });

test("a one-rank communicator from ncclGetUniqueId runs on the context's device", () => {
  using context = CudaContext.create();
  using comm = oneRank(context);
  assert.deepEqual([comm.rank, comm.size, comm.cudaDevice()], [0, 1, context.device]);
  assert.equal(comm.asyncError(), undefined);
}, { skip, timeout: 60_000 });

test("the unique id travels over the TCP rendezvous on 127.0.0.1 and initializes a communicator", async () => {
  using context = CudaContext.create();
  const id = nccl().uniqueId();
  const server = await RendezvousServer.listen(id, { host: "127.0.0.1", port: 0, nranks: 2, timeoutMs: 20_000 });
  const fetched = await fetchUniqueId({ host: "127.0.0.1", port: server.port, rank: 1, nranks: 2 });
  await server.done;
  assertSame(fetched, id, "fetched id");
  // One GPU holds one rank: the fetched id bootstraps a one-rank communicator.
  using comm = NcclCommunicator.initRank(context, { uniqueId: fetched, rank: 0, nranks: 1 });
  using stream = context.createStream();
  using buffer = context.alloc(4096);
  const data = randomBytes(4096);
  await fill(buffer, data, stream);
  comm.allReduce(buffer, buffer, { dtype: "uint8", stream });
  await comm.synchronized(stream, { timeoutMs: 20_000 });
  assertSame(buffer.read(), data, "in-place all-reduce over a rendezvous-made communicator");
  using connected = await NcclCommunicator.connect(context, { host: "127.0.0.1", port: 0, rank: 0, nranks: 1 });
  assert.equal(connected.size, 1);
}, { skip, timeout: 60_000 });

test("with one rank, all-reduce is the identity for every dtype and op on random data", async () => {
  using context = CudaContext.create();
  using comm = oneRank(context);
  using stream = context.createStream({ nonBlocking: true });
  const count = 100_003;
  for (const dtype of dtypes) {
    const bytes = count * NcclDataType[dtype].bytes;
    using send = context.alloc(bytes);
    using recv = context.alloc(bytes);
    for (const op of ops) {
      const data = randomElements(dtype, count);
      await fill(send, data, stream);
      recv.fill(0, { stream });
      comm.allReduce(send, recv, { dtype, op, stream });
      await comm.synchronized(stream, { timeoutMs: 20_000 });
      assertSame(recv.read(), data, `${dtype} ${op}`);
      comm.allReduce(send, send, { dtype, op, stream });
      await stream.synchronized();
      assertSame(send.read(), data, `${dtype} ${op} in place`);
    }
  }
}, { skip, timeout: 120_000 });

test("with one rank, broadcast, reduce, all-gather and reduce-scatter copy the data, also on pool buffers", async () => {
  using context = CudaContext.create();
  using comm = oneRank(context);
  using stream = context.createStream();
  using pool = new DevicePool(context);
  const bytes = 3 * 2 ** 20;
  for (const [name, alloc] of [["DeviceBuffer", () => context.alloc(bytes)], ["pool", () => pool.alloc(bytes, { stream })]] as const) {
    const run = async (what: string, collective: (send: DeviceBuffer, recv: DeviceBuffer) => void) => {
      using send = alloc();
      using recv = alloc();
      const data = randomBytes(bytes);
      await fill(send, data, stream);
      recv.fill(0, { stream });
      collective(send, recv);
      await comm.synchronized(stream, { timeoutMs: 20_000 });
      assertSame(recv.read(), data, `${what} (${name})`);
    };
    await run("broadcast", (send, recv) => comm.broadcast(send, recv, { dtype: "float32", root: 0, stream }));
    await run("reduce", (send, recv) => comm.reduce(send, recv, { dtype: "int32", op: "max", root: 0, stream }));
    await run("allGather", (send, recv) => comm.allGather(send, recv, { dtype: "uint64", stream }));
    await run("reduceScatter", (send, recv) => comm.reduceScatter(send, recv, { dtype: "uint8", op: "sum", stream }));
    await run("allReduce with offsets", (send, recv) => {
      comm.allReduce(send, recv, { dtype: "float64", stream, count: bytes / 8 - 2, sendOffset: 8, recvOffset: 8 });
      recv.copyFrom(send, { byteLength: 8, stream });
      recv.copyFrom(send, { srcOffset: bytes - 8, dstOffset: bytes - 8, stream });
    });
  }
}, { skip, timeout: 120_000 });

test("group calls launch several collectives together", async () => {
  using context = CudaContext.create();
  using comm = oneRank(context);
  using stream = context.createStream();
  using a = context.alloc(1 << 20);
  using b = context.alloc(1 << 20);
  using c = context.alloc(1 << 20);
  const [da, db] = [randomBytes(1 << 20), randomBytes(1 << 20)];
  await fill(a, da, stream);
  await fill(b, db, stream);
  comm.nccl.group(() => {
    comm.allReduce(a, a, { dtype: "float16", op: "max", stream });
    comm.allGather(b, c, { dtype: "int8", stream });
  });
  await comm.synchronized(stream, { timeoutMs: 20_000 });
  assertSame(a.read(), da, "group: in-place all-reduce (max of one rank, bit patterns kept)");
  assertSame(c.read(), db, "group: all-gather");
}, { skip, timeout: 60_000 });

test("ncclCommInitAll over this process's devices, group-finalized by disposeAll", async () => {
  const contexts = Array.from({ length: gpu.deviceCount }, (_, device) => CudaContext.create({ device }));
  const comms = NcclCommunicator.initAll(contexts);
  assert.deepEqual(comms.map((c) => c.cudaDevice()), contexts.map((c) => c.device));
  NcclCommunicator.disposeAll(comms);
  assert.ok(comms.every((c) => c.disposed));
  for (const context of contexts) context.dispose();
}, { skip, timeout: 60_000 });

test("abort ends a communicator with queued work; disposing the context destroys a live one", async () => {
  const context = CudaContext.create();
  const stream = context.createStream();
  const buffer = context.alloc(64 * 2 ** 20);
  const aborted = oneRank(context);
  aborted.allReduce(buffer, buffer, { dtype: "float32", stream });
  aborted.abort();
  assert.ok(aborted.disposed);
  await stream.synchronized();
  const next = oneRank(context);
  next.allReduce(buffer, buffer, { dtype: "float32", stream });
  await next.synchronized(stream, { timeoutMs: 20_000 });
  context.dispose();
  assert.ok(next.disposed && buffer.disposed && stream.disposed);
}, { skip, timeout: 60_000 });
