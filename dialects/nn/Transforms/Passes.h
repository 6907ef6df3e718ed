//===- Passes.h - Transformations of the nn dialect -------------*- C++ -*-===//

#ifndef TESSERA_DIALECTS_NN_TRANSFORMS_PASSES_H
#define TESSERA_DIALECTS_NN_TRANSFORMS_PASSES_H

#include "dialects/nn/IR/NNDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace tessera::nn {

#define GEN_PASS_DECL
#include "dialects/nn/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/nn/Transforms/Passes.h.inc"

} // namespace tessera::nn

#endif // TESSERA_DIALECTS_NN_TRANSFORMS_PASSES_H
