// Data-parallel training: every rank takes the same global batch order, trains its own slice of
// each batch, and sums its LoRA gradients (and its share of the loss) with the other ranks'
// before the optimizer step. The loss is weighted by the global batch's counted positions, so a
// sum, not a mean, gives every rank the gradient one process would compute on the whole batch.
import type { Pointer } from "../../ffi/index.ts";
import { type CudaContext, type CudaStream, DeviceBuffer, type NcclCommunicator } from "../../cuda/index.ts";
import { TrainingError } from "./errors.ts";

/** Sums a range of F32 values in place across every rank of a data-parallel run. */
export interface GradientReducer {
  readonly rank: number;
  readonly ranks: number;
  /** The range is read and written from the CPU (TcpGradientReducer): only a CPU trainer's gradients can be summed. */
  readonly hostMemory?: boolean;
  /** In place: every rank's [ptr, ptr + byteLength) becomes the element-wise sum over the ranks. */
  sum(ptr: Pointer, byteLength: number): Promise<void>;
}

/** The slice of a global batch that rank `rank` of `ranks` trains: contiguous, equal sizes. */
export function shardOf<T>(batch: readonly T[], rank: number, ranks: number): T[] {
  if (batch.length % ranks !== 0) throw new TrainingError("ERR_TRAIN_ARGUMENT", `a batch of ${batch.length} does not split over ${ranks} ranks`);
  const size = batch.length / ranks;
  return batch.slice(rank * size, (rank + 1) * size);
}

/**
 * Gradients summed over NCCL: the trainer's accumulators live in ggml's CUDA buffer, borrowed
 * here for the collective (ggml's computation has finished when a step hands them over).
 */
export class NcclGradientReducer implements GradientReducer {
  constructor(
    readonly communicator: NcclCommunicator,
    private readonly context: CudaContext,
    private readonly stream: CudaStream,
  ) {}

  get rank(): number {
    return this.communicator.rank;
  }

  get ranks(): number {
    return this.communicator.size;
  }

  async sum(ptr: Pointer, byteLength: number): Promise<void> {
    using memory = DeviceBuffer.borrow(this.context, ptr, byteLength);
    this.communicator.allReduce(memory, memory, { dtype: "float32", op: "sum", stream: this.stream });
    await this.communicator.synchronized(this.stream);
  }
}
