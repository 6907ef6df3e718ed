//===- tessera.cpp - The Tessera command-line driver ----------------------===//
//
// `tessera <command> [options] FILE`. Each command is an llvm::cl
// subcommand; `tessera --help` lists them and `tessera <command> --help`
// explains one.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"
#include "compiler/MLIRGen/MLIRGen.h"
#include "compiler/Package/PackageWriter.h"
#include "compiler/Pipelines/Pipelines.h"
#include "lang/AST.h"
#include "lang/Diagnostics.h"
#include "lang/Program.h"
#include "lang/Sema.h"
#include "runtime/tools/Run.h"
#include "runtime/train/Trainer.h"

#include "llvm/ADT/StringExtras.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Pass/PassRegistry.h"
#include "dialects/nn/IR/NNDialect.h"
#include "dialects/optim/IR/OptimDialect.h"
#include "dialects/precision/IR/PrecisionDialect.h"
#include "mlir/IR/Diagnostics.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/thread.h"
#include "llvm/Support/WithColor.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif

using namespace llvm;
using namespace tessera;

namespace {

cl::OptionCategory tesseraCat("Tessera options");

cl::SubCommand checkCmd("check",
                        "Parse and check a .tsr file: names, imports, model "
                        "instantiation, tensor shapes, train/compress settings");
cl::SubCommand dumpAstCmd("dump-ast",
                          "Print the syntax tree of a .tsr file (after "
                          "parsing, before checking)");

cl::SubCommand compileCmd("compile",
                          "Compile a train block (or an nn-dialect .mlir file) "
                          "into a package (-o NAME.tsrpkg), or print its IR");
cl::SubCommand trainCmd("train",
                        "Train a train block (a .tsr file, compiled first, or "
                        "a package): progress, metrics, checkpoints, resume");
cl::SubCommand evalCmd("eval", "Evaluate a package on its data's validation "
                               "or test split (loss, accuracy or perplexity)");
cl::SubCommand runCmd("run", "Run an entry point of a compiled package on "
                             "NumPy .npy inputs");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<file.tsr>"),
                               cl::Required, cl::sub(checkCmd),
                               cl::sub(dumpAstCmd), cl::sub(compileCmd),
                               cl::sub(trainCmd), cl::cat(tesseraCat));
