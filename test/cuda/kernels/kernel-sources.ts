// CUDA C++ that the GPU tests and the benchmark run, kept in one place so that nvrtc.test.ts can
// compile all of it wherever NVRTC is (no GPU needed): a typo shows up on CI, not on the GPU machine.
import { f32ToBf16Bits, f32ToF16Bits } from "../../../src/formats/half.ts";

/** out[r][c] = bf16(float(in[r][c]) * scales[r]) over pitched fp16 in and bf16 out. */
export const rowScaleSource = `#include <cuda_fp16.h>
#include <cuda_bf16.h>
extern "C" __global__ void row_scale(const char *in, size_t in_pitch, char *out, size_t out_pitch, const float *scales, int rows, int cols) {
  int col = blockIdx.x * blockDim.x + threadIdx.x;
  int row = blockIdx.y * blockDim.y + threadIdx.y;
  if (row >= rows || col >= cols) return;
  const __half *in_row = reinterpret_cast<const __half *>(in + row * in_pitch);
  __nv_bfloat16 *out_row = reinterpret_cast<__nv_bfloat16 *>(out + row * out_pitch);
  out_row[col] = __float2bfloat16(__half2float(in_row[col]) * scales[row]);
}
`;

/** The same: what row_scale computes for one element, in JS with the same roundings. */
export function rowScaleReference(inBits: number, scale: number, halfToFloat: (bits: number) => number): number {
  return f32ToBf16Bits(Math.fround(halfToFloat(inBits) * scale));
}

/** A template, reached through lowered names: out[i] = T(i * step). */
export const iotaSource = `#include <cuda_fp16.h>
template <typename T> __global__ void iota(T *out, float step, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = T(float(i) * step);
}
`;
export const iotaNames = ["iota<float>", "iota<double>", "iota<__half>"] as const;

/** Reverses n floats through dynamic shared memory (n × 4 bytes of it). */
export const reverseSource = `extern "C" __global__ void reverse_shared(float *x, int n) {
  extern __shared__ float tile[];
  for (int i = threadIdx.x; i < n; i += blockDim.x) tile[i] = x[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = tile[n - 1 - i];
}
`;

/** The benchmark's kernels: empty ones for launch overhead, scale-and-add for bandwidth. */
export const benchSource = `extern "C" __global__ void empty() {}
extern "C" __global__ void empty_args(float *x, float a, unsigned int n) {}
extern "C" __global__ void scale_add(const float *x, float *y, float a, unsigned long long n) {
  unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
`;

/** Elementwise operations the GPU tests run on pitched views. */
export const elementwiseOps = {
  toHalf: { expression: "out = __float2half_rn(x)", params: { x: "f32[]", out: "f16[]" }, reference: f32ToF16Bits },
  toBfloat: { expression: "out = __float2bfloat16_rn(x)", params: { x: "f32[]", out: "bf16[]" }, reference: f32ToBf16Bits },
  halfToFloat: { expression: "out = __half2float(x)", params: { x: "f16[]", out: "f32[]" } },
  scaleAddHalf: { expression: "y = __float2half(a * __half2float(x) + __half2float(y))", params: { x: "f16[]", y: "f16[]", a: "f32" } },
  scaleAddBfloat: { expression: "y = __float2bfloat16(a * __bfloat162float(x) + __bfloat162float(y))", params: { x: "bf16[]", y: "bf16[]", a: "f32" } },
  maskedFill: { expression: "if (mask) x = value", params: { x: "bf16[]", mask: "u8[]", value: "bf16" } },
} as const;
