// NCCL on real GPUs (skips without a GPU or libnccl). One GPU: the version, one-rank
// communicators from a unique id (directly and over the TCP rendezvous), every collective is the
// identity with one rank for every dtype and op on random data, groups, abort and destroy.
// Two or more GPUs: one process drives every device through ncclCommInitAll.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
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
} from "../../src/cuda/index.ts";
import { probeGpu } from "./gpu-probe.ts";
import { firstDifference, randomBytes } from "./random.ts";

const gpu = probeGpu();
function probeNccl(): string | undefined {
  try {
    nccl();
    return undefined;
  } catch (error) {
    return `libnccl is not installed here (${(error as Error).message.split("\n")[0]})`;
  }
}
const skip = gpu.reason ?? probeNccl();
const skipMulti = skip ?? (gpu.deviceCount < 2 ? `needs 2 or more GPUs (this machine has ${gpu.deviceCount})` : undefined);

const dtypes = Object.keys(NcclDataType) as NcclDataTypeName[];
const ops = Object.keys(NcclReduceOp) as NcclReduceOpName[];

/** [exponent bits, mantissa bits] of the float formats whose bit patterns the tests generate. */
const floatBits: Partial<Record<NcclDataTypeName, [number, number]>> = {
  float16: [5, 10],
  bfloat16: [8, 7],
  float8e4m3: [4, 3],
  float8e5m2: [5, 2],
};

/**
 * `count` random elements of `dtype`: any bits for integers; for floats normal finite numbers
 * only, so that NaN payloads, infinities and flushed subnormals cannot make an exact identity
 * differ. (e4m3's top exponent holds normal numbers too; it is left out with its one NaN.)
 */
function randomElements(dtype: NcclDataTypeName, count: number): Uint8Array {
  const bytes = count * NcclDataType[dtype].bytes;
  if (dtype === "float32") return new Uint8Array(Float32Array.from({ length: count }, () => (Math.random() - 0.5) * 2 ** (Math.random() * 40 - 20)).buffer);
  if (dtype === "float64") return new Uint8Array(Float64Array.from({ length: count }, () => (Math.random() - 0.5) * 2 ** (Math.random() * 200 - 100)).buffer);
  const bits = floatBits[dtype];
  if (!bits) return randomBytes(bytes);
  const [exponentBits, mantissaBits] = bits;
  const width = 1 + exponentBits + mantissaBits;
  const out = width === 16 ? new Uint16Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const sign = Math.random() < 0.5 ? 1 : 0;
    const exponent = 1 + Math.floor(Math.random() * (2 ** exponentBits - 2));
    const mantissa = Math.floor(Math.random() * 2 ** mantissaBits);
    out[i] = (sign << (width - 1)) | (exponent << mantissaBits) | mantissa;
  }
  return new Uint8Array(out.buffer);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  const around = (bytes: Uint8Array) => Array.from(bytes.subarray(at - (at % 4), at - (at % 4) + 12), (b) => b.toString(16).padStart(2, "0")).join(" ");
  assert.equal(at, -1, `${what}: first difference at byte ${at} of ${expected.byteLength} (got ${around(actual)}, expected ${around(expected)})`);
}

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

// Exact expectations: values in [-2, 2] (sums, maxima, minima) and in {1, 2} (products, powers of
// two up to 2^8) that every listed dtype holds exactly. avg runs on float64 where the rank count
// is a power of two: NCCL scales each value by 1/n before summing, which is exact only then.
test("several GPUs in one process: all-reduce of per-rank data for integer and float dtypes", async () => {
  const n = gpu.deviceCount;
  const contexts = Array.from({ length: n }, (_, device) => CudaContext.create({ device }));
  const comms = NcclCommunicator.initAll(contexts);
  const streams = contexts.map((context) => context.createStream());
  const count = 4099;
  const cases: [NcclDataTypeName, NcclReduceOpName, (values: number[]) => number][] = [];
  for (const dtype of ["int32", "int64", "float32", "float64", "float16", "bfloat16"] as const) {
    cases.push([dtype, "sum", (v) => v.reduce((a, b) => a + b)], [dtype, "max", (v) => Math.max(...v)], [dtype, "min", (v) => Math.min(...v)], [dtype, "prod", (v) => v.reduce((a, b) => a * b)]);
  }
  if ((n & (n - 1)) === 0) cases.push(["float64", "avg", (v) => v.reduce((a, b) => a + b) / v.length]);
  const typed = { int32: Int32Array, int64: BigInt64Array, float32: Float32Array, float64: Float64Array } as const;
  const encode = (dtype: NcclDataTypeName, values: number[]): Uint8Array => {
    if (dtype === "float16" || dtype === "bfloat16") {
      // Small integers are exact in both; bfloat16 is float32's upper half.
      const f32 = new Uint32Array(Float32Array.from(values).buffer);
      return new Uint8Array((dtype === "bfloat16" ? Uint16Array.from(f32, (x) => x >>> 16) : Uint16Array.from(values, toHalf)).buffer);
    }
    const Type = typed[dtype as keyof typeof typed];
    return new Uint8Array((Type === BigInt64Array ? BigInt64Array.from(values, (v) => BigInt(v)) : (Type as Float64ArrayConstructor).from(values)).buffer);
  };
  for (const [dtype, op, reference] of cases) {
    const perRank = contexts.map((_, rank) => Array.from({ length: count }, (_, i) => (op === "prod" ? 1 + ((i + rank) % 2) : ((i * 7 + rank * 3) % 5) - 2)));
    const buffers = contexts.map((context, rank) => {
      const buffer = context.alloc(count * NcclDataType[dtype].bytes);
      buffer.write(encode(dtype, perRank[rank]!));
      return buffer;
    });
    nccl().group(() => comms.forEach((comm, rank) => comm.allReduce(buffers[rank]!, buffers[rank]!, { dtype, op, stream: streams[rank]! })));
    await Promise.all(comms.map((comm, rank) => comm.synchronized(streams[rank]!, { timeoutMs: 60_000 })));
    const expected = encode(dtype, Array.from({ length: count }, (_, i) => reference(perRank.map((values) => values[i]!))));
    for (const [rank, buffer] of buffers.entries()) {
      assertSame(buffer.read(), expected, `${dtype} ${op} on rank ${rank} of ${n}`);
      buffer.dispose();
    }
  }
  NcclCommunicator.disposeAll(comms);
  for (const context of contexts) context.dispose();
}, { skip: skipMulti, timeout: 300_000 });

/** IEEE half bits of a small integer (exact for |v| ≤ 2048). */
function toHalf(value: number): number {
  if (value === 0) return Object.is(value, -0) ? 0x8000 : 0;
  const sign = value < 0 ? 0x8000 : 0;
  const magnitude = Math.abs(value);
  const exponent = Math.floor(Math.log2(magnitude));
  const mantissa = Math.round((magnitude / 2 ** exponent - 1) * 1024);
  return sign | ((exponent + 15) << 10) | mantissa;
}
