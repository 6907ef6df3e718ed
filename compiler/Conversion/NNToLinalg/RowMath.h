//===- RowMath.h - Arithmetic of per-row loop bodies -------------*- C++ -*-===//
//
// The builders shared by the loops that give each row of a tensor to one
// iteration (flash attention, row kernels): reads of rows and chunks as
// vectors, dot products, the online-softmax step, and scf.for loops that
// carry values.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_CONVERSION_NNTOLINALG_ROWMATH_H
#define TESSERA_CONVERSION_NNTOLINALG_ROWMATH_H

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <limits>

namespace tessera {

/// Emits the arithmetic of one loop body at the builder's insertion point.
/// Values are f32 scalars or 1-D f32 vectors.
struct RowMath {
  mlir::OpBuilder &b;
  mlir::Location loc;
  /// Whether f16-typed inputs hold bf16 bits (a row kernel's input given
  /// as the twin of bf16-rounded values).
  bool halvesAreBF16 = false;

  mlir::Type f32() { return b.getF32Type(); }
  mlir::Value index(int64_t v) {
    return mlir::arith::ConstantIndexOp::create(b, loc, v);
  }
  mlir::Value cst(double v) {
    return mlir::arith::ConstantOp::create(b, loc, b.getF32FloatAttr(float(v)));
  }
  /// `width` elements of tensor `t` from `indices` along its last dimension.
  /// (f16-typed inputs are widened to f32.)
  mlir::Value read(mlir::Value t, mlir::ValueRange indices, int64_t width) {
    mlir::Type element = llvm::cast<mlir::ShapedType>(t.getType()).getElementType();
    if (!element.isF16()) {
      auto vt = mlir::VectorType::get({width}, f32());
      return mlir::vector::TransferReadOp::create(
          b, loc, vt, t, indices, cst(0.0), llvm::ArrayRef<bool>{true});
    }
    mlir::Value zero = mlir::arith::ConstantOp::create(
        b, loc, b.getF16FloatAttr(0.0));
    mlir::Value x = mlir::vector::TransferReadOp::create(
        b, loc, mlir::VectorType::get({width}, element), t, indices, zero,
        llvm::ArrayRef<bool>{true});
    return widen(x);
  }
  /// An f16-typed scalar or vector as f32 (through bf16 when the halves
  /// are bf16 bits); anything else as it is.
  mlir::Value widen(mlir::Value x) {
    auto like = [&](mlir::Type element) -> mlir::Type {
      if (auto v = llvm::dyn_cast<mlir::VectorType>(x.getType()))
        return v.clone(element);
      return element;
    };
    if (!mlir::getElementTypeOrSelf(x.getType()).isF16())
      return x;
    if (halvesAreBF16)
      x = mlir::arith::BitcastOp::create(b, loc, like(b.getBF16Type()), x);
    return mlir::arith::ExtFOp::create(b, loc, like(f32()), x);
  }
  /// t[n, i, :] of a rank-3 tensor, as a vector.
  mlir::Value row(mlir::Value t, mlir::Value n, mlir::Value i) {
    auto tt = llvm::cast<mlir::RankedTensorType>(t.getType());
    return read(t, {n, i, index(0)}, tt.getDimSize(2));
  }
  /// t[n, i] of a rank-2 tensor.
  mlir::Value at(mlir::Value t, mlir::Value n, mlir::Value i) {
    return mlir::tensor::ExtractOp::create(b, loc, t, mlir::ValueRange{n, i});
  }
  mlir::Value splat(mlir::Value s, mlir::Value like) {
    return mlir::vector::BroadcastOp::create(b, loc, like.getType(), s);
  }
  mlir::Value sum(mlir::Value x) {
    return mlir::vector::ReductionOp::create(
        b, loc, mlir::vector::CombiningKind::ADD, x,
        mlir::arith::FastMathFlags::reassoc);
  }
  mlir::Value max(mlir::Value x) {
    return mlir::vector::ReductionOp::create(
        b, loc, mlir::vector::CombiningKind::MAXIMUMF, x);
  }
  mlir::Value dot(mlir::Value x, mlir::Value y) { return sum(mul(x, y)); }
  /// acc + s * x for a scalar s.
  mlir::Value axpy(mlir::Value s, mlir::Value x, mlir::Value acc) {
    return mlir::vector::FMAOp::create(b, loc, splat(s, x), x, acc);
  }
  mlir::Value add(mlir::Value x, mlir::Value y) {
    return mlir::arith::AddFOp::create(b, loc, x, y);
  }
  mlir::Value mul(mlir::Value x, mlir::Value y) {
    return mlir::arith::MulFOp::create(b, loc, x, y);
  }
  mlir::Value sub(mlir::Value x, mlir::Value y) {
    return mlir::arith::SubFOp::create(b, loc, x, y);
  }
  mlir::Value div(mlir::Value x, mlir::Value y) {
    return mlir::arith::DivFOp::create(b, loc, x, y);
  }
  mlir::Value exp(mlir::Value x) { return mlir::math::ExpOp::create(b, loc, x); }
  /// One step of the online softmax over scores s: from the running max
  /// and sum, the new max, the factor c = exp(max - max') for what was
  /// accumulated so far, p = exp(s - max') and the new sum.
  struct Step {
    mlir::Value max, c, p, sum;
  };
  Step onlineSoftmax(mlir::Value max, mlir::Value sum, mlir::Value s) {
    mlir::Value mx = mlir::arith::MaximumFOp::create(b, loc, max, s);
    mlir::Value c = exp(sub(max, mx)), p = exp(sub(s, mx));
    return {mx, c, p, mlir::math::FmaOp::create(b, loc, sum, c, p)};
  }
  /// log(sum) + max: the log-sum-exp from an online softmax's state.
  mlir::Value logSumExp(mlir::Value max, mlir::Value sum) {
    return mlir::arith::AddFOp::create(b, loc, max,
                                       mlir::math::LogOp::create(b, loc, sum));
  }
  /// The initial running max and sum.
  llvm::SmallVector<mlir::Value> softmaxInit() {
    return {cst(-std::numeric_limits<double>::infinity()), cst(0.0)};
  }
  /// One past the last key query row i sees.
  mlir::Value keysEnd(mlir::Value i, bool causal, int64_t keys) {
    return causal ? mlir::arith::AddIOp::create(b, loc, i, index(1)).getResult()
                  : index(keys);
  }
  mlir::Value full(int64_t n, double v) {
    auto vt = mlir::VectorType::get({n}, f32());
    return mlir::arith::ConstantOp::create(
        b, loc, mlir::DenseElementsAttr::get(vt, float(v)));
  }
  mlir::Value zeros(int64_t n) { return full(n, 0.0); }

  /// scf.for over [lo, hi) in steps of `step` carrying `init`; `body`
  /// returns the next values.
  mlir::ValueRange
  loop(mlir::Value lo, mlir::Value hi, mlir::ValueRange init,
       llvm::function_ref<llvm::SmallVector<mlir::Value>(mlir::Value,
                                                         mlir::ValueRange)>
           body,
       int64_t step = 1) {
    auto forOp = mlir::scf::ForOp::create(
        b, loc, lo, hi, index(step), init,
        [&](mlir::OpBuilder &nb, mlir::Location, mlir::Value iv,
            mlir::ValueRange args) {
          mlir::OpBuilder::InsertionGuard guard(b);
          b.setInsertionPointToStart(nb.getInsertionBlock());
          mlir::scf::YieldOp::create(b, loc, body(iv, args));
        });
    return forOp.getResults();
  }
};

} // namespace tessera

#endif // TESSERA_CONVERSION_NNTOLINALG_ROWMATH_H
