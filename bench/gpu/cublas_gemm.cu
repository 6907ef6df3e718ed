// The cuBLAS baseline for bench/gpu.sh: C = A * B^T in bf16 with f32
// accumulation (cublasGemmEx, CUBLAS_COMPUTE_32F), the product a Tessera
// bf16 linear layer computes, timed with CUDA events: the median of 20
// products after 5 warm-ups. Prints "cublas bf16 MxNxK: T ms, F TFLOP/s".
// Usage: cublas_gemm [M N K]   (default 4096 4096 4096)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x)                                                               \
  do {                                                                         \
    auto status = (x);                                                         \
    if (status != 0) {                                                         \
      std::fprintf(stderr, "%s:%d: %s failed (%d)\n", __FILE__, __LINE__, #x, \
                   int(status));                                               \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

int main(int argc, char **argv) {
  int m = 4096, n = 4096, k = 4096;
  if (argc == 4) {
    m = std::atoi(argv[1]);
    n = std::atoi(argv[2]);
    k = std::atoi(argv[3]);
  }
  std::vector<__nv_bfloat16> host(size_t(std::max({m, n})) * k);
  unsigned state = 1;
  for (auto &v : host) {
    state = state * 1664525u + 1013904223u;
    v = __float2bfloat16(float(state >> 8) / float(1 << 24) - 0.5f);
  }
  __nv_bfloat16 *a, *b;
  float *c;
  CHECK(cudaMalloc(&a, size_t(m) * k * sizeof(*a)));
  CHECK(cudaMalloc(&b, size_t(n) * k * sizeof(*b)));
  CHECK(cudaMalloc(&c, size_t(m) * n * sizeof(*c)));
  CHECK(cudaMemcpy(a, host.data(), size_t(m) * k * sizeof(*a), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(b, host.data(), size_t(n) * k * sizeof(*b), cudaMemcpyHostToDevice));
  cublasHandle_t handle;
  CHECK(cublasCreate(&handle));
  const float one = 1, zero = 0;
  // Row-major C[m, n] = A[m, k] * B[n, k]^T is column-major
  // C^T[n, m] = B[n, k] * A^T: op(B) = T on the [k, n] column-major view.
  auto product = [&] {
    CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, b,
                       CUDA_R_16BF, k, a, CUDA_R_16BF, k, &zero, c, CUDA_R_32F,
                       n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  };
  for (int i = 0; i < 5; ++i)
    product();
  cudaEvent_t start, stop;
  CHECK(cudaEventCreate(&start));
  CHECK(cudaEventCreate(&stop));
  std::vector<float> ms;
  for (int i = 0; i < 20; ++i) {
    CHECK(cudaEventRecord(start));
    product();
    CHECK(cudaEventRecord(stop));
    CHECK(cudaEventSynchronize(stop));
    float t = 0;
    CHECK(cudaEventElapsedTime(&t, start, stop));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  double median = ms[ms.size() / 2];
  std::printf("cublas bf16 %dx%dx%d: %.4f ms, %.1f TFLOP/s\n", m, n, k, median,
              2.0 * m * n * k / (median * 1e-3) / 1e12);
  return 0;
}
