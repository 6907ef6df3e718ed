//===- MLIRGen.h - Checked Tessera programs to the nn dialect ---*- C++ -*-===//
//
// MLIRGen lets Sema evaluate an entry point once more and builds one `nn` op
// per tensor operation it reports (see EmitHooks), so typing and name
// resolution live in one place. Every op carries the .tsr location it came
// from; parameters become function arguments tagged with their paths.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_COMPILER_MLIRGEN_MLIRGEN_H
#define TESSERA_COMPILER_MLIRGEN_MLIRGEN_H

#include "lang/Sema.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace tessera {

/// Builds `func.func @forward(%x, %params...)` for the model of a checked
/// train block, with the data's batch as input, and with `withLoss`,
/// `func.func @loss(%x, %y, %params...) -> tensor<f32>` computing the train
/// block's loss on a batch. Returns null after reporting errors through
/// `diags`.
mlir::OwningOpRef<mlir::ModuleOp> genTrainForward(mlir::MLIRContext &ctx,
                                                  Sema &sema,
                                                  const CheckedTrain &train,
                                                  DiagnosticEngine &diags,
                                                  bool withLoss = false);

/// The settings of a checked train block and its data as JSON text, for
/// the package manifest's "train" section: every setting call as
/// {"name": ..., ARG: VALUE...}; data file paths made absolute (relative
/// paths are relative to the .tsr file that declares the data).
std::string trainSettingsJSON(const CheckedTrain &train,
                              llvm::SourceMgr &sourceMgr);

} // namespace tessera

#endif // TESSERA_COMPILER_MLIRGEN_MLIRGEN_H
