// All-reduce across every GPU of the machine, driven from one process (ncclCommInitAll, group
// calls), for every dtype and reduction op on random data, checked against the float64 (or, for
// integers, exact wrapping) reference of nccl-reference.ts. Skips below two GPUs.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { CudaContext, type DeviceBuffer, NcclCommunicator, NcclDataType, type NcclDataTypeName, NcclReduceOp, type NcclReduceOpName, nccl } from "../../../src/cuda/index.ts";
import { ncclDataTypeSince } from "../../../src/cuda/nccl/nccl-types.ts";
import { assertSame, checkAllReduce, randomElements } from "./nccl-reference.ts";
import { gpu, multiGpuSkip } from "./nccl-probe.ts";

const ops = Object.keys(NcclReduceOp) as NcclReduceOpName[];
/** A count small enough for NCCL's low-latency protocol and one of several MiB, neither a multiple of a chunk. */
const counts = [1031, (1 << 18) + 3];

/** The dtypes this NCCL and these GPUs take: fp8 needs NCCL 2.24+ and sm_90+ on every device. */
function usableDtypes(contexts: CudaContext[]): NcclDataTypeName[] {
  const sm90 = contexts.every((context) => context.info().computeCapability.major >= 9);
  return (Object.keys(NcclDataType) as NcclDataTypeName[]).filter((dtype) => {
    const since = ncclDataTypeSince[dtype];
    return since === undefined || (nccl().version.code >= since && sm90);
  });
}

test("every GPU in one process: all-reduce of random data matches the reference for every dtype and op, on every rank alike", async () => {
  const contexts = Array.from({ length: gpu.deviceCount }, (_, device) => CudaContext.create({ device }));
  const comms = NcclCommunicator.initAll(contexts);
  const streams = contexts.map((context) => context.createStream({ nonBlocking: true }));
  const run = async (send: DeviceBuffer[], recv: DeviceBuffer[], dtype: NcclDataTypeName, op: NcclReduceOpName) => {
    nccl().group(() => comms.forEach((comm, rank) => comm.allReduce(send[rank]!, recv[rank]!, { dtype, op, stream: streams[rank]! })));
    await Promise.all(comms.map((comm, rank) => comm.synchronized(streams[rank]!, { timeoutMs: 60_000 })));
    return recv.map((buffer) => buffer.read());
  };
  try {
    const dtypes = usableDtypes(contexts);
    for (const dtype of dtypes) {
      for (const count of counts) {
        const bytes = count * NcclDataType[dtype].bytes;
        const send = contexts.map((context) => context.alloc(bytes));
        const recv = contexts.map((context) => context.alloc(bytes));
        try {
          for (const op of ops) {
            const what = `${dtype} ${op}, ${count} elements over ${contexts.length} GPUs`;
            const inputs = contexts.map(() => randomElements(dtype, count, op, contexts.length));
            send.forEach((buffer, rank) => buffer.write(inputs[rank]!));
            const results = await run(send, recv, dtype, op);
            results.forEach((result, rank) => assertSame(result, results[0]!, `${what}: rank ${rank} vs rank 0`));
            assert.equal(checkAllReduce(dtype, op, inputs, results[0]!), undefined, what);
            // In place gives the same bits.
            const inPlace = await run(send, send, dtype, op);
            inPlace.forEach((result, rank) => assertSame(result, results[0]!, `${what}, in place, rank ${rank}`));
          }
        } finally {
          [...send, ...recv].forEach((buffer) => buffer.dispose());
        }
      }
    }
    assert.ok(dtypes.length >= 10, `checked ${dtypes.join(", ")}`);
  } finally {
    NcclCommunicator.disposeAll(comms);
    contexts.forEach((context) => context.dispose());
  }
}, { skip: multiGpuSkip, timeout: 600_000 });
