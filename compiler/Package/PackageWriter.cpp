//===- PackageWriter.cpp - nn modules to .tsrpkg packages -----------------===//

#include "compiler/Package/PackageWriter.h"

#include "compiler/Pipelines/Pipelines.h"
#include "dialects/nn/IR/NNDialect.h"
#include "runtime/package/Manifest.h"
#include "runtime/package/Package.h"
#include "runtime/support/File.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

#include <algorithm>
#include <sys/stat.h>

using namespace mlir;
namespace rt = tessera::rt;

namespace tessera {
namespace {

using ErrorFn = std::function<void(const std::string &)>;

std::optional<rt::DType> dtypeOf(Type t) {
  if (t.isF32()) return rt::DType::F32;
  if (t.isF64()) return rt::DType::F64;
  if (t.isF16()) return rt::DType::F16;
  if (t.isBF16()) return rt::DType::BF16;
  if (t.isInteger(64)) return rt::DType::I64;
  if (t.isInteger(32)) return rt::DType::I32;
  if (t.isInteger(16)) return rt::DType::I16;
  if (t.isInteger(8)) return rt::DType::I8;
  if (t.isInteger(1)) return rt::DType::Bool;
  return std::nullopt;
}

std::optional<rt::TensorSpec> specOf(Type type, std::string name) {
  auto t = dyn_cast<RankedTensorType>(type);
  if (!t || !t.hasStaticShape())
    return std::nullopt;
  std::optional<rt::DType> d = dtypeOf(t.getElementType());
  if (!d)
    return std::nullopt;
  rt::TensorSpec s;
  s.name = std::move(name);
  s.dtype = *d;
  s.shape.assign(t.getShape().begin(), t.getShape().end());
  return s;
}

std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

/// What the integer input `arg` indexes: the smallest bound over its uses
/// as embedding indices or cross-entropy targets (through reshapes and
/// transposes), and that use in words. Out-of-range values would read and
/// write out of bounds in compiled code, so `tessera run` checks them.
std::pair<int64_t, std::string> indexBound(Value arg) {
  std::pair<int64_t, std::string> best = {0, ""};
  auto consider = [&](Value sized, int64_t dim, std::string what) {
    auto t = dyn_cast<RankedTensorType>(sized.getType());
    if (!t || t.getRank() == 0)
      return;
    int64_t n = t.getDimSize(dim < 0 ? t.getRank() + dim : dim);
    if (ShapedType::isDynamic(n) || (best.first && best.first <= n))
      return;
    best = {n, what + " (" + std::to_string(n) + ")"};
  };
  SmallVector<Value> work = {arg};
  llvm::DenseSet<Value> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (OpOperand &use : v.getUses()) {
      Operation *op = use.getOwner();
      if (auto e = dyn_cast<nn::EmbeddingOp>(op)) {
        if (use.get() == e.getIndices())
          consider(e.getWeight(), 0, "rows of an embedding table");
      } else if (auto e = dyn_cast<nn::EmbeddingGradOp>(op)) {
        if (use.get() == e.getIndices())
          consider(e.getResult(), 0, "rows of an embedding table");
      } else if (auto c = dyn_cast<nn::CrossEntropyOp>(op)) {
        if (use.get() == c.getTargets())
          consider(c.getLogits(), -1, "classes of a cross-entropy");
      } else if (auto c = dyn_cast<nn::CrossEntropyGradOp>(op)) {
        if (use.get() == c.getTargets())
          consider(c.getLogits(), -1, "classes of a cross-entropy");
      } else if (isa<nn::ReshapeOp, nn::TransposeOp, tensor::CollapseShapeOp,
                     tensor::ExpandShapeOp, tensor::ReshapeOp, tensor::CastOp>(
                     op)) {
        work.append(op->result_begin(), op->result_end());
      }
    }
  }
  return best;
}

/// Reads the entry points' signatures off the `nn` module: arguments tagged
/// `tessera.input` are inputs, `tessera.param` parameters, results outputs.
bool collectSignatures(ModuleOp module, rt::Manifest &m, const ErrorFn &error) {
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (fn.isPrivate() || fn.isDeclaration())
      continue;
    rt::EntryPoint e;
    e.name = fn.getName().str();
    e.symbol = "tessera_entry_" + e.name;
    for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
      Type type = fn.getArgument(i).getType();
      auto input = fn.getArgAttrOfType<StringAttr>(i, "tessera.input");
      auto param = fn.getArgAttrOfType<StringAttr>(i, "tessera.param");
      std::string name = input ? input.str() : param ? param.str() : "";
      std::optional<rt::TensorSpec> spec = specOf(type, name);
      if (!spec || name.empty()) {
        error("entry point '" + e.name + "': argument " + std::to_string(i) +
              " (" + typeStr(type) + ") " +
              (name.empty() ? "has no tessera.input/tessera.param name"
                            : "needs a static shape and a numeric dtype"));
        return false;
      }
      if (input) {
        if (spec->dtype == rt::DType::I32 || spec->dtype == rt::DType::I64)
          std::tie(spec->indexBound, spec->indexes) =
              indexBound(fn.getArgument(i));
        e.inputs.push_back(*spec);
        continue;
      }
      e.parameters.push_back(name);
      if (m.findParameter(name))
        continue; // shared by several entry points
      rt::ParameterSpec p;
      static_cast<rt::TensorSpec &>(p) = *spec;
      auto init = fn.getArgAttrOfType<StringAttr>(i, "tessera.init");
      p.init = init ? init.str() : "zeros()";
      if (auto offset = fn.getArgAttrOfType<IntegerAttr>(i, "tessera.offset"))
        p.offset = offset.getInt();
      if (auto decay = fn.getArgAttrOfType<BoolAttr>(i, "tessera.decay"))
        p.decay = decay.getValue();
      m.parameters.push_back(p);
    }
    for (unsigned i = 0; i < fn.getNumResults(); ++i) {
      auto named = fn.getResultAttrOfType<StringAttr>(i, "tessera.output");
      std::string name = named ? named.str()
                         : fn.getNumResults() == 1 ? "output"
                                                   : "output" + std::to_string(i);
      std::optional<rt::TensorSpec> spec = specOf(fn.getResultTypes()[i], name);
      if (!spec) {
        error("entry point '" + e.name + "': result " + std::to_string(i) +
              " needs a static shape and a numeric dtype");
        return false;
      }
      e.outputs.push_back(*spec);
    }
    m.entryPoints.push_back(std::move(e));
  }
  if (m.entryPoints.empty()) {
    error("the module has no public function to compile");
    return false;
  }
  // Modules written by hand carry no flat layout: lay parameters out in
  // table order, all decayed.
  bool haveLayout = false;
  for (auto fn : module.getOps<func::FuncOp>())
    for (unsigned i = 0; i < fn.getNumArguments(); ++i)
      haveLayout |= bool(fn.getArgAttr(i, "tessera.offset"));
  if (!haveLayout) {
    int64_t offset = 0;
    for (rt::ParameterSpec &p : m.parameters) {
      p.offset = offset;
      offset += int64_t(*rt::elementCount(p.shape));
    }
  }
  return true;
}

