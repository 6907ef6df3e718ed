//===- Kernels.cpp - CPU kernels called by compiled Tessera code ----------===//
//
// The CPU lowering turns f32 `nn.linear`/`nn.matmul` contractions into calls
// of these functions (through MLIR's C interface for memrefs) when BLAS is
// selected, because a tuned BLAS is 10-30x faster than the scalar loops the
// plain lowering produces (bench/RESULTS.md). Arguments are rank-2 strided
// memref descriptors; the innermost stride must be 1.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_NO_BLAS
#include <cblas.h>
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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
#ifdef TESSERA_NO_BLAS
  // A runtime built where no BLAS was found (a GPU machine that only runs
  // GPU packages): correct, and as slow as the loop nests it replaces.
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += a[i * lda + p] * (transB ? b[j * ldb + p] : b[p * ldb + j]);
      out[i * ldo + j] = sum;
    }
#else
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb), 0.0f,
              out, int(ldo));
#endif
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

/// Copies `rank`-dimensional strided data element by element (the last
/// dimension contiguous runs are copied with memcpy).
void stridedCopy(int64_t elemSize, int64_t rank, const int64_t *sizes,
                 const char *src, const int64_t *srcStrides, char *dst,
                 const int64_t *dstStrides) {
  if (rank == 0) {
    std::memcpy(dst, src, size_t(elemSize));
    return;
  }
  if (rank == 1 && srcStrides[0] == 1 && dstStrides[0] == 1) {
    std::memcpy(dst, src, size_t(sizes[0] * elemSize));
    return;
  }
  for (int64_t i = 0; i < sizes[0]; ++i)
    stridedCopy(elemSize, rank - 1, sizes + 1,
                src + i * srcStrides[0] * elemSize, srcStrides + 1,
                dst + i * dstStrides[0] * elemSize, dstStrides + 1);
}

/// MLIR's unranked memref: a rank and a pointer to a ranked descriptor
/// {T *allocated, T *aligned, int64 offset, int64 sizes[rank],
/// int64 strides[rank]}.
struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
};

} // namespace

extern "C" {

/// The version of this library's C interface; a package's code is built
/// against one (runtime/package/Manifest.h).
int tessera_cpu_kernels_abi_version() { return 1; }

/// `memref.copy` between buffers that are not both contiguous: the CPU
/// lowering calls this by MLIR's name for it.
void memrefCopy(int64_t elemSize, UnrankedMemRef *src, UnrankedMemRef *dst) {
  if (src->rank != dst->rank)
    fail("memrefCopy: rank mismatch");
  auto *s = static_cast<int64_t *>(src->descriptor);
  auto *d = static_cast<int64_t *>(dst->descriptor);
  int64_t rank = src->rank;
  char *sp, *dp;
  std::memcpy(&sp, &s[1], sizeof(char *));
  std::memcpy(&dp, &d[1], sizeof(char *));
  for (int64_t i = 0; i < rank; ++i)
    if (s[3 + i] != d[3 + i])
      fail("memrefCopy: shape mismatch");
  for (int64_t i = 0; i < rank; ++i)
    if (s[3 + i] == 0)
      return;
  stridedCopy(elemSize, rank, s + 3, sp + s[2] * elemSize, s + 3 + rank,
              dp + d[2] * elemSize, d + 3 + rank);
}

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
