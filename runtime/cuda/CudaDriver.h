//===- CudaDriver.h - The CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// The runtime reaches the GPU through the CUDA driver API (libcuda.so.1, part
// of the NVIDIA driver), opened with dlopen, so that one build runs on
// machines with and without a GPU and needs no CUDA toolkit to compile. The
// few driver types are declared here with the layout of cuda.h (CUDA 13);
// the entry points are resolved by the versioned names the driver exports
// (cuMemAlloc_v2, not the cuMemAlloc macro of cuda.h).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_CUDADRIVER_H
#define TESSERA_RUNTIME_CUDA_CUDADRIVER_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tessera::rt::cuda {

// Driver types, as cuda.h declares them.
using CUresult = int;
using CUdevice = int;
using CUcontext = struct CUctx_st *;
using CUmodule = struct CUmod_st *;
using CUfunction = struct CUfunc_st *;
using CUstream = struct CUstream_st *;
using CUevent = struct CUevent_st *;
using CUdeviceptr = unsigned long long;

// The enumerators this runtime passes or tests for (values of cuda.h).
enum : CUresult {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_STUB_LIBRARY = 34,
};
enum : int {
  CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
};
enum : int { CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8 };
enum : int {
  CU_JIT_ERROR_LOG_BUFFER = 5,
  CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
  CU_JIT_OPTIMIZATION_LEVEL = 7,
};
enum : unsigned { CU_STREAM_NON_BLOCKING = 0x1 };
enum : unsigned { CU_EVENT_DISABLE_TIMING = 0x2 };
enum : unsigned { CU_MEM_ATTACH_GLOBAL = 0x1 };
enum : int {
  CU_TENSOR_MAP_DATA_TYPE_FLOAT16 = 6,
  CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 = 9,
  CU_TENSOR_MAP_INTERLEAVE_NONE = 0,
  CU_TENSOR_MAP_SWIZZLE_128B = 3,
  CU_TENSOR_MAP_L2_PROMOTION_L2_256B = 3,
  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0,
};

/// The driver entry points the runtime calls, with the signatures of cuda.h
/// (its enum parameters, such as CUdevice_attribute, are ints here). Each
/// member is named after the symbol it is resolved from.
struct DriverApi {
  CUresult (*cuInit)(unsigned flags);
  CUresult (*cuDriverGetVersion)(int *version);
  CUresult (*cuGetErrorName)(CUresult error, const char **name);
  CUresult (*cuGetErrorString)(CUresult error, const char **description);

  CUresult (*cuDeviceGetCount)(int *count);
  CUresult (*cuDeviceGet)(CUdevice *device, int ordinal);
  CUresult (*cuDeviceGetName)(char *name, int length, CUdevice device);
  CUresult (*cuDeviceGetAttribute)(int *value, int attribute, CUdevice device);
  CUresult (*cuDeviceTotalMem_v2)(size_t *bytes, CUdevice device);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *context, CUdevice device);
  CUresult (*cuCtxSetCurrent)(CUcontext context);
  CUresult (*cuCtxSynchronize)();

  CUresult (*cuModuleLoadData)(CUmodule *module, const void *image);
  CUresult (*cuModuleLoadDataEx)(CUmodule *module, const void *image,
                                 unsigned numOptions, int *options,
                                 void **optionValues);
  CUresult (*cuModuleUnload)(CUmodule module);
  CUresult (*cuModuleGetFunction)(CUfunction *function, CUmodule module,
                                  const char *name);
  CUresult (*cuFuncSetAttribute)(CUfunction function, int attribute, int value);
  CUresult (*cuLaunchKernel)(CUfunction function, unsigned gridX,
                             unsigned gridY, unsigned gridZ, unsigned blockX,
                             unsigned blockY, unsigned blockZ,
                             unsigned sharedMemBytes, CUstream stream,
                             void **params, void **extra);

  CUresult (*cuMemAlloc_v2)(CUdeviceptr *ptr, size_t bytes);
  CUresult (*cuMemAllocManaged)(CUdeviceptr *ptr, size_t bytes, unsigned flags);
  CUresult (*cuMemFree_v2)(CUdeviceptr ptr);
  // With unified addressing (every 64-bit platform CUDA 13 supports) these
  // take host and device pointers alike and infer the direction.
  CUresult (*cuMemcpy)(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
  CUresult (*cuMemcpyAsync)(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                            CUstream stream);
  CUresult (*cuMemsetD32Async)(CUdeviceptr dst, unsigned value, size_t count,
                               CUstream stream);
  CUresult (*cuMemsetD16Async)(CUdeviceptr dst, unsigned short value,
                               size_t count, CUstream stream);

  CUresult (*cuStreamCreate)(CUstream *stream, unsigned flags);
  CUresult (*cuStreamDestroy_v2)(CUstream stream);
  CUresult (*cuStreamSynchronize)(CUstream stream);
  CUresult (*cuStreamWaitEvent)(CUstream stream, CUevent event, unsigned flags);
  CUresult (*cuEventCreate)(CUevent *event, unsigned flags);
  CUresult (*cuEventDestroy_v2)(CUevent event);
  CUresult (*cuEventRecord)(CUevent event, CUstream stream);
  CUresult (*cuEventSynchronize)(CUevent event);
  CUresult (*cuEventElapsedTime)(float *ms, CUevent start, CUevent end);

  /// Optional (CUDA 12 and later; null where the driver lacks it): a TMA
  /// descriptor (CUtensorMap, 128 bytes aligned to 64) of a tiled tensor.
  /// The enum parameters (data type, interleave, swizzle, L2 promotion,
  /// out-of-bounds fill) are ints here.
  CUresult (*cuTensorMapEncodeTiled)(void *tensorMap, int dataType,
                                     uint32_t rank, void *globalAddress,
                                     const uint64_t *globalDim,
                                     const uint64_t *globalStrides,
                                     const uint32_t *boxDim,
                                     const uint32_t *elementStrides,
                                     int interleave, int swizzle,
                                     int l2Promotion, int oobFill);
};

/// An opened and initialized CUDA driver.
class Driver {
public:
  /// The library opened when TESSERA_LIBCUDA is not set.
  static constexpr const char *defaultLibrary = "libcuda.so.1";

  /// Opens the driver library at `path`, resolves every entry point and
  /// calls cuInit. Fails with a message that names the library (and, when
  /// it cannot be opened, says that the NVIDIA driver may be missing).
  static Expected<std::unique_ptr<Driver>> open(const std::string &path);

  /// The process's driver: $TESSERA_LIBCUDA, else libcuda.so.1, opened on
  /// first use. A failure is remembered and returned again.
  static Expected<Driver *> process();

  Driver(const Driver &) = delete;
  Driver &operator=(const Driver &) = delete;

  const DriverApi &api() const { return entries; }
  const std::string &path() const { return libraryPath; }

  /// "CUDA_ERROR_OUT_OF_MEMORY: out of memory" (the driver's name and
  /// description of `result`).
  std::string describe(CUresult result) const;
  /// Success, or "WHAT: NAME: DESCRIPTION".
  Status check(CUresult result, const std::string &what) const;

private:
  Driver() = default;
  /// Never closed: contexts, modules and allocations of the driver may be
  /// in use until the process exits.
  void *handle = nullptr;
  std::string libraryPath;
  DriverApi entries = {};
};

} // namespace tessera::rt::cuda

#endif // TESSERA_RUNTIME_CUDA_CUDADRIVER_H
