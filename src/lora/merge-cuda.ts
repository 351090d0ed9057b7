// The merge's arithmetic on a GPU: per adapted tensor, W (as f32) and each pair's factors go to
// pitched device buffers from a pool (shapes repeat from layer to layer, so after the first
// layer nothing is allocated), and cuBLAS accumulates C = factor·left·right + C in place
// (SGEMM with beta = 1). Tensors still stream through one at a time, so host memory holds at
// most one tensor whatever the model's size.
import { type CublasHandle, type CudaContext, type CudaStream, Matrix, PitchedPool } from "../cuda/index.ts";
import type { MergeDevice, MergeTerm } from "./merge.ts";

export class CudaMergeDevice implements MergeDevice, Disposable {
  readonly #pool: PitchedPool;

  /** `cublas` queues on `stream`; both stay the caller's (dispose them after this). */
  constructor(
    readonly context: CudaContext,
    private readonly cublas: CublasHandle,
    private readonly stream: CudaStream,
  ) {
    cublas.setStream(stream);
    this.#pool = new PitchedPool(context);
  }

  #matrix(rows: number, cols: number, values: Float32Array): Matrix {
    const matrix = Matrix.fromPitched(this.#pool.alloc(rows, cols, { elementType: "f32", stream: this.stream }));
    matrix.upload(values, { stream: this.stream });
    return matrix;
  }

  addDeltas(weight: Float32Array, nIn: number, nOut: number, terms: readonly MergeTerm[]): Promise<Float32Array> {
    const c = this.#matrix(nOut, nIn, weight);
    const factors: Matrix[] = [];
    try {
      for (const { left, right, rank, factor } of terms) {
        const a = this.#matrix(nOut, rank, left);
        const b = this.#matrix(rank, nIn, right);
        factors.push(a, b);
        this.cublas.gemm(a, b, c, { alpha: factor, beta: 1 });
      }
      // download waits for the GEMMs queued before it on the stream.
      return Promise.resolve(c.download({ stream: this.stream }));
    } finally {
      for (const m of [c, ...factors]) m.memory.dispose();
    }
  }

  [Symbol.dispose](): void {
    this.#pool.dispose();
  }
}
