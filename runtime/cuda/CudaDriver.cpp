//===- CudaDriver.cpp - The CUDA driver API, loaded at run time -----------===//

#include "runtime/cuda/CudaDriver.h"

#include <cstdlib>
#include <dlfcn.h>

namespace tessera::rt::cuda {

/// Resolves `name` in `handle` into `entry`; false when it is missing.
template <typename Fn>
static bool resolve(void *handle, const char *name, Fn &entry) {
  entry = reinterpret_cast<Fn>(dlsym(handle, name));
  return entry != nullptr;
}

Expected<std::unique_ptr<Driver>> Driver::open(const std::string &path) {
  std::unique_ptr<Driver> driver(new Driver());
  driver->libraryPath = path;
  driver->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!driver->handle)
    return Status::fail("cannot load the CUDA driver " + path + " (" +
                        dlerror() +
                        "); is an NVIDIA driver installed? (set "
                        "TESSERA_LIBCUDA to use another library)");

  DriverApi &api = driver->entries;
  void *h = driver->handle;
  const char *missing = nullptr;
#define TESSERA_RESOLVE(NAME)                                                  \
  if (!missing && !resolve(h, #NAME, api.NAME))                                \
    missing = #NAME;
  TESSERA_RESOLVE(cuInit)
  TESSERA_RESOLVE(cuDriverGetVersion)
  TESSERA_RESOLVE(cuGetErrorName)
  TESSERA_RESOLVE(cuGetErrorString)
  TESSERA_RESOLVE(cuDeviceGetCount)
  TESSERA_RESOLVE(cuDeviceGet)
  TESSERA_RESOLVE(cuDeviceGetName)
  TESSERA_RESOLVE(cuDeviceGetAttribute)
  TESSERA_RESOLVE(cuDeviceTotalMem_v2)
  TESSERA_RESOLVE(cuDevicePrimaryCtxRetain)
  TESSERA_RESOLVE(cuCtxSetCurrent)
  TESSERA_RESOLVE(cuCtxSynchronize)
  TESSERA_RESOLVE(cuModuleLoadData)
  TESSERA_RESOLVE(cuModuleLoadDataEx)
  TESSERA_RESOLVE(cuModuleUnload)
  TESSERA_RESOLVE(cuModuleGetFunction)
  TESSERA_RESOLVE(cuFuncSetAttribute)
  TESSERA_RESOLVE(cuLaunchKernel)
  TESSERA_RESOLVE(cuMemAlloc_v2)
  TESSERA_RESOLVE(cuMemAllocManaged)
  TESSERA_RESOLVE(cuMemFree_v2)
  TESSERA_RESOLVE(cuMemcpy)
  TESSERA_RESOLVE(cuMemcpyAsync)
  TESSERA_RESOLVE(cuMemsetD32Async)
  TESSERA_RESOLVE(cuMemsetD16Async)
  TESSERA_RESOLVE(cuStreamCreate)
  TESSERA_RESOLVE(cuStreamDestroy_v2)
  TESSERA_RESOLVE(cuStreamSynchronize)
  TESSERA_RESOLVE(cuStreamWaitEvent)
  TESSERA_RESOLVE(cuEventCreate)
  TESSERA_RESOLVE(cuEventDestroy_v2)
  TESSERA_RESOLVE(cuEventRecord)
  TESSERA_RESOLVE(cuEventSynchronize)
  TESSERA_RESOLVE(cuEventElapsedTime)
#undef TESSERA_RESOLVE
  // Only kernels that load through TMA need it: tesseraTensorMap2D
  // reports a driver without it.
  resolve(h, "cuTensorMapEncodeTiled", api.cuTensorMapEncodeTiled);
  if (missing)
    return Status::fail(path + " has no " + missing +
                        " (the NVIDIA driver is too old, or this is not the "
                        "CUDA driver library)");

  if (Status s =
          driver->check(api.cuInit(0), "initializing the CUDA driver " + path);
      !s)
    return s;
  return driver;
}

Expected<Driver *> Driver::process() {
  // Opened once; neither the driver nor a failure to load it changes while
  // the process runs.
  static Expected<std::unique_ptr<Driver>> driver = [] {
    const char *override = std::getenv("TESSERA_LIBCUDA");
    return open(override && *override ? override : defaultLibrary);
  }();
  if (!driver)
    return Status::fail(driver.error());
  return driver->get();
}

std::string Driver::describe(CUresult result) const {
  const char *name = nullptr;
  const char *description = nullptr;
  // The toolkit's stub libcuda (lib64/stubs) fails everything with this
  // code and cannot name it either.
  if (result == CUDA_ERROR_STUB_LIBRARY)
    return "CUDA_ERROR_STUB_LIBRARY: the loaded libcuda is the CUDA toolkit's "
           "stub, not a driver";
  if (entries.cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    return "CUDA error " + std::to_string(result) + " (unknown to this driver)";
  std::string text = name;
  if (entries.cuGetErrorString(result, &description) == CUDA_SUCCESS &&
      description)
    text += std::string(": ") + description;
  return text;
}

Status Driver::check(CUresult result, const std::string &what) const {
  if (result == CUDA_SUCCESS)
    return {};
  return Status::fail(what + ": " + describe(result));
}

} // namespace tessera::rt::cuda
