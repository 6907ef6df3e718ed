//===- OptimDialect.h - The optim dialect and its ops -----------*- C++ -*-===//

#ifndef TESSERA_DIALECTS_OPTIM_IR_OPTIMDIALECT_H
#define TESSERA_DIALECTS_OPTIM_IR_OPTIMDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/optim/IR/OptimDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/optim/IR/OptimOps.h.inc"

#endif // TESSERA_DIALECTS_OPTIM_IR_OPTIMDIALECT_H
