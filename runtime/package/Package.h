//===- Package.h - Loading and running a .tsrpkg ----------------*- C++ -*-===//

#ifndef TESSERA_RUNTIME_PACKAGE_PACKAGE_H
#define TESSERA_RUNTIME_PACKAGE_PACKAGE_H

#include "runtime/package/Manifest.h"

#include <map>
#include <memory>
#include <vector>

namespace tessera::rt {

class MemRefDescriptor;

/// A loaded package: its manifest, its code (dlopen'ed) and its parameters.
class Package {
public:
  /// Loads `dir`. `weights` overrides the package's weights file; every
  /// parameter must be found there with the manifest's dtype and shape.
  static Expected<Package> load(const std::string &dir,
                                const std::string &weights = "");
  Package(Package &&) noexcept;
  Package &operator=(Package &&) noexcept;
  ~Package();

  const Manifest &manifest() const { return info; }
  const std::string &directory() const { return dir; }
  /// The current value of each parameter, by name.
  std::map<std::string, Tensor> &parameters() { return params; }

  /// Runs `entry` on `inputs` (by name; each must match the manifest's dtype
  /// and shape exactly) and returns its outputs in manifest order.
  Expected<std::vector<Tensor>> run(const std::string &entry,
                                    const std::map<std::string, Tensor> &inputs);
  /// Like run(), but writes each output into the tensor given for it (of the
  /// manifest's dtype and shape; it may alias an input element for element,
  /// as an optimizer's in-place update does).
  Status invoke(const std::string &entry,
                const std::map<std::string, const Tensor *> &inputs,
                const std::map<std::string, Tensor *> &outputs);

  /// CUDA packages: keeps the memory of `t` on the device between calls.
  /// Arguments that lie inside it (views included) are not copied: the
  /// device copy is uploaded on the first call that uses it, or after
  /// hostWrote(), and outputs written into it stay on the device until
  /// syncToHost(). Does nothing for CPU packages.
  Status keepOnDevice(const Tensor &t);
  /// The host changed a resident tensor (or a view into one): the next call
  /// that uses it uploads it first.
  void hostWrote(const Tensor &t);
  /// Copies every resident tensor that calls changed back to the host.
  Status syncToHost();

private:
  Package() = default;
  /// Calls a CUDA package's entry point: its arguments are copied to the
  /// device (unless resident), its outputs back.
  Status invokeOnDevice(void (*fn)(void **), std::vector<MemRefDescriptor> &descs,
                        size_t numOutputs);
  /// A host tensor's memory kept on the device (keepOnDevice).
  struct Resident {
    const char *host;
    uint64_t bytes;
    void *device;
    /// The host copy changed since the last upload / calls changed the
    /// device copy since the last download.
    bool hostNewer, deviceNewer;
    /// Keeps the host memory alive as long as its device copy.
    Tensor owner;
  };
  Resident *findResident(const void *ptr, uint64_t bytes);
  void releaseResidents();
  Manifest info;
  std::string dir;
  void *handle = nullptr;
  std::map<std::string, Tensor> params;
  std::vector<Resident> residents;
};

/// Writes `path` with every parameter of `m` initialized from its spec
/// (`init`, the manifest's seed and the parameter's name), as `tessera
/// compile` does: packages can travel without their weights file and get
/// it back with `tessera-rt init-weights`.
Status writeInitialWeights(const Manifest &m, const std::string &path);

/// The argument of compiled code: an MLIR strided memref descriptor of a
/// contiguous, row-major tensor.
class MemRefDescriptor {
public:
  explicit MemRefDescriptor(const Tensor &t);
  void *get() { return words.data(); }
  /// The described memory (the tensor's, unless setData changed it).
  void *data() const;
  void setData(void *ptr);
  uint64_t byteSize() const { return bytes; }

private:
  std::vector<int64_t> words;
  uint64_t bytes;
};

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_PACKAGE_PACKAGE_H
