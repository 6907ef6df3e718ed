//===- Manifest.h - manifest.json of a .tsrpkg ------------------*- C++ -*-===//
//
// A package is a directory:
//
//   NAME.tsrpkg/manifest.json        this file: what the package holds
//   NAME.tsrpkg/code.so              compiled entry points (host code)
//   NAME.tsrpkg/weights.safetensors  the initial parameters
//
// Entry point calling convention (format_version 1): the symbol is
//   void SYMBOL(void **args)
// where args[i] points to an MLIR strided memref descriptor
//   {T *allocated, T *aligned, int64 offset, int64 sizes[R], int64 strides[R]}
// for, in order: the entry's inputs, its parameters (named in `parameters`),
// then its outputs (written in place, allocated by the caller).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_PACKAGE_MANIFEST_H
#define TESSERA_RUNTIME_PACKAGE_MANIFEST_H

#include "runtime/core/Tensor.h"

#include <string>
#include <vector>

namespace tessera::rt {

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// For integer inputs that index something (embedding rows, the classes
  /// of a cross-entropy): the values must lie in [0, indexBound), which
  /// `indexes` says in words ("rows of an embedding table (80)").
  /// 0: no bound known.
  int64_t indexBound = 0;
  std::string indexes;
  std::string typeString() const {
    return std::string(dtypeTsrName(dtype)) + shapeString(shape);
  }
};

/// Whether the integer tensor `t` given for `spec` lies in [0,
/// spec.indexBound); the error names `source` (a file), the input and the
/// first element outside.
Status checkIndices(const TensorSpec &spec, const Tensor &t,
                    const std::string &source);

struct ParameterSpec : TensorSpec {
  std::string init;
  bool trainable = true;
  /// Position in the optimizer's flat buffers (elements), and whether the
  /// parameter gets weight decay (decayed parameters come first).
  int64_t offset = 0;
  bool decay = true;
};

struct EntryPoint {
  std::string name, symbol;
  std::vector<TensorSpec> inputs, outputs;
  /// Names from Manifest::parameters, in argument order.
  std::vector<std::string> parameters;
};

struct Manifest {
  static constexpr int formatVersion = 1;
  std::string compilerVersion;
  std::string sourceFile, sourceSha256, trainName;
  std::string targetKind = "cpu", targetTriple, targetCpu;
  /// For targetKind "cuda": the GPU the kernels were compiled for (sm_80,
  /// sm_90, ...); the host code runs on targetTriple/targetCpu.
  std::string targetChip;
  /// For targetKind "cuda": how code.so holds the kernels: "ptx" (compiled
  /// by the driver when loaded) or "fatbin" (machine code for targetChip by
  /// ptxas, plus the PTX).
  std::string targetBinary;
  std::string code = "code.so", weights = "weights.safetensors";
  uint64_t seed = 0;
  std::vector<EntryPoint> entryPoints;
  std::vector<ParameterSpec> parameters;
  /// The train block's settings as JSON text (data, optimizer, schedule,
  /// steps, ...; runtime/train/TrainConfig.h reads them), or "".
  std::string train;

  const EntryPoint *findEntry(const std::string &name) const;
  const ParameterSpec *findParameter(const std::string &name) const;
  std::string toJSON() const;
  /// Parses and validates; errors name `path` and the field.
  static Expected<Manifest> parse(const std::string &text,
                                  const std::string &path);
};

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_PACKAGE_MANIFEST_H