cl::opt<std::string> entryName("e", cl::desc("Entry point: a train block"),
                               cl::value_desc("name"), cl::sub(trainCmd),
                               cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> emitStage(
    "emit",
    cl::desc("What to write: package (the default when -o ends in .tsrpkg), "
             "nn (the default otherwise), linalg (after convert-nn-to-linalg), "
             "llvm (LLVM dialect for the host CPU) or ptx (the kernels, with "
             "--target sm_80|sm_86|sm_89|sm_90|sm_90a)"),
    cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> outputFile("o", cl::desc("Output file ('-' for stdout) or "
                                              "package directory"),
                                cl::value_desc("file"), cl::init("-"),
                                cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> targetName("target",
                                cl::desc("Code generation target: cpu (the "
                                         "host; the default), a CUDA GPU "
                                         "(sm_80, sm_86, sm_89, sm_90, "
                                         "sm_90a; sm_90 and sm_90a both make "
                                         "sm_90a code, whose matmuls use "
                                         "warpgroup MMA) for packages and "
                                         "--emit=ptx, or gpu-emulator (a CPU "
                                         "package of the GPU pipeline's "
                                         "kernels without tensor cores, run "
                                         "as CPU loops: checks the GPU "
                                         "lowering's numbers without a GPU)"),
                                cl::init("cpu"), cl::sub(compileCmd),
                                cl::cat(tesseraCat));
cl::opt<std::string> gpuCode(
    "gpu-code",
    cl::desc("How a GPU package holds its kernels: ptx (the CUDA driver "
             "compiles them when the package is loaded), fatbin (machine code "
             "for the --target chip from ptxas, plus the PTX; needs the CUDA "
             "toolkit's ptxas and fatbinary on PATH or under $CUDA_ROOT, "
             "$CUDA_HOME or $CUDA_PATH), or auto (the default: fatbin when "
             "those are found, else ptx)"),
    cl::init("auto"), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> wgmmaTile(
    "wgmma-tile",
    cl::desc("With --target sm_90|sm_90a: the matmul kernels' block tile and "
             "pipeline, ROWSxCOLSxSTAGES: 128x128x4 (the default; 129 KiB of "
             "shared memory, one block per multiprocessor), 128x128x3 (97 "
             "KiB, two blocks), 128x128x6 (193 KiB, a deeper ring), "
             "128x256x4 or 128x256x3 (256 columns where N allows)"),
    cl::init(""), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> wgmmaLoads(
    "wgmma-loads",
    cl::desc("With --target sm_90|sm_90a: how the matmul kernels load their "
             "operands into shared memory: cp.async (the default; every "
             "thread copies 16-byte pieces) or tma (the Tensor Memory "
             "Accelerator, issued by one producer thread while two "
             "warpgroups compute; PTX 8.3, so a package holding PTX only "
             "needs a CUDA 12.3+ driver) or tma-persistent (the same with "
             "one block per multiprocessor, each walking tiles of C)"),
    cl::init(""), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> wgmmaSplitK(
    "wgmma-split-k",
    cl::desc("With --target sm_90|sm_90a: where a matmul splits K over "
             "several blocks per tile of C, each summing part of K, the last "
             "to finish adding up the parts (in a fixed order, so results do "
             "not vary from run to run): auto (the default: where C has too "
             "few tiles to keep an H100's 132 multiprocessors busy and K is "
             "long, as in weight gradients), off, or 2, 4, 8 or 16 splits for "
             "every matmul whose K (in tiles of 64) the number divides"),
    cl::init(""), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> wgmmaGroupRows(
    "wgmma-group-rows",
    cl::desc("With --target sm_90|sm_90a: the order in which a matmul's "
             "blocks walk the tiles of C: in groups of this many rows of "
             "tiles, column by column within a group, so that the blocks "
             "running at once share operand tiles in L2: 8 (the default), "
             "1 (row by row), 2, 4 or 16"),
    cl::init(""), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<std::string> cpuName("mcpu",
                             cl::desc("CPU to generate code for (an LLVM CPU "
                                      "name; default: native, the host's)"),
                             cl::init("native"), cl::sub(compileCmd),
                             cl::cat(tesseraCat));
cl::opt<int64_t> seedOpt("seed",
                         cl::desc("Seed of parameter initialization (default: "
                                  "the train block's seed, else 0)"),
                         cl::init(-1), cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<bool> withGrad("grad",
                       cl::desc("With --emit=nn|linalg|llvm: also build "
                                "`train_step` (the loss and its gradients, "
                                "by tessera-autodiff); packages always have it"),
                       cl::sub(compileCmd), cl::cat(tesseraCat));
cl::opt<bool> noBlas("no-blas",
                     cl::desc("Compile matrix products to loop nests instead "
                              "of calls of the runtime's BLAS kernels"),
                     cl::sub(compileCmd), cl::cat(tesseraCat));

cl::opt<int64_t> trainSteps("steps", cl::desc("Train this many steps instead "
                                             "of the train block's"),
                            cl::init(-1), cl::sub(trainCmd), cl::cat(tesseraCat));
cl::opt<std::string> trainOut("out", cl::desc("Directory for metrics.jsonl, "
                                              "loss.png and checkpoints "
                                              "(default: the checkpoint dir "
                                              "of the train block, else "
                                              "runs/NAME)"),
                              cl::value_desc("dir"), cl::sub(trainCmd),
                              cl::cat(tesseraCat));
cl::opt<std::string> trainResume("resume",
                                 cl::desc("Continue from the latest checkpoint "
                                          "in this directory; the rest of the "
                                          "run is identical to an "
                                          "uninterrupted one"),
                                 cl::value_desc("dir"), cl::sub(trainCmd),
                                 cl::cat(tesseraCat));
cl::opt<int64_t> trainSeed("seed", cl::desc("Seed of initialization and data "
                                            "order (default: the train "
                                            "block's)"),
                           cl::init(-1), cl::sub(trainCmd), cl::cat(tesseraCat));
cl::opt<bool> trainQuiet("q", cl::desc("No progress output"), cl::sub(trainCmd),
                         cl::cat(tesseraCat));

cl::opt<std::string> packageDir(cl::Positional, cl::desc("<package.tsrpkg>"),
                                cl::Required, cl::sub(runCmd), cl::sub(evalCmd),
                                cl::cat(tesseraCat));
cl::list<std::string> runInputs("input",
                                cl::desc("An input: NAME=FILE.npy (just "
                                         "FILE.npy when there is one input)"),
                                cl::value_desc("[name=]file.npy"),
                                cl::sub(runCmd), cl::cat(tesseraCat));
cl::list<std::string> runOutputs("output",
                                 cl::desc("Where to write an output: FILE.npy "
                                          "(one output) or NAME=FILE.npy; "
                                          "outputs not written are summarized"),
                                 cl::value_desc("[name=]file.npy"),
                                 cl::sub(runCmd), cl::cat(tesseraCat));
cl::opt<std::string> runWeights("weights",
                                cl::desc("Parameters to use instead of the "
                                         "package's weights.safetensors (a "
                                         "checkpoint works)"),
                                cl::value_desc("file.safetensors"),
                                cl::sub(runCmd), cl::sub(evalCmd), cl::cat(tesseraCat));
cl::opt<std::string> evalSplit("split", cl::desc("val (default) or test"),
                               cl::init("val"), cl::sub(evalCmd),
                               cl::cat(tesseraCat));
cl::opt<int64_t> evalBatches("batches", cl::desc("Evaluate at most N batches "
                                                 "(default: the whole split)"),
                             cl::init(-1), cl::sub(evalCmd), cl::cat(tesseraCat));
cl::opt<unsigned> runRepeat("repeat",
                            cl::desc("Time N more calls of the entry point and "
                                     "print the median and best latency (GPU "
                                     "packages: arguments stay on the device)"),
                            cl::init(0), cl::sub(runCmd), cl::cat(tesseraCat));
cl::opt<std::string> runEntry("entry", cl::desc("Entry point (default: forward)"),
                              cl::init("forward"), cl::sub(runCmd),
                              cl::cat(tesseraCat));
cl::list<std::string> importDirs("I", cl::desc("Add <dir> to the import search path"),
                                 cl::value_desc("dir"), cl::Prefix,
                                 cl::sub(checkCmd), cl::sub(dumpAstCmd),
                                 cl::sub(compileCmd), cl::sub(trainCmd),
                                 cl::cat(tesseraCat));
cl::opt<unsigned> maxErrors("max-errors",
                            cl::desc("Stop after this many errors (default 20)"),
                            cl::init(20), cl::sub(checkCmd),
                            cl::sub(dumpAstCmd), cl::cat(tesseraCat));
cl::opt<bool> showParams("params",
                         cl::desc("List every parameter (path, shape, "
                                  "initializer) of each trained model"),
                         cl::sub(checkCmd), cl::cat(tesseraCat));
cl::opt<bool> quiet("q", cl::desc("Print nothing on success"),
                    cl::sub(checkCmd), cl::cat(tesseraCat));
cl::opt<bool> noColor("no-color", cl::desc("Never color diagnostics"),
                      cl::sub(checkCmd), cl::sub(dumpAstCmd),
                      cl::cat(tesseraCat));

const char *overview = R"(Tessera: models, training schedules and compression recipes, compiled.

A .tsr file declares models, data, `train` blocks and `compress` blocks;
tessera checks it (shapes included) before anything runs.

COMMANDS
  tessera check FILE.tsr       parse and check; prints a summary of each block
  tessera dump-ast FILE.tsr    print the syntax tree
  tessera compile FILE.tsr -e TRAIN -o NAME.tsrpkg
                               compile a train block for this CPU into a
                               package: forward, loss, train_step (autodiff)
                               and optimizer_step in code.so, manifest.json,
                               weights.safetensors (initialized from the spec
                               with the train block's seed)
  tessera compile FILE.tsr -e TRAIN --emit=nn|linalg|llvm [-o OUT.mlir]
                               print the IR at one stage instead
  tessera compile FILE.tsr -e TRAIN --target sm_90 --emit=ptx -o OUT.ptx
                               the kernels as PTX; bf16/f16 matmuls that tile
                               run on tensor cores (wgmma on sm_90/sm_90a,
                               mma.sync on sm_80-89), as does attention
                               (mma.sync); the rest are simpler kernels
  tessera compile FILE.tsr -e TRAIN --target sm_80 -o NAME.tsrpkg
                               a GPU package (host code + kernels: a fatbin
                               when ptxas is found, else PTX; --gpu-code)
                               that run, train and eval execute through the
                               CUDA driver (CUDA_VISIBLE_DEVICES picks the GPU)
  tessera train FILE.tsr -e TRAIN [--steps N] [--out DIR] [--resume DIR]
                               compile and train: progress bar, validation,
                               metrics.jsonl, loss.png, atomic checkpoints;
                               also takes a compiled package instead of FILE
  tessera run PKG --input [NAME=]IN.npy [--output OUT.npy] [--weights W]
                               run the package's forward on NumPy inputs
  tessera eval PKG [--weights CKPT] [--split val|test]
                               loss and accuracy (or perplexity) on the data

EXAMPLES
  tessera check examples/kjv_gpt.tsr
  tessera check --params examples/fashion_mlp.tsr
  tessera check -I mylib model.tsr
  tessera dump-ast examples/fashion_mlp.tsr
  tessera compile examples/kjv_gpt.tsr -e pretrain --emit=nn
  tessera compile examples/fashion_mlp.tsr -e fit -o mlp.tsrpkg
  tessera run mlp.tsrpkg --input x=batch.npy --output logits.npy
  tessera train examples/fashion_mlp.tsr -e fit
  tessera train examples/fashion_mlp.tsr -e fit --resume runs/fashion

Errors are printed as FILE:LINE:COL: error: ... with the source line and a
caret; the exit code is 1 when any error was reported. Imports are searched
next to the importing file, then in -I directories, then $TESSERA_PATH, then
the standard library. Language reference: docs/language.md.
)";

std::string humanCount(int64_t n) {
  if (n >= 1000000000)
    return formatv("{0:f2}B", n / 1e9);
  if (n >= 1000000)
    return formatv("{0:f2}M", n / 1e6);
  if (n >= 1000)
    return formatv("{0:f1}K", n / 1e3);
  return std::to_string(n);
}

void printSummary(const Sema &sema, raw_ostream &os) {
  for (const auto &d : sema.getData())
    os << "  data " << d->decl->name << ": " << d->kind << ", batch x "
       << d->x.str() << ", y " << d->y.str() << "\n";
  for (const auto &t : sema.getTrains()) {
    if (!t->model)
      continue;
    std::vector<const ParamInfo *> params;
    t->model->collectParams(params);
    int64_t n = countElements(params);
    os << "  train " << t->decl->name << ": " << t->model->signature << ", "
       << humanCount(n) << " parameters in " << params.size()
       << (params.size() == 1 ? " tensor (" : " tensors (")
       << formatv("{0:f1}", n * 4.0 / (1 << 20))
       << " MiB in f32)\n";
    if (showParams)
      for (const ParamInfo *p : params)
        os << "    " << left_justify(p->path, 36) << " "
           << left_justify(p->type.str(), 20) << " " << p->init << "\n";
  }
  for (const auto &c : sema.getCompresses()) {
    os << "  compress " << c->decl->name << ":";
    if (c->from)
      os << " from " << c->from->decl->name;
    os << "\n";
    for (const ResolvedRule &r : c->rules) {
      int64_t n = countElements(r.params);
      os << "    " << r.action << " " << r.method.str() << ": "
         << r.params.size() << (r.params.size() == 1 ? " tensor, " : " tensors, ")
         << humanCount(n) << " weights\n";
    }
  }
}

/// SHA-256 of every source the program read (the file, its imports and the
/// stdlib), in load order.
std::string sourceHash(const SourceMgr &sourceMgr) {
  SHA256 sha;
  for (unsigned i = 1; i <= sourceMgr.getNumBuffers(); ++i)
    sha.update(sourceMgr.getMemoryBuffer(i)->getBuffer());
  return toHex(sha.final(), /*LowerCase=*/true);
}

/// The output kind --emit/-o ask for ("package", "nn", "linalg", "llvm"), or
/// "" after reporting an unusable combination.
/// Whether ptxas and fatbinary can be found the way MLIR's NVVM serializer
/// looks for them: on PATH, or in bin/ under $CUDA_ROOT, $CUDA_HOME or
/// $CUDA_PATH (the first one set).
bool cudaToolkitFound() {
  auto found = [](llvm::StringRef tool) {
    if (llvm::sys::findProgramByName(tool))
      return true;
    for (const char *var : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"})
      if (const char *dir = std::getenv(var)) {
        llvm::SmallString<256> path(dir);
        llvm::sys::path::append(path, "bin", tool);
        return llvm::sys::fs::can_execute(path);
      }
    return false;
  };
  return found("ptxas") && found("fatbinary");
}

/// The train block's settings for the package (empty for .mlir inputs).
std::string trainConfig;

std::string resolveEmit(DiagnosticEngine &diags) {
  std::string emit = emitStage;
  if (emit.empty())
    emit = StringRef(outputFile).ends_with(".tsrpkg") ? "package" : "nn";
  if (emit != "package" && emit != "nn" && emit != "linalg" && emit != "llvm" &&
      emit != "ptx") {
    diags.errorNoLoc("--emit=" + emit +
                     " is not available; choose package, nn, linalg, llvm or "
                     "ptx");
    return "";
  }
  static const char *const gpuTargets[] = {"sm_80", "sm_86", "sm_89", "sm_90",
                                           "sm_90a"};
  bool gpu = llvm::is_contained(gpuTargets, StringRef(targetName));
  if (targetName != "cpu" && targetName != "gpu-emulator" && !gpu) {
    diags.errorNoLoc("unknown --target=" + targetName +
                     "; choose cpu, sm_80, sm_86, sm_89, sm_90, sm_90a or "
                     "gpu-emulator");
    return "";
  }
  if (gpuCode != "auto" && gpuCode != "ptx" && gpuCode != "fatbin") {
    diags.errorNoLoc("unknown --gpu-code=" + gpuCode +
                     "; choose auto, ptx or fatbin");
    return "";
  }
  if (gpuCode == "fatbin" && !cudaToolkitFound()) {
    diags.errorNoLoc("--gpu-code=fatbin needs the CUDA toolkit's ptxas and "
                     "fatbinary (on PATH, or in bin/ under $CUDA_ROOT, "
                     "$CUDA_HOME or $CUDA_PATH); --gpu-code=ptx needs neither");
    return "";
  }
  if (targetName == "gpu-emulator" && emit != "package") {
    diags.errorNoLoc("--target=gpu-emulator makes packages only (-o NAME.tsrpkg)");
    return "";
  }
  if (gpu && emit == "llvm") {
    diags.errorNoLoc("--target=" + targetName + " --emit=llvm: the LLVM "
                     "dialect is printed for CPU packages only; --emit=ptx "
                     "writes the kernels");
    return "";
  }
  if (!gpu && emit == "ptx") {
    diags.errorNoLoc("--emit=ptx needs a GPU target: --target=sm_80, sm_86, "
                     "sm_89, sm_90 or sm_90a");
    return "";
  }
  // The sm_90 matmul kernels' flags: for an sm_90 target, with a known
  // value.
  struct WgmmaFlag {
    const cl::opt<std::string> &opt;
    bool (*known)(llvm::StringRef);
    const char *choices;
  };
  for (const WgmmaFlag &f :
       {WgmmaFlag{wgmmaTile, isWgmmaTile,
                  "128x128x4, 128x128x3, 128x128x6, 128x256x4 or 128x256x3"},
        WgmmaFlag{wgmmaLoads, isWgmmaLoads, "cp.async, tma or tma-persistent"},
        WgmmaFlag{wgmmaSplitK, isWgmmaSplitK, "auto, off, 2, 4, 8 or 16"},
        WgmmaFlag{wgmmaGroupRows, isWgmmaGroupRows, "1, 2, 4, 8 or 16"}}) {
    const std::string &value = f.opt;
    std::string name = "--" + f.opt.ArgStr.str();
    if (value.empty())
      continue;
    if (targetName != "sm_90" && targetName != "sm_90a") {
      diags.errorNoLoc(name + " is for --target=sm_90 or sm_90a (warpgroup "
                       "MMA), not --target=" + targetName);
      return "";
    }
    if (!f.known(value)) {
      diags.errorNoLoc("unknown " + name + "=" + value + "; choose " +
                       f.choices);
      return "";
    }
  }
  if (!gpu && gpuCode.getNumOccurrences() > 0) {
    diags.errorNoLoc("--gpu-code=" + gpuCode + " is for GPU packages; "
                     "--target=" + targetName + " makes none");
    return "";
  }
  if (emit == "ptx" && gpuCode.getNumOccurrences() > 0) {
    diags.errorNoLoc("--gpu-code=" + gpuCode + " chooses how a GPU package "
                     "holds its kernels; --emit=ptx writes PTX text");
    return "";
  }
  if (emit == "ptx" && StringRef(outputFile).ends_with(".tsrpkg")) {
    diags.errorNoLoc("--emit=ptx writes a PTX file, not a package: -o " +
                     outputFile + " (leave out --emit=ptx for a GPU package)");
    return "";
  }
  if (noBlas && targetName != "cpu") {
    diags.errorNoLoc("--no-blas is for CPU packages (the GPU pipeline makes "
                     "its own matmul kernels), not --target=" + targetName);
    return "";
  }
  if (emit == "package" && outputFile == "-") {
    diags.errorNoLoc("a package is a directory: give it with -o NAME.tsrpkg "
                     "(or print IR with --emit=nn|linalg|llvm)");
    return "";
  }
  return emit;
}

int emitModule(mlir::ModuleOp module, const std::string &emit,
               const std::string &trainName, std::optional<uint64_t> seed,
               SourceMgr &sourceMgr, DiagnosticEngine &diags);

int compile(Sema &sema, SourceMgr &sourceMgr, DiagnosticEngine &diags) {
  const CheckedTrain *train = nullptr;
  std::vector<std::string> names;
  for (const auto &t : sema.getTrains()) {
    names.push_back(t->decl->name);
    if (t->decl->name == entryName)
      train = t.get();
  }
  if (entryName.empty()) {
    diags.errorNoLoc("give the train block to compile with -e NAME" +
                     (names.empty() ? std::string(" (this file has none)")
                                    : " (train blocks: " + join(names, ", ") + ")"));
    return 1;
  }
  if (!train) {
    diags.errorNoLoc("no train block named '" + entryName + "' in " +
                     inputFile + (names.empty() ? "" : " (train blocks: " +
                                                          join(names, ", ") + ")"));
    return 1;
  }
  std::string emit = resolveEmit(diags);
  if (emit.empty())
    return 1;
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::MLIRContext context(registry);
  // Errors point at the .tsr source; the IR of the op is no help there.
  context.printOpOnDiagnostic(false);
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context, errs());
  auto module = genTrainForward(context, sema, *train, diags, /*withLoss=*/true);
  if (!module)
    return 1;
  std::optional<uint64_t> seed;
  if (auto it = train->settings.find("seed");
      it != train->settings.end() && it->second.getInt())
    seed = uint64_t(*it->second.getInt());
  trainConfig = trainSettingsJSON(*train, sourceMgr);
  return emitModule(*module, emit, train->decl->name, seed, sourceMgr, diags);
}

/// `tessera compile FILE.mlir`: an nn-dialect module written by hand (or by
/// --emit=nn) instead of a .tsr file.
int compileMLIR() {
  SourceMgr sourceMgr;
  DiagnosticEngine diags(sourceMgr);
  std::string emit = resolveEmit(diags);
  if (emit.empty())
    return 1;
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  registry.insert<nn::NNDialect, optim::OptimDialect,
                  precision::PrecisionDialect>();
  mlir::MLIRContext context(registry);
  mlir::SourceMgrDiagnosticHandler handler(sourceMgr, &context, errs());
  std::string error;
  auto file = mlir::openInputFile(inputFile, &error);
  if (!file) {
    diags.errorNoLoc(error);
    return 1;
  }
  sourceMgr.AddNewSourceBuffer(std::move(file), SMLoc());
  auto module = mlir::parseSourceFile<mlir::ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1;
  std::optional<uint64_t> seed;
  return emitModule(*module, emit, "", seed, sourceMgr, diags);
}

/// Lowers `module` for --target and writes the PTX of its kernels.
int writePTX(mlir::ModuleOp module, DiagnosticEngine &diags) {
  mlir::DialectRegistry registry;
  mlir::registerAllToLLVMIRTranslations(registry);
  module.getContext()->appendDialectRegistry(registry);
  mlir::PassManager pm(module.getContext(), mlir::ModuleOp::getOperationName());
  if (failed(buildGPULoweringPipeline(pm, targetName, "isa", wgmmaTile,
                                      wgmmaLoads, wgmmaSplitK,
                                      wgmmaGroupRows)) ||
      failed(pm.run(module)))
    return 1;
  std::string ptx;
  module.walk([&](mlir::gpu::BinaryOp binary) {
    for (mlir::Attribute a : binary.getObjects())
      if (auto object = dyn_cast<mlir::gpu::ObjectAttr>(a))
        ptx += object.getObject().getValue().str();
  });
  if (ptx.empty()) {
    diags.errorNoLoc("the module has no kernels to compile");
    return 1;
  }
  std::string error;
  auto out = mlir::openOutputFile(outputFile, &error);
  if (!out) {
    diags.errorNoLoc(error);
    return 1;
  }
  out->os() << ptx;
  out->keep();
  return 0;
}

/// Writes `module` (nn dialect) as `emit` says: a package, or IR.
int emitModule(mlir::ModuleOp module, const std::string &emit,
               const std::string &trainName, std::optional<uint64_t> seed,
               SourceMgr &sourceMgr, DiagnosticEngine &diags) {
  mlir::MLIRContext &context = *module.getContext();
  // The gradient of the loss (when there is one) becomes `train_step`.
  bool differentiate = module.lookupSymbol("loss") && !module.lookupSymbol("train_step");
  auto policy = module->getAttrOfType<mlir::StringAttr>("tessera.precision");
  if (policy) {
    mlir::PassManager pm(&context, mlir::ModuleOp::getOperationName());
    if (failed(buildMixedPrecisionPipeline(pm, policy.getValue())) ||
        failed(pm.run(module)))
      return 1;
  }
  if (emit == "package" || emit == "ptx" || (differentiate && withGrad)) {
    mlir::PassManager pm(&context, mlir::ModuleOp::getOperationName());
    // fp16 needs dynamic loss scaling: train_step takes the scale.
    bool scaleLoss = policy && policy.getValue() == "f16";
    if (differentiate && failed(buildAutodiffPipeline(pm, scaleLoss)))
      return 1;
    if (failed(pm.run(module)))
      return 1;
  }
  if (emit == "package") {
    PackageOptions options;
    options.output = outputFile;
    options.compilerVersion = TESSERA_VERSION;
    options.sourceFile = inputFile;
    options.sourceSha256 = sourceHash(sourceMgr);
    options.trainName = trainName;
    options.cpu = cpuName;
    options.useBlas = !noBlas;
    options.emulateGPU = targetName == "gpu-emulator";
    options.gpuBinary = gpuCode == "auto" ? (cudaToolkitFound() ? "fatbin" : "ptx")
                                          : std::string(gpuCode);
    if (targetName != "cpu" && !options.emulateGPU)
      options.gpuChip = targetName;
    options.wgmmaTile = wgmmaTile;
    options.wgmmaLoads = wgmmaLoads;
    options.wgmmaSplitK = wgmmaSplitK;
    options.wgmmaGroupRows = wgmmaGroupRows;
    options.seed = seedOpt >= 0 ? uint64_t(seedOpt) : seed.value_or(0);
    options.trainConfig = trainConfig;
    bool ok = writePackage(module, options, [&](const std::string &msg) {
      // Messages about the package directory itself already name it.
      diags.errorNoLoc(StringRef(msg).starts_with(outputFile)
                           ? msg
                           : outputFile + ": " + msg);
    });
    return ok ? 0 : 1;
  }
  if (emit == "ptx")
    return writePTX(module, diags);
  if (emit != "nn") {
    mlir::PassManager pm(&context, mlir::ModuleOp::getOperationName());
    if (failed(emit == "linalg" ? buildNNToLinalgPipeline(pm)
                                : buildCPULoweringPipeline(pm, !noBlas)) ||
        failed(pm.run(module)))
      return 1;
  }
  std::string error;
  auto out = mlir::openOutputFile(outputFile, &error);
  if (!out) {
    diags.errorNoLoc(error);
    return 1;
  }
  mlir::OpPrintingFlags flags;
  flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false);
  module->print(out->os(), flags);
  out->keep();
  return 0;
}

rt::TrainOptions trainOptions(const std::string &package) {
  rt::TrainOptions o;
  o.package = package;
  o.outDir = trainOut;
  o.resume = trainResume;
  o.steps = trainSteps;
  o.seed = trainSeed;
  o.quiet = trainQuiet;
  return o;
}

/// `tessera train FILE.tsr -e NAME`: compiles the package into the run's
/// directory (OUT/model.tsrpkg), then trains it.
int compileAndTrain(Sema &sema, SourceMgr &sourceMgr, DiagnosticEngine &diags) {
  std::string out = trainOut.empty() ? std::string(trainResume) : std::string(trainOut);
  for (const auto &t : sema.getTrains())
    if (out.empty() && t->decl->name == entryName) {
      auto it = t->settings.find("checkpoint");
      std::string dir;
      if (it != t->settings.end())
        for (auto &kv : it->second.named)
          if (kv.first == "dir")
            dir = kv.second.s;
      out = dir.empty() ? "runs/" + t->decl->name : dir;
    }
  if (out.empty())
    out = "runs/" + std::string(entryName);
  bool existed = sys::fs::exists(out);
  if (std::error_code ec = sys::fs::create_directories(out)) {
    diags.errorNoLoc(out + ": cannot create directory: " + ec.message());
    return 1;
  }
  outputFile = out + "/model.tsrpkg";
  emitStage = "package";
  if (trainSeed >= 0)
    seedOpt = trainSeed;
  if (int rc = compile(sema, sourceMgr, diags)) {
    // A spec that does not compile leaves no run directory behind.
    if (!existed)
      (void)sys::fs::remove_directories(out);
    return rc;
  }
  rt::TrainOptions o = trainOptions(outputFile);
  o.outDir = out;
  return rt::trainCommand(o);
}

int runFrontEnd(bool dumpOnly) {
  SourceMgr sourceMgr;
  DiagnosticEngine diags(sourceMgr);
  diags.setErrorLimit(maxErrors == 0 ? 1 : maxErrors);
  if (noColor)
    diags.setShowColors(false);
  LoadOptions options;
  options.importPaths.assign(importDirs.begin(), importDirs.end());
  Program program;
  bool loaded = loadProgram(inputFile, diags, options, program);
  if (dumpOnly) {
    if (program.root)
      ast::dump(*program.root, sourceMgr, outs());
    return loaded ? 0 : 1;
  }
  if (!loaded)
    return 1;
  Sema sema(program, diags);
  if (!sema.run())
    return 1;
  if (compileCmd)
    return compile(sema, sourceMgr, diags);
  if (trainCmd)
    return compileAndTrain(sema, sourceMgr, diags);
  if (!quiet) {
    outs() << inputFile << ": ok\n";
    printSummary(sema, outs());
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::SetVersionPrinter([](raw_ostream &os) {
    os << "tessera " << TESSERA_VERSION << " (LLVM/MLIR " << LLVM_VERSION_STRING
       << ")\n";
  });
  cl::HideUnrelatedOptions(tesseraCat);
  if (argc < 2) {
    errs() << "usage: tessera <command> [options] FILE   (see tessera --help)\n";
    return 1;
  }
  if (!cl::ParseCommandLineOptions(argc, argv, overview, &errs()))
    return 1;

  if (runCmd) {
    rt::RunOptions options;
    options.package = packageDir;
    options.entry = runEntry;
    options.weights = runWeights;
    options.repeat = runRepeat;
    options.inputs.assign(runInputs.begin(), runInputs.end());
    options.outputs.assign(runOutputs.begin(), runOutputs.end());
    return rt::runCommand(options);
  }
  if (evalCmd) {
    rt::EvalOptions options;
    options.package = packageDir;
    options.weights = runWeights;
    options.split = evalSplit;
    options.batches = evalBatches;
    return rt::evalCommand(options);
  }
  if (trainCmd && sys::fs::is_directory(inputFile))
    return rt::trainCommand(trainOptions(inputFile));
  bool dumpOnly = static_cast<bool>(dumpAstCmd);
  if (!checkCmd && !dumpAstCmd && !compileCmd && !trainCmd) {
    errs() << "tessera: no command given; see tessera --help\n";
    return 1;
  }
  // Run on a large stack: the parser and Sema recurse over bracket and
  // expression depth, which the front end bounds well within this.
  if (compileCmd && StringRef(inputFile).ends_with(".mlir"))
    return compileMLIR();
  int rc = 1;
  llvm::thread worker(std::optional<unsigned>(64u << 20), [&] { rc = runFrontEnd(dumpOnly); });
  worker.join();
  return rc;
}
