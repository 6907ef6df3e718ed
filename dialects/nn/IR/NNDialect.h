//===- NNDialect.h - The nn dialect and its ops -----------------*- C++ -*-===//

#ifndef TESSERA_DIALECTS_NN_IR_NNDIALECT_H
#define TESSERA_DIALECTS_NN_IR_NNDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/nn/IR/NNDialect.h.inc"
#include "dialects/nn/IR/NNInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/nn/IR/NNOps.h.inc"

#endif // TESSERA_DIALECTS_NN_IR_NNDIALECT_H
