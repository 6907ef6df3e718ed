//===- PackageWriter.h - nn modules to .tsrpkg packages ---------*- C++ -*-===//
//
// Compiles the entry points of an `nn` module for the host CPU and writes a
// package directory (runtime/package/Manifest.h describes the format): the
// module is lowered with the CPU pipeline, translated to LLVM IR, given one
// `void tessera_entry_NAME(void **args)` wrapper per entry point, optimized
// (O3), emitted as an object file and linked into code.so with the system C
// compiler driver. Parameters are initialized from their `tessera.init`
// specs with the given seed and written to weights.safetensors. The
// directory is built next to the output and renamed into place at the end,
// so a failed compile never leaves half a package.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_COMPILER_PACKAGE_PACKAGEWRITER_H
#define TESSERA_COMPILER_PACKAGE_PACKAGEWRITER_H

#include "mlir/IR/BuiltinOps.h"

#include <functional>
#include <string>

namespace tessera {

struct PackageOptions {
  /// The package directory to create (by convention NAME.tsrpkg).
  std::string output;
  std::string compilerVersion;
  std::string sourceFile, sourceSha256, trainName;
  uint64_t seed = 0;
  /// An LLVM CPU name, or "native" for the host's.
  std::string cpu = "native";
  /// The train block's settings as JSON (manifest "train"), or "".
  std::string trainConfig;
  /// f32 GEMMs through the runtime's BLAS kernels (else loop nests).
  bool useBlas = true;
  /// A CUDA GPU (sm_80, sm_90, ...) to compile the kernels for; empty for
  /// a CPU package. The host code is compiled for `cpu` either way.
  std::string gpuChip;
  /// How the kernels travel: "ptx" (the driver compiles them at load) or
  /// "fatbin" (ptxas machine code for gpuChip plus the PTX).
  std::string gpuBinary = "ptx";
  /// The sm_90a matmul kernels' tile (buildGPULoweringPipeline); empty for
  /// the default.
  std::string wgmmaTile;
  /// How they load their operands (`--wgmma-loads`); empty for the
  /// default.
  std::string wgmmaLoads;
  /// Where they split K (`--wgmma-split-k`); empty for the default.
  std::string wgmmaSplitK;
  /// How many rows of tiles their blocks walk together
  /// (`--wgmma-group-rows`); empty for the default.
  std::string wgmmaGroupRows;
  /// A CPU package lowered through the GPU pipeline, each kernel launch run
  /// as CPU loops (`--target gpu-emulator`; tests compare it with the CPU
  /// pipeline's package).
  bool emulateGPU = false;
};

/// Writes the package; reports failures through `error` and returns false.
bool writePackage(mlir::ModuleOp nnModule, const PackageOptions &options,
                  const std::function<void(const std::string &)> &error);

} // namespace tessera

#endif // TESSERA_COMPILER_PACKAGE_PACKAGEWRITER_H