std::unique_ptr<llvm::TargetMachine>
createHostTargetMachine(const std::string &cpuName, rt::Manifest &m,
                        const ErrorFn &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string err;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, err);
  if (!target) {
    error("no code generator for " + triple.str() + ": " + err);
    return nullptr;
  }
  std::string cpu = cpuName, features;
  if (cpuName != "native") {
    // LLVM warns on stderr for each unknown CPU and then aborts with
    // "64-bit code requested on a subtarget that doesn't support it".
    std::unique_ptr<llvm::MCSubtargetInfo> sti(
        target->createMCSubtargetInfo(triple, "", ""));
    if (sti && !sti->isCPUStringValid(cpuName)) {
      std::vector<std::string> names;
      for (const llvm::SubtargetSubTypeKV &d :
           sti->getAllProcessorDescriptions())
        names.push_back(d.Key);
      std::string hint;
      if (std::find(names.begin(), names.end(), "x86-64-v3") != names.end())
        hint = " (for example x86-64, x86-64-v3, skylake-avx512, znver4)";
      error("unknown --mcpu '" + cpuName + "' for " + triple.str() +
            "; choose native (the default: this machine's CPU) or one of " +
            "LLVM's " + std::to_string(names.size()) + " CPU names" + hint);
      return nullptr;
    }
  }
  if (cpuName == "native") {
    cpu = llvm::sys::getHostCPUName().str();
    std::vector<std::string> parts;
    for (const auto &f : llvm::sys::getHostCPUFeatures())
      parts.push_back((f.second ? "+" : "-") + f.first().str());
    features = llvm::join(parts, ",");
  }
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, cpu, features, llvm::TargetOptions(), llvm::Reloc::PIC_,
      std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!tm) {
    error("cannot create a code generator for CPU '" + cpu + "'");
    return nullptr;
  }
  m.targetTriple = triple.str();
  m.targetCpu = cpu;
  return tm;
}

