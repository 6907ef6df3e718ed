//===- MergeGPUModules.cpp - One gpu.module for all kernels ---------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Path.h"


using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_MERGEGPUMODULES
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// "_STEM_LINE" for the .tsr line a kernel was made from (its location):
/// "_nn_17" for stdlib/nn.tsr:17, so that a kernel profile or an error
/// names the source of each kernel. "" without a .tsr location.
std::string sourceTag(Location loc) {
  FileLineColLoc file;
  loc->walk([&](Location l) {
    auto f = dyn_cast<FileLineColLoc>(l);
    if (f && f.getFilename().getValue().ends_with(".tsr")) {
      file = f;
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  if (!file)
    return "";
  std::string tag = "_" + llvm::sys::path::stem(file.getFilename()).str() +
                    "_" + std::to_string(file.getLine());
  for (char &c : tag)
    if (!llvm::isAlnum(c))
      c = '_';
  return tag;
}

struct MergeGPUModulesPass
    : impl::MergeGPUModulesBase<MergeGPUModulesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Shared-memory buffers are byte arrays (promoted tiles are views of
    // them); cp.async and ldmatrix need 16-byte aligned addresses.
    module.walk([](gpu::GPUFuncOp f) {
      for (unsigned i = 0, e = f.getNumWorkgroupAttributions(); i < e; ++i)
        f.setWorkgroupAttributionAttr(
            i, LLVM::LLVMDialect::getAlignAttrName(),
            IntegerAttr::get(IntegerType::get(f.getContext(), 64), 16));
      // Tensor-core kernels keep their fragments in registers. Left to
      // itself, ptxas may cap a 128-thread kernel at 128 registers (for 4
      // blocks per SM) and spill: `.minnctapersm 1` lets it use up to 255.
      bool tensorCores =
          f.walk([](Operation *op) {
             StringRef name = op->getName().getStringRef();
             bool mma = name.ends_with("mma.sync") || name.ends_with("mma_async");
             return mma ? WalkResult::interrupt() : WalkResult::advance();
           }).wasInterrupted();
      if (tensorCores)
        f->setAttr(NVVM::NVVMDialect::getMinctasmAttrName(),
                   IntegerAttr::get(IntegerType::get(f.getContext(), 32), 1));
    });
    SmallVector<gpu::GPUModuleOp> modules(module.getOps<gpu::GPUModuleOp>());
    if (modules.empty())
      return;
    // Outlined kernels are named after their host function, so two
    // modules may hold the same name; module names are unique, so each
    // kernel takes "MODULE" or "MODULE_KERNEL" as its new name, followed
    // by the source line it came from ("forward_kernel_3_nn_17").
    gpu::GPUModuleOp target = modules.front();
    llvm::DenseMap<std::pair<StringAttr, StringAttr>, StringAttr> renamed;
    MLIRContext *ctx = module.getContext();
    for (gpu::GPUModuleOp m : modules) {
      auto funcs = llvm::to_vector(m.getOps<gpu::GPUFuncOp>());
      for (gpu::GPUFuncOp f : funcs) {
        StringAttr old = SymbolTable::getSymbolName(f);
        std::string base = funcs.size() == 1
                               ? m.getSymName().str()
                               : (m.getSymName() + "_" + old.getValue()).str();
        StringAttr fresh = StringAttr::get(ctx, base + sourceTag(f.getLoc()));
        renamed[{m.getSymNameAttr(), old}] = fresh;
        SymbolTable::setSymbolName(f, fresh);
      }
    }
    // Outlining copied the host globals each kernel uses into its module:
    // one copy of each is kept.
    SymbolTable targetSymbols(target);
    for (gpu::GPUModuleOp other : llvm::drop_begin(modules))
      for (Operation &op :
           llvm::make_early_inc_range(other.getBody()->getOperations())) {
        auto global =
            isa<gpu::GPUFuncOp>(op)
                ? StringAttr()
                : op.getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName());
        if (global && targetSymbols.lookup(global)) {
          op.erase();
          continue;
        }
        op.moveBefore(target.getBody(), target.getBody()->end());
        if (global)
          targetSymbols.insert(&op);
      }
    StringAttr name = target.getSymNameAttr();
    module.walk([&](gpu::LaunchFuncOp launch) {
      StringAttr fresh =
          renamed.lookup({launch.getKernelModuleName(), launch.getKernelName()});
      launch.setKernelAttr(
          SymbolRefAttr::get(name, {FlatSymbolRefAttr::get(fresh)}));
    });
    for (gpu::GPUModuleOp other : llvm::drop_begin(modules))
      other.erase();
  }
};
} // namespace
} // namespace tessera
