//===- Kernels.cpp - CPU kernels called by compiled Tessera code ----------===//
//
// The CPU lowering turns f32 `nn.linear`/`nn.matmul` contractions into calls
// of these functions (through MLIR's C interface for memrefs) when BLAS is
// selected, because a tuned BLAS is 10-30x faster than the scalar loops the
// plain lowering produces (bench/RESULTS.md). Arguments are rank-2 strided
// memref descriptors; the innermost stride must be 1.
//
//===----------------------------------------------------------------------===//

#include <cblas.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace {

/// MLIR's descriptor of a rank-2 memref (StridedMemRefType<float, 2>).
struct MemRef2D {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[2];
  int64_t strides[2];
  float *data() const { return aligned + offset; }
};

[[noreturn]] void fail(const char *what) {
  std::fprintf(stderr, "tessera runtime: %s\n", what);
  std::abort();
}

/// MLIR's descriptor of a rank-3 memref (StridedMemRefType<float, 3>).
struct MemRef3D {
  float *allocated;
  float *aligned;
  int64_t offset;
  int64_t sizes[3];
  int64_t strides[3];
  float *data() const { return aligned + offset; }
};

/// One row-major GEMM: out[m, n] = a[m, k] * op(b), with op transposing b
/// when `transB`; leading dimensions are the row strides.
void gemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
          const float *b, int64_t ldb, bool transB, float *out, int64_t ldo) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), 0.0f,
              out, int(ldo));
}

/// Checks shapes and layouts of `out = a * op(b)` over a leading batch
/// dimension (size 1 for rank-2 operands) and runs one GEMM per batch.
template <typename M>
void batchedGemm(const M &a, const M &b, const M &out, bool transB,
                 const char *name) {
  constexpr int r = sizeof(a.sizes) / sizeof(a.sizes[0]);
  if (a.strides[r - 1] != 1 || b.strides[r - 1] != 1 ||
      out.strides[r - 1] != 1)
    fail(name);
  int64_t batch = r == 3 ? a.sizes[0] : 1;
  int64_t m = a.sizes[r - 2], k = a.sizes[r - 1];
  int64_t n = transB ? b.sizes[r - 2] : b.sizes[r - 1];
  if ((r == 3 && (b.sizes[0] != batch || out.sizes[0] != batch)) ||
      (transB ? b.sizes[r - 1] : b.sizes[r - 2]) != k ||
      out.sizes[r - 2] != m || out.sizes[r - 1] != n)
    fail(name);
  for (int64_t i = 0; i < batch; ++i) {
    int64_t ai = r == 3 ? i * a.strides[0] : 0;
    int64_t bi = r == 3 ? i * b.strides[0] : 0;
    int64_t oi = r == 3 ? i * out.strides[0] : 0;
    gemm(m, n, k, a.data() + ai, a.strides[r - 2], b.data() + bi,
         b.strides[r - 2], transB, out.data() + oi, out.strides[r - 2]);
  }
}

} // namespace

extern "C" {

/// out[M, N] = x[M, K] * w[N, K]^T   (nn.linear without bias)
void _mlir_ciface_tessera_linear_f32(MemRef2D *x, MemRef2D *w, MemRef2D *out) {
  batchedGemm(*x, *w, *out, /*transB=*/true,
              "linear: bad shapes or a non-row-major operand");
}

/// out[M, N] = a[M, K] * b[K, N]   (rank-2 nn.matmul)
void _mlir_ciface_tessera_matmul_f32(MemRef2D *a, MemRef2D *b, MemRef2D *out) {
  batchedGemm(*a, *b, *out, /*transB=*/false,
              "matmul: bad shapes or a non-row-major operand");
}

/// out[i] = a[i] * b[i]^T   (attention scores q k^T, per batch*head)
void _mlir_ciface_tessera_bmm_nt_f32(MemRef3D *a, MemRef3D *b, MemRef3D *out) {
  batchedGemm(*a, *b, *out, /*transB=*/true, "bmm_nt: bad shapes or layout");
}

/// out[i] = a[i] * b[i]   (attention probabilities times values)
void _mlir_ciface_tessera_bmm_f32(MemRef3D *a, MemRef3D *b, MemRef3D *out) {
  batchedGemm(*a, *b, *out, /*transB=*/false, "bmm: bad shapes or layout");
}

} // extern "C"
