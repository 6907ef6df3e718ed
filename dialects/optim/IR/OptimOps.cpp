//===- OptimOps.cpp - Verifiers of the optim dialect ----------------------===//

#include "dialects/optim/IR/OptimDialect.h"

#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace tessera::optim;

#include "dialects/optim/IR/OptimDialect.cpp.inc"

void OptimDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/optim/IR/OptimOps.cpp.inc"
      >();
}

namespace {
/// Every flat buffer is 1-D with one size; `hyper` is 1-D with `hyperSize`
/// entries; results mirror the buffers.
LogicalResult verifyFlat(Operation *op, ValueRange buffers, Value hyper,
                         int64_t hyperSize, int64_t decayEnd) {
  auto first = cast<RankedTensorType>(buffers[0].getType());
  if (first.getRank() != 1)
    return op->emitOpError("expects flat (1-D) buffers, got ") << first;
  for (Value b : buffers)
    if (b.getType() != first)
      return op->emitOpError("expects buffers of one type, got ")
             << first << " and " << b.getType();
  for (Type t : op->getResultTypes())
    if (cast<RankedTensorType>(t).getRank() == 1 && t != first)
      return op->emitOpError("result type ") << t << " differs from " << first;
  if (hyper) {
    auto ht = cast<RankedTensorType>(hyper.getType());
    if (ht.getRank() != 1 || ht.getDimSize(0) != hyperSize)
      return op->emitOpError("expects ") << hyperSize
                                          << " hyper-parameters, got " << ht;
  }
  if (decayEnd < 0 || (!first.isDynamicDim(0) && decayEnd > first.getDimSize(0)))
    return op->emitOpError("decay_end ")
           << decayEnd << " is outside [0, " << first.getDimSize(0) << "]";
  return success();
}
} // namespace

LogicalResult ClipByGlobalNormOp::verify() {
  if (!(getMaxNorm().convertToDouble() > 0))
    return emitOpError("max_norm must be positive");
  if (cast<RankedTensorType>(getNorm().getType()).getRank() != 0)
    return emitOpError("the norm result must be a scalar tensor");
  return verifyFlat(*this, {getGrads()}, nullptr, 0, 0);
}

LogicalResult AdamWStepOp::verify() {
  return verifyFlat(*this, {getParams(), getGrads(), getExpAvg(), getExpAvgSq()},
                    getHyper(), 7, int64_t(getDecayEnd()));
}

LogicalResult SGDStepOp::verify() {
  return verifyFlat(*this, {getParams(), getGrads(), getMomentumBuffer()},
                    getHyper(), 3, int64_t(getDecayEnd()));
}

#define GET_OP_CLASSES
#include "dialects/optim/IR/OptimOps.cpp.inc"
