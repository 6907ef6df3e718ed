//===- PrecisionOps.cpp - The precision dialect ---------------------------===//

#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace tessera::precision;

#include "dialects/precision/IR/PrecisionDialect.cpp.inc"

void PrecisionDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/precision/IR/PrecisionOps.cpp.inc"
      >();
}

LogicalResult RoundOp::verify() {
  if (getFormat() != "bf16" && getFormat() != "f16")
    return emitOpError("format must be \"bf16\" or \"f16\", got \"")
           << getFormat() << "\"";
  return success();
}

LogicalResult RoundOp::buildVJP(OpBuilder &b, ArrayRef<Value> grads,
                                SmallVectorImpl<Value> &out) {
  out.push_back(RoundOp::create(b, getLoc(), grads[0], getFormatAttr()));
  return success();
}

#define GET_OP_CLASSES
#include "dialects/precision/IR/PrecisionOps.cpp.inc"
