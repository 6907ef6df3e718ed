//===- tessera-opt.cpp - mlir-opt with Tessera's dialects and passes ------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/Pipelines/Pipelines.h"
#include "dialects/nn/IR/NNDialect.h"
#include "dialects/optim/IR/OptimDialect.h"
#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  registry.insert<tessera::nn::NNDialect, tessera::optim::OptimDialect,
                  tessera::precision::PrecisionDialect>();
  // Upstream dialects and passes, so lit tests can lower all the way to LLVM.
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR (then PTX).
  mlir::registerAllToLLVMIRTranslations(registry);
  tessera::registerTesseraPipelines();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "Tessera optimizer driver\n", registry));
}
