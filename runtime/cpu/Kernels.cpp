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

/// out[i] = a[i] * op(b[i]) for every i of the leading (batch) dimension,
/// where op transposes when `transB`.
void batchedGemm(const MemRef3D &a, const MemRef3D &b, const MemRef3D &out,
                 bool transB, const char *name) {
  if (a.strides[2] != 1 || b.strides[2] != 1 || out.strides[2] != 1)
    fail(name);
  int64_t batch = a.sizes[0], m = a.sizes[1], k = a.sizes[2];
  int64_t n = transB ? b.sizes[1] : b.sizes[2];
  if (b.sizes[0] != batch || out.sizes[0] != batch ||
      (transB ? b.sizes[2] : b.sizes[1]) != k || out.sizes[1] != m ||
      out.sizes[2] != n)
    fail(name);
  for (int64_t i = 0; i < batch; ++i)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                int(m), int(n), int(k), 1.0f, a.data() + i * a.strides[0],
                int(a.strides[1]), b.data() + i * b.strides[0],
                int(b.strides[1]), 0.0f, out.data() + i * out.strides[0],
                int(out.strides[1]));
}

void checkRowMajor(const MemRef2D &m, const char *name) {
  if (m.strides[1] != 1)
    fail(name);
}

} // namespace

extern "C" {

/// out[M, N] = x[M, K] * w[N, K]^T   (nn.linear without bias)
void _mlir_ciface_tessera_linear_f32(MemRef2D *x, MemRef2D *w, MemRef2D *out) {
  checkRowMajor(*x, "linear: input is not row-major");
  checkRowMajor(*w, "linear: weight is not row-major");
  checkRowMajor(*out, "linear: output is not row-major");
  int64_t m = x->sizes[0], k = x->sizes[1], n = w->sizes[0];
  if (w->sizes[1] != k || out->sizes[0] != m || out->sizes[1] != n)
    fail("linear: shape mismatch");
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k),
              1.0f, x->data(), int(x->strides[0]), w->data(),
              int(w->strides[0]), 0.0f, out->data(), int(out->strides[0]));
}

/// out[M, N] = a[M, K] * b[K, N]   (rank-2 nn.matmul)
void _mlir_ciface_tessera_matmul_f32(MemRef2D *a, MemRef2D *b, MemRef2D *out) {
  checkRowMajor(*a, "matmul: lhs is not row-major");
  checkRowMajor(*b, "matmul: rhs is not row-major");
  checkRowMajor(*out, "matmul: output is not row-major");
  int64_t m = a->sizes[0], k = a->sizes[1], n = b->sizes[1];
  if (b->sizes[0] != k || out->sizes[0] != m || out->sizes[1] != n)
    fail("matmul: shape mismatch");
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n),
              int(k), 1.0f, a->data(), int(a->strides[0]), b->data(),
              int(b->strides[0]), 0.0f, out->data(), int(out->strides[0]));
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
