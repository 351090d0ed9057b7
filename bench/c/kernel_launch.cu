/* The C anchor of bench/kernels.bench.ts: the same compiled kernels (the CUBIN or PTX that gpuffi
 * compiled with NVRTC, read from a file, so both sides run the same machine code) launched with
 * cuLaunchKernel from C, measured the way the TypeScript side measures them:
 *  - launch overhead: host ns per cuLaunchKernel of `empty` (no parameters) and `empty_args`
 *    (float *, float, unsigned int) with grid 1 and block 1 on a non-blocking stream, over bursts
 *    of CALLS launches with the stream drained between bursts (the median burst), so the launch
 *    queue never fills and the host cost is what is timed;
 *  - bandwidth: scale_add (y = a·x + y) over N floats, CUDA events around 10 launches, best of 5,
 *    as GB/s of the 3·4·N bytes each launch moves.
 *   nvcc -O2 -o .cache/bench/kernel_launch bench/c/kernel_launch.cu -lcuda
 *   .cache/bench/kernel_launch IMAGE N BURSTS CALLS     (the benchmark passes all four; N = 0: launches only)
 * Prints one JSON line. */
#include <cuda.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

#define CHECK_RT(call) do { cudaError_t e = (call); if (e != cudaSuccess) { fprintf(stderr, "%s: %s\n", #call, cudaGetErrorString(e)); exit(1); } } while (0)
#define CHECK_CU(call) do { CUresult e = (call); if (e != CUDA_SUCCESS) { const char *s; cuGetErrorString(e, &s); fprintf(stderr, "%s: %s\n", #call, s); exit(1); } } while (0)

static int compare(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median host ns per launch over `bursts` bursts of `calls` launches, the stream drained between bursts. */
static double launch_ns(CUfunction f, void **params, CUstream stream, int bursts, int calls) {
  double *times = (double *)malloc(sizeof(double) * bursts);
  for (int i = 0; i < 1000; i++) CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, stream, params, NULL));
  CHECK_CU(cuStreamSynchronize(stream));
  for (int b = 0; b < bursts; b++) {
    double start = now_ns();
    for (int i = 0; i < calls; i++) CHECK_CU(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, stream, params, NULL));
    times[b] = (now_ns() - start) / calls;
    CHECK_CU(cuStreamSynchronize(stream));
  }
  qsort(times, bursts, sizeof(double), compare);
  double median = times[bursts / 2];
  free(times);
  return median;
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: kernel_launch IMAGE N BURSTS CALLS\n"); return 2; }
  unsigned long long n = strtoull(argv[2], NULL, 10);
  int bursts = atoi(argv[3]), calls = atoi(argv[4]);
  FILE *file = fopen(argv[1], "rb");
  if (!file) { perror(argv[1]); return 1; }
  fseek(file, 0, SEEK_END);
  long size = ftell(file);
  fseek(file, 0, SEEK_SET);
  char *image = (char *)calloc(size + 1, 1);
  if (fread(image, 1, size, file) != (size_t)size) { perror("fread"); return 1; }
  fclose(file);

  /* The runtime's primary context, as gpuffi uses it. */
  CHECK_RT(cudaSetDevice(0));
  CHECK_RT(cudaFree(0));
  CUmodule module;
  CUfunction empty, empty_args, scale_add;
  CHECK_CU(cuModuleLoadData(&module, image));
  CHECK_CU(cuModuleGetFunction(&empty, module, "empty"));
  CHECK_CU(cuModuleGetFunction(&empty_args, module, "empty_args"));
  CHECK_CU(cuModuleGetFunction(&scale_add, module, "scale_add"));
  cudaStream_t stream;
  CHECK_RT(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  float *x, *y;
  size_t bytes = (n > 0 ? n : 1) * sizeof(float);
  CHECK_RT(cudaMalloc((void **)&x, bytes));
  CHECK_RT(cudaMalloc((void **)&y, bytes));
  CHECK_RT(cudaMemset(x, 0, bytes));
  CHECK_RT(cudaMemset(y, 0, bytes));

  float a = 2.0f;
  unsigned int small = 1;
  void *args3[] = {&x, &a, &small};
  double empty_ns = launch_ns(empty, NULL, (CUstream)stream, bursts, calls);
  double args_ns = launch_ns(empty_args, args3, (CUstream)stream, bursts, calls);

  if (n == 0) {
    printf("{\"emptyNs\": %.1f, \"emptyArgsNs\": %.1f, \"scaleAddGBps\": null, \"bursts\": %d, \"calls\": %d}\n", empty_ns, args_ns, bursts, calls);
    return 0;
  }
  void *args4[] = {&x, &y, &a, &n};
  unsigned int grid = (unsigned int)((n + 255) / 256);
  cudaEvent_t start, end;
  CHECK_RT(cudaEventCreate(&start));
  CHECK_RT(cudaEventCreate(&end));
  for (int i = 0; i < 3; i++) CHECK_CU(cuLaunchKernel(scale_add, grid, 1, 1, 256, 1, 1, 0, (CUstream)stream, args4, NULL));
  float best = 1e30f;
  for (int r = 0; r < 5; r++) {
    CHECK_RT(cudaEventRecord(start, stream));
    for (int i = 0; i < 10; i++) CHECK_CU(cuLaunchKernel(scale_add, grid, 1, 1, 256, 1, 1, 0, (CUstream)stream, args4, NULL));
    CHECK_RT(cudaEventRecord(end, stream));
    CHECK_RT(cudaEventSynchronize(end));
    float ms;
    CHECK_RT(cudaEventElapsedTime(&ms, start, end));
    if (ms < best) best = ms;
  }
  double gbps = 3.0 * 4.0 * (double)n * 10 / (best * 1e6);
  printf("{\"emptyNs\": %.1f, \"emptyArgsNs\": %.1f, \"scaleAddGBps\": %.1f, \"n\": %llu, \"bursts\": %d, \"calls\": %d}\n", empty_ns, args_ns, gbps, n, bursts, calls);
  return 0;
}
