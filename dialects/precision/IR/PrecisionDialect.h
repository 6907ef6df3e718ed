//===- PrecisionDialect.h - The precision dialect ---------------*- C++ -*-===//

#ifndef TESSERA_DIALECTS_PRECISION_IR_PRECISIONDIALECT_H
#define TESSERA_DIALECTS_PRECISION_IR_PRECISIONDIALECT_H

#include "dialects/nn/IR/NNDialect.h"

#include "dialects/precision/IR/PrecisionDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/precision/IR/PrecisionOps.h.inc"

#endif // TESSERA_DIALECTS_PRECISION_IR_PRECISIONDIALECT_H
