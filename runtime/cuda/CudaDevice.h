//===- CudaDevice.h - The runtime's interface to CUDA -----------*- C++ -*-===//
//
// What the runtime (packages, tessera-rt) uses of libtessera_cuda_runtime,
// which also holds the C entry points that compiled GPU code calls
// (MgpuABI.h). Nothing here needs a GPU to link or to be called: without a
// driver every call fails with a Status saying why.
//
// Device memory handed out here and by mgpuMemAlloc comes from the same
// caching allocator. Errors of the C entry points wait in a process-wide
// slot; the runtime takes them after each call into compiled code.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_CUDADEVICE_H
#define TESSERA_RUNTIME_CUDA_CUDADEVICE_H

#include "runtime/core/Tensor.h"
#include "runtime/cuda/CachingAllocator.h"

#include <string>
#include <vector>

namespace tessera::rt::cuda {

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  /// Compute capability: sm_<major><minor>.
  int computeMajor = 0;
  int computeMinor = 0;
  uint64_t totalMemory = 0;
  int multiprocessors = 0;
};

struct DriverInfo {
  /// The library that was loaded (libcuda.so.1 or $TESSERA_LIBCUDA).
  std::string library;
  /// As cuDriverGetVersion reports it: 1000 * major + 10 * minor.
  int version = 0;
  std::vector<DeviceInfo> devices;
};

/// Loads the driver (once) and describes its devices.
Expected<DriverInfo> queryDevices();

/// Loads the driver and makes the default device's context current on the
/// calling thread.
Status initialize();

/// The device that this thread's calls use (0 unless changed here or by
/// mgpuSetDefaultDevice).
int defaultDevice();
void setDefaultDevice(int device);

/// Statistics of the default device's caching allocator of device memory.
AllocatorStats memoryStats();
/// Waits for the devices and returns every unused cached block to the
/// driver.
Status emptyCache();

/// The first error of a C entry point since the last call (naming the CUDA
/// error, what was being done and, for launches, the kernel and its grid),
/// and clears it. Success when there was none.
Status takeError();

/// Device memory of the default device, from the caching allocator.
Expected<void *> allocate(uint64_t bytes);
Status deallocate(void *ptr);
/// Synchronous copies between host and device memory.
Status copyToDevice(void *device, const void *host, uint64_t bytes);
/// Waits for all work on the device first, so that kernels queued on any
/// stream have written `device`.
Status copyToHost(void *host, const void *device, uint64_t bytes);

/// A device copy of `tensor`'s bytes; free it with deallocate().
inline Expected<void *> upload(const Tensor &tensor) {
  Expected<void *> device = allocate(tensor.byteSize());
  if (!device)
    return device;
  if (Status s = copyToDevice(*device, tensor.data(), tensor.byteSize()); !s) {
    (void)deallocate(*device);
    return s;
  }
  return device;
}

/// Copies `tensor.byteSize()` bytes of device memory into `tensor`.
inline Status download(const void *device, Tensor &tensor) {
  return copyToHost(tensor.data(), device, tensor.byteSize());
}

} // namespace tessera::rt::cuda

#endif // TESSERA_RUNTIME_CUDA_CUDADEVICE_H