/// `void tessera_entry_NAME(void **args)` calling `_mlir_ciface_NAME` with
/// args[0..n), and the ABI marker the runtime checks.
bool addEntryWrappers(llvm::Module &module, const rt::Manifest &m,
                      const ErrorFn &error) {
  llvm::LLVMContext &ctx = module.getContext();
  auto *ptrTy = llvm::PointerType::get(ctx, 0);
  for (const rt::EntryPoint &e : m.entryPoints) {
    llvm::Function *callee = module.getFunction("_mlir_ciface_" + e.name);
    size_t n = e.inputs.size() + e.parameters.size() + e.outputs.size();
    if (!callee || callee->arg_size() != n) {
      error("internal error: entry point '" + e.name +
            "' has no C interface with " + std::to_string(n) + " arguments");
      return false;
    }
    auto *fn = llvm::Function::Create(
        llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptrTy}, false),
        llvm::GlobalValue::ExternalLinkage, e.symbol, module);
    llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
    llvm::SmallVector<llvm::Value *> args;
    for (size_t i = 0; i < n; ++i)
      args.push_back(b.CreateLoad(
          ptrTy, b.CreateConstInBoundsGEP1_64(ptrTy, fn->getArg(0), i)));
    b.CreateCall(callee, args);
    b.CreateRetVoid();
  }
  auto *i32 = llvm::Type::getInt32Ty(ctx);
  new llvm::GlobalVariable(module, i32, /*isConstant=*/true,
                           llvm::GlobalValue::ExternalLinkage,
                           llvm::ConstantInt::get(i32, 1), "tessera_package_abi");
  return true;
}

/// Lowers a copy of `nnModule` and writes `dir/code.so`.
bool compileCode(ModuleOp nnModule, const PackageOptions &options,
                 rt::Manifest &m, const std::string &dir,
                 const ErrorFn &error) {
  OwningOpRef<ModuleOp> module = nnModule.clone();
  MLIRContext *ctx = module->getContext();
  DialectRegistry registry;
  registerAllToLLVMIRTranslations(registry);
  ctx->appendDialectRegistry(registry);
  for (auto fn : module->getOps<func::FuncOp>())
    if (!fn.isPrivate())
      fn->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
                  UnitAttr::get(ctx));
  PassManager pm(ctx, ModuleOp::getOperationName());
  bool gpu = !options.gpuChip.empty();
  if (failed(gpu ? buildGPULoweringPipeline(
                       pm, options.gpuChip,
                       options.gpuBinary == "fatbin" ? "fatbin" : "isa",
                       options.wgmmaTile, options.wgmmaLoads,
                       options.wgmmaSplitK, options.wgmmaGroupRows)
             : options.emulateGPU ? buildGPUEmulationPipeline(pm)
                                  : buildCPULoweringPipeline(pm, options.useBlas)) ||
      failed(pm.run(*module))) {
    error("lowering to the LLVM dialect failed");
    return false;
  }
  if (gpu) {
    // The kernels travel inside code.so as PTX, which the driver compiles
    // for the GPU it runs on when the package is loaded, or as a fatbin
    // with ptxas's machine code for the chip (no compilation at load).
    m.targetKind = "cuda";
    m.targetChip = options.gpuChip;
    m.targetBinary = options.gpuBinary;
  }

  std::unique_ptr<llvm::TargetMachine> tm =
      createHostTargetMachine(options.cpu, m, error);
  if (!tm)
    return false;
  llvm::LLVMContext llvmCtx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmCtx, "tessera");
  if (!llvmModule) {
    error("translation to LLVM IR failed");
    return false;
  }
  llvmModule->setTargetTriple(tm->getTargetTriple());
  llvmModule->setDataLayout(tm->createDataLayout());
  if (!addEntryWrappers(*llvmModule, m, error))
    return false;
  if (llvm::Error err =
          makeOptimizingTransformer(3, 0, tm.get())(llvmModule.get())) {
    error("LLVM optimization failed: " + llvm::toString(std::move(err)));
    return false;
  }

  std::string objPath = rt::joinPath(dir, "code.o");
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec);
    if (ec) {
      error(objPath + ": " + ec.message());
      return false;
    }
    llvm::legacy::PassManager codegen;
    if (tm->addPassesToEmitFile(codegen, os, nullptr,
                                llvm::CodeGenFileType::ObjectFile)) {
      error("the target cannot emit object files");
      return false;
    }
    codegen.run(*llvmModule);
  }

  // Link with the C compiler driver, which knows the system's linker and
  // libraries; $CC overrides it.
  const char *ccEnv = std::getenv("CC");
  std::string ccName = ccEnv && *ccEnv ? ccEnv : "cc";
  llvm::ErrorOr<std::string> cc = llvm::sys::findProgramByName(ccName);
  if (!cc) {
    error("cannot link code.so: no C compiler driver '" + ccName +
          "' on PATH (install gcc or clang, or set CC)");
    return false;
  }
  std::string soPath = rt::joinPath(dir, m.code);
  std::string logPath = rt::joinPath(dir, "link.log");
  llvm::SmallVector<llvm::StringRef> argv = {*cc, "-shared", "-o", soPath,
                                             objPath, "-lm"};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt,
                                                llvm::StringRef(logPath),
                                                llvm::StringRef(logPath)};
  std::string execErr;
  int rc = llvm::sys::ExecuteAndWait(*cc, argv, std::nullopt, redirects, 0, 0,
                                     &execErr);
  if (rc != 0) {
    auto log = llvm::MemoryBuffer::getFile(logPath);
    error("linking code.so with " + *cc + " failed" +
          (execErr.empty() ? "" : ": " + execErr) +
          (log ? "\n" + (*log)->getBuffer().str() : std::string()));
    return false;
  }
  llvm::sys::fs::remove(objPath);
  llvm::sys::fs::remove(logPath);
  return true;
}

