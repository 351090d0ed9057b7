// The C anchor of bench/gemm.bench.ts's issue-time table: host time to enqueue one n×n GEMM
// through cublasGemmEx, through cublasLtMatmul with an algorithm chosen once, and as a launch of
// a CUDA graph that captured that cublasLtMatmul, measured the way the benchmark measures gpuffi
// (bursts of `calls` calls, the stream drained between bursts, the median over `bursts`; the
// three calls' bursts take turns so that all see the same machine). The cuBLASLt calls are the
// ones a gpuffi PreparedGemm makes: the handle's 32 MiB workspace as the preference's maximum,
// operands assumed 16-byte aligned, D = C; the graph is captured and instantiated as
// CudaGraph.capture does it (cudaStreamCaptureModeGlobal, cudaGraphInstantiateWithFlags, flags 0).
//   nvcc -O2 -std=c++20 -o .cache/bench/gemm_issue bench/c/gemm_issue.cu -lcublas -lcublasLt
//   .cache/bench/gemm_issue [n calls bursts]      (default 64 100 51)
// Prints one JSON object: {"n", "calls", "bursts", "cublas", "modes": [{"mode", "gemmExUs", "ltUs", "graphUs"}]}.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

static void fail(const char* call, int status) {
  fprintf(stderr, "gemm_issue: %s failed with status %d\n", call, status);
  exit(1);
}
#define CHECK(call) \
  do { int status_ = (int)(call); if (status_ != 0) fail(#call, status_); } while (0)

struct Mode {
  const char* name;
  cudaDataType type;
  cublasComputeType_t compute;
};

// Median host µs per call of each of `issue`, over `bursts` bursts of each, taking turns.
static std::vector<double> issueTimes(cudaStream_t stream, int calls, int bursts, const std::vector<std::function<void()>>& issue) {
  std::vector<std::vector<double>> times(issue.size());
  for (const auto& call : issue) call();
  CHECK(cudaStreamSynchronize(stream));
  for (int r = 0; r < bursts; r++) {
    for (size_t which = 0; which < issue.size(); which++) {
      const auto& call = issue[which];
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < calls; i++) call();
      auto t1 = std::chrono::steady_clock::now();
      times[which].push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / calls);
      CHECK(cudaStreamSynchronize(stream));
    }
  }
  std::vector<double> medians;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    medians.push_back(t[t.size() / 2]);
  }
  return medians;
}

int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 64;
  const int calls = argc > 2 ? atoi(argv[2]) : 100;
  const int bursts = argc > 3 ? atoi(argv[3]) : 51;
  const size_t workspaceBytes = 32u << 20;
  const Mode modes[] = {
      {"fp32", CUDA_R_32F, CUBLAS_COMPUTE_32F},
      {"tf32", CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32},
      {"fp16", CUDA_R_16F, CUBLAS_COMPUTE_32F},
      {"bf16", CUDA_R_16BF, CUBLAS_COMPUTE_32F},
  };

  cudaStream_t stream;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  void *a, *b, *c, *workspace;
  const size_t bytes = (size_t)n * n * 4;
  CHECK(cudaMalloc(&a, bytes));
  CHECK(cudaMalloc(&b, bytes));
  CHECK(cudaMalloc(&c, bytes));
  CHECK(cudaMalloc(&workspace, workspaceBytes));
  CHECK(cudaMemset(a, 0, bytes));
  CHECK(cudaMemset(b, 0, bytes));
  cublasHandle_t handle;
  CHECK(cublasCreate(&handle));
  CHECK(cublasSetStream(handle, stream));
  CHECK(cublasSetWorkspace(handle, workspace, workspaceBytes));
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt));
  int version[3];
  for (int i = 0; i < 3; i++) CHECK(cublasGetProperty((libraryPropertyType)i, &version[i]));
  const float alpha = 1, beta = 0;

  printf("{\"n\":%d,\"calls\":%d,\"bursts\":%d,\"cublas\":\"%d.%d.%d\",\"modes\":[", n, calls, bursts, version[0], version[1], version[2]);
  for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    const Mode& mode = modes[m];
    cublasLtMatmulDesc_t desc;
    CHECK(cublasLtMatmulDescCreate(&desc, mode.compute, CUDA_R_32F));
    cublasLtMatrixLayout_t layout;
    CHECK(cublasLtMatrixLayoutCreate(&layout, mode.type, n, n, n));
    cublasLtMatmulPreference_t preference;
    CHECK(cublasLtMatmulPreferenceCreate(&preference));
    const uint64_t maxWorkspace = workspaceBytes;
    CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &maxWorkspace, sizeof maxWorkspace));
    const uint32_t alignment = 16;
    for (auto attribute : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &alignment, sizeof alignment));
    }
    cublasLtMatmulHeuristicResult_t result;
    int found = 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, layout, layout, layout, layout, preference, 1, &result, &found));
    if (found < 1) fail("cublasLtMatmulAlgoGetHeuristic (no algorithm)", 15);

    auto gemmEx = [&] {
      CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, mode.type, n, b, mode.type, n, &beta, c, mode.type, n, mode.compute, CUBLAS_GEMM_DEFAULT));
    };
    auto ltMatmul = [&] {
      CHECK(cublasLtMatmul(lt, desc, &alpha, a, layout, b, layout, &beta, c, layout, c, layout, &result.algo, workspace, workspaceBytes, stream));
    };
    // The same cublasLtMatmul captured once; each graph launch replays it.
    cudaGraph_t graph;
    cudaGraphExec_t graphExec;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
    ltMatmul();
    CHECK(cudaStreamEndCapture(stream, &graph));
    CHECK(cudaGraphInstantiateWithFlags(&graphExec, graph, 0));
    CHECK(cudaGraphDestroy(graph));
    auto graphLaunch = [&] { CHECK(cudaGraphLaunch(graphExec, stream)); };
    std::vector<double> us = issueTimes(stream, calls, bursts, {gemmEx, ltMatmul, graphLaunch});
    printf("%s{\"mode\":\"%s\",\"gemmExUs\":%.3f,\"ltUs\":%.3f,\"graphUs\":%.3f}", m ? "," : "", mode.name, us[0], us[1], us[2]);
    CHECK(cudaGraphExecDestroy(graphExec));
    CHECK(cublasLtMatmulPreferenceDestroy(preference));
    CHECK(cublasLtMatrixLayoutDestroy(layout));
    CHECK(cublasLtMatmulDescDestroy(desc));
  }
  printf("]}\n");
  CHECK(cublasLtDestroy(lt));
  CHECK(cublasDestroy(handle));
  return 0;
}
