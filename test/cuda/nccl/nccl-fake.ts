// A stand-in for libnccl, so that the NCCL layer's validation, state and disposal run on machines
// without NCCL. It records every call with its arguments; a communicator of one rank runs its
// collectives on the fake libcudart's host memory (each is a copy then), larger ones only record.
import { nativeView, type Pointer } from "../../../src/ffi/index.ts";
import { type RecordedCall, recordingSymbols } from "../recording-symbols.ts";
import { Nccl, type NcclApi, NcclDataType } from "../../../src/cuda/index.ts";

export interface FakeNccl {
  readonly nccl: Nccl;
  readonly calls: RecordedCall[];
  /** Communicators created and not yet destroyed or aborted. */
  readonly live: Set<Pointer>;
  /** The status the next call of that name returns instead of running. */
  readonly failNext: Map<string, number>;
  /** What ncclCommGetAsyncError reports from now on (default ncclSuccess). */
  asyncError: number;
}

const elementBytes = new Map<number, number>(Object.values(NcclDataType).map((t) => [t.code, t.bytes]));
const errorStrings = ["no error", "unhandled cuda error", "unhandled system error", "internal error", "invalid argument", "invalid usage", "remote process exited or there was a network error", "NCCL operation in progress"];

export interface FakeNcclOptions {
  /** ncclGetVersion's code (default 22803, NCCL 2.28.3). */
  version?: number;
  /** Also push each call's name here, e.g. the fake libcudart's `calls`, to see both in one order. */
  log?: string[];
}

export function fakeNccl(options: FakeNcclOptions = {}): FakeNccl {
  const calls: RecordedCall[] = [];
  const live = new Set<Pointer>();
  const failNext = new Map<string, number>();
  const sizes = new Map<Pointer, number>();
  let nextHandle = 0x5000;
  const state = { asyncError: 0 };
  const writeInt = (out: ArrayBufferView, value: number) => void (new Int32Array(out.buffer, out.byteOffset, 1)[0] = value);
  const create = (nranks: number) => {
    const handle = nextHandle++;
    live.add(handle);
    sizes.set(handle, nranks);
    return handle;
  };
  // One rank: every collective moves `bytes` from send to recv.
  const copy = (send: Pointer, recv: Pointer, bytes: number, comm: Pointer) => {
    if (!live.has(comm)) return 4;
    if (sizes.get(comm) === 1 && bytes > 0 && send !== recv) new Uint8Array(nativeView(recv, bytes)).set(new Uint8Array(nativeView(send, bytes)).slice());
    return 0;
  };
  const bytesOf = (count: number, dtype: number) => count * elementBytes.get(dtype)!;
  const implementation: Record<string, (...args: never[]) => unknown> = {
    ncclGetVersion: (out: ArrayBufferView) => (writeInt(out, options.version ?? 22803), 0),
    ncclGetUniqueId: (out: Uint8Array) => {
      for (let i = 0; i < out.length; i++) out[i] = (i * 37 + 11) & 0xff;
      return 0;
    },
    ncclCommInitRank: (out: BigUint64Array, nranks: number) => ((out[0] = BigInt(create(nranks))), 0),
    ncclCommInitAll: (out: BigUint64Array, ndev: number) => {
      for (let i = 0; i < ndev; i++) out[i] = BigInt(create(ndev));
      return 0;
    },
    ncclCommFinalize: (comm: Pointer) => (live.has(comm) ? 0 : 4),
    ncclCommDestroy: (comm: Pointer) => (live.delete(comm) ? 0 : 4),
    ncclCommAbort: (comm: Pointer) => (live.delete(comm) ? 0 : 4),
    ncclGetErrorString: (status: number) => errorStrings[status] ?? "unknown result code",
    ncclGetLastError: (comm: Pointer) => (comm === 0 ? "" : `fake last error of comm ${comm}`),
    ncclCommGetAsyncError: (comm: Pointer, out: ArrayBufferView) => (live.has(comm) ? (writeInt(out, state.asyncError), 0) : 4),
    ncclCommCount: (comm: Pointer, out: ArrayBufferView) => (writeInt(out, sizes.get(comm)!), 0),
    ncclCommCuDevice: (_comm: Pointer, out: ArrayBufferView) => (writeInt(out, 0), 0),
    ncclCommUserRank: (_comm: Pointer, out: ArrayBufferView) => (writeInt(out, 0), 0),
    ncclReduce: (s: Pointer, r: Pointer, count: number, dtype: number, _op: number, _root: number, comm: Pointer) => copy(s, r, r === 0 ? 0 : bytesOf(count, dtype), comm),
    ncclBroadcast: (s: Pointer, r: Pointer, count: number, dtype: number, _root: number, comm: Pointer) => copy(s, r, bytesOf(count, dtype), comm),
    ncclAllReduce: (s: Pointer, r: Pointer, count: number, dtype: number, _op: number, comm: Pointer) => copy(s, r, bytesOf(count, dtype), comm),
    ncclReduceScatter: (s: Pointer, r: Pointer, count: number, dtype: number, _op: number, comm: Pointer) => copy(s, r, bytesOf(count, dtype), comm),
    ncclAllGather: (s: Pointer, r: Pointer, count: number, dtype: number, comm: Pointer) => copy(s, r, bytesOf(count, dtype), comm),
    ncclGroupStart: () => 0,
    ncclGroupEnd: () => 0,
  };
  const symbols = recordingSymbols<NcclApi["symbols"]>("libnccl", implementation as never, { calls, failNext, log: options.log });
  const api: NcclApi = { path: "/fake/libnccl.so.2", symbols };
  return {
    nccl: new Nccl(api),
    calls,
    live,
    failNext,
    get asyncError() {
      return state.asyncError;
    },
    set asyncError(status: number) {
      state.asyncError = status;
    },
  };
}