bool writeWeights(const rt::Manifest &m, const std::string &dir,
                  const ErrorFn &error) {
  rt::Status s = rt::writeInitialWeights(m, rt::joinPath(dir, m.weights));
  if (!s)
    error(s.error());
  return s.ok();
}

/// Replaces `output` by `staged` (both directories). An existing output is
/// only replaced when it is a package (or empty), never another directory.
bool publish(const std::string &staged, const std::string &output,
             const ErrorFn &error) {
  if (llvm::sys::fs::exists(output)) {
    bool isPackage =
        llvm::sys::fs::exists(rt::joinPath(output, "manifest.json"));
    std::error_code ec;
    bool isEmpty = llvm::sys::fs::is_directory(output) &&
                   llvm::sys::fs::directory_iterator(output, ec) ==
                       llvm::sys::fs::directory_iterator();
    if (!isPackage && !isEmpty) {
      error(output + ": exists and is not a Tessera package; refusing to "
                     "replace it");
      return false;
    }
    std::string old = output + ".old";
    llvm::sys::fs::remove_directories(old);
    if (std::error_code e = llvm::sys::fs::rename(output, old)) {
      error(output + ": cannot move the old package aside: " + e.message());
      return false;
    }
    if (std::error_code e = llvm::sys::fs::rename(staged, output)) {
      error(output + ": " + e.message());
      return false;
    }
    llvm::sys::fs::remove_directories(old);
  } else if (std::error_code e = llvm::sys::fs::rename(staged, output)) {
    error(output + ": " + e.message());
    return false;
  }
  (void)rt::syncDirectory(rt::parentDirectory(output));
  return true;
}
} // namespace

bool writePackage(ModuleOp nnModule, const PackageOptions &options,
                  const std::function<void(const std::string &)> &error) {
  rt::Manifest m;
  m.compilerVersion = options.compilerVersion;
  m.sourceFile = options.sourceFile;
  m.sourceSha256 = options.sourceSha256;
  m.trainName = options.trainName;
  m.seed = options.seed;
  m.train = options.trainConfig;
  if (!collectSignatures(nnModule, m, error))
    return false;

  std::string output = options.output;
  while (output.size() > 1 && output.back() == '/')
    output.pop_back();
  std::string staged = output + ".tmp-XXXXXX";
  if (!mkdtemp(staged.data())) {
    error(output + ": cannot create a directory next to it: " +
          std::strerror(errno));
    return false;
  }
  // mkdtemp makes it private; a package is as readable as any output.
  mode_t mask = umask(0);
  umask(mask);
  chmod(staged.c_str(), 0777 & ~mask);
  bool ok = compileCode(nnModule, options, m, staged, error) &&
            writeWeights(m, staged, error);
  if (ok) {
    rt::Status s = rt::writeFileAtomic(rt::joinPath(staged, "manifest.json"),
                                       m.toJSON());
    if (!s)
      error(s.error());
    ok = s.ok() && publish(staged, output, error);
  }
  if (!ok)
    llvm::sys::fs::remove_directories(staged);
  return ok;
}

} // namespace tessera
