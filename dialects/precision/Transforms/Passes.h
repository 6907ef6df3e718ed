//===- Passes.h - Transformations of the precision dialect ------*- C++ -*-===//

#ifndef TESSERA_DIALECTS_PRECISION_TRANSFORMS_PASSES_H
#define TESSERA_DIALECTS_PRECISION_TRANSFORMS_PASSES_H

#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

namespace tessera::precision {

#define GEN_PASS_DECL
#include "dialects/precision/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialects/precision/Transforms/Passes.h.inc"

} // namespace tessera::precision

#endif // TESSERA_DIALECTS_PRECISION_TRANSFORMS_PASSES_H
