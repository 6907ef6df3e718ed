//===- Passes.h - Tessera conversion passes ---------------------*- C++ -*-===//

#ifndef TESSERA_COMPILER_CONVERSION_PASSES_H
#define TESSERA_COMPILER_CONVERSION_PASSES_H

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Transform/IR/TransformDialect.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace tessera {

#define GEN_PASS_DECL
#include "compiler/Conversion/Passes.h.inc"

/// The divisor of `n` closest to its square root (in ratio), between 32
/// and 65536; 0 when there is none. The number of partial sums a split
/// reduction of n terms uses (tessera-split-reductions, and sums over
/// leading dimensions in convert-nn-to-linalg).
int64_t divisorNearSqrt(int64_t n);

#define GEN_PASS_REGISTRATION
#include "compiler/Conversion/Passes.h.inc"

} // namespace tessera

#endif // TESSERA_COMPILER_CONVERSION_PASSES_H
