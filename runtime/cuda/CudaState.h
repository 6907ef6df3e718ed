//===- CudaState.h - Process-wide state of the CUDA runtime -----*- C++ -*-===//
//
// Internal to libtessera_cuda_runtime: the state that the C entry points of
// compiled code (MgpuABI.cpp) and the runtime's C++ interface
// (CudaDevice.cpp) share. One instance per process, in the shared library,
// so that a package's code.so and the runtime see the same contexts,
// allocators and first error.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_CUDASTATE_H
#define TESSERA_RUNTIME_CUDA_CUDASTATE_H

#include "runtime/cuda/CachingAllocator.h"
#include "runtime/cuda/CudaDriver.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace tessera::rt::cuda {

class CudaState {
public:
  /// The process's instance (never destroyed: device memory and contexts
  /// may be used until exit).
  static CudaState &get();

  /// The device that this thread's calls use (mgpuSetDefaultDevice).
  static int &defaultDevice();

  /// Loads the driver and makes the primary context of `device` current on
  /// the calling thread. The context last made current is remembered per
  /// thread, so that this is cheap when nothing changed; code that switches
  /// contexts behind the runtime's back must not share its threads.
  Expected<const Driver *> activate(int device);

  /// The caching allocator of device memory (managed memory when `managed`)
  /// of `device`, created on first use.
  CachingAllocator &allocator(int device, bool managed);
  /// The allocator that handed out `ptr`, or null.
  CachingAllocator *ownerOf(const void *ptr);
  /// All work queued on `stream` has finished (see CachingAllocator).
  void streamSynchronized(CUstream stream);
  /// Empties every allocator's cache.
  Status emptyCaches();

  /// Keeps `error` when no earlier error is waiting to be taken.
  void recordError(Status error);
  /// Whether an error is waiting; entry points that queue device work then
  /// skip it, and count it.
  bool failed();
  void skippedOperation();
  /// The first error since the last call (with the number of device
  /// operations skipped after it), and clears it.
  Status takeError();

  /// Remembers the kernel behind `function`, for messages.
  void nameFunction(CUfunction function, CUmodule module, std::string name);
  void forgetModule(CUmodule module);
  std::string functionName(CUfunction function);
  /// The dynamic shared memory limit set on `function` so far (the
  /// driver's default is 48 KiB), and a new one.
  int sharedMemoryLimit(CUfunction function);
  void setSharedMemoryLimit(CUfunction function, int bytes);

  /// One kernel launch, as messages describe it.
  struct Launch {
    CUfunction function;
    int64_t grid[3];
    int64_t block[3];
    int32_t sharedMemory;
  };
  /// "kernel 'k' (grid 64x1x1, block 128x1x1[, 70000 B shared memory])".
  std::string describe(const Launch &launch);
  /// Remembers the last launch queued on `stream`: a kernel's failure
  /// surfaces only when the stream is synchronized.
  void noteLaunch(CUstream stream, const Launch &launch);
  /// " (the last kernel queued on it: ...)", or "" when there was none.
  std::string lastLaunchOn(CUstream stream);
  void forgetStream(CUstream stream);

private:
  CudaState() = default;

  struct Kernel {
    std::string name;
    CUmodule module;
    int sharedMemoryLimit;
  };

  std::mutex contextMutex;
  std::map<int, CUcontext> contexts;

  std::mutex allocatorMutex;
  /// By (device, managed). Never destroyed: see get().
  std::map<std::pair<int, bool>, CachingAllocator *> allocators;

  std::mutex errorMutex;
  Status firstError;
  uint64_t operationsSkipped = 0;

  std::mutex kernelMutex;
  std::unordered_map<CUfunction, Kernel> kernels;
  std::unordered_map<CUstream, Launch> launches;
};

} // namespace tessera::rt::cuda

#endif // TESSERA_RUNTIME_CUDA_CUDASTATE_H
