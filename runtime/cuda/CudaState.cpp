//===- CudaState.cpp - Process-wide state of the CUDA runtime -------------===//

#include "runtime/cuda/CudaState.h"

namespace tessera::rt::cuda {

namespace {

/// Device or managed memory of one device, from the driver.
class DriverMemory : public MemoryBackend {
public:
  DriverMemory(int device, bool managed) : device(device), managed(managed) {}

  Expected<void *> allocate(uint64_t bytes, bool &outOfMemory) override {
    outOfMemory = false;
    Expected<const Driver *> driver = CudaState::get().activate(device);
    if (!driver)
      return std::move(driver).takeStatus();
    const DriverApi &api = (*driver)->api();
    CUdeviceptr ptr = 0;
    CUresult result =
        managed ? api.cuMemAllocManaged(&ptr, bytes, CU_MEM_ATTACH_GLOBAL)
                : api.cuMemAlloc_v2(&ptr, bytes);
    outOfMemory = result == CUDA_ERROR_OUT_OF_MEMORY;
    if (Status s = (*driver)->check(
            result, std::string(managed ? "cuMemAllocManaged" : "cuMemAlloc") +
                        "(" + std::to_string(bytes) + " bytes) on device " +
                        std::to_string(device));
        !s)
      return s;
    return reinterpret_cast<void *>(ptr);
  }

  Status release(void *ptr) override {
    Expected<const Driver *> driver = CudaState::get().activate(device);
    if (!driver)
      return std::move(driver).takeStatus();
    return (*driver)->check(
        (*driver)->api().cuMemFree_v2(reinterpret_cast<CUdeviceptr>(ptr)),
        "cuMemFree on device " + std::to_string(device));
  }

  Status synchronize() override {
    Expected<const Driver *> driver = CudaState::get().activate(device);
    if (!driver)
      return std::move(driver).takeStatus();
    return (*driver)->check((*driver)->api().cuCtxSynchronize(),
                            "synchronizing device " + std::to_string(device));
  }

private:
  int device;
  bool managed;
};

/// The driver's limit when none was set on a function.
constexpr int defaultSharedMemoryLimit = 48 << 10;

} // namespace

CudaState &CudaState::get() {
  static CudaState *state = new CudaState();
  return *state;
}

int &CudaState::defaultDevice() {
  thread_local int device = 0;
  return device;
}

Expected<const Driver *> CudaState::activate(int device) {
  Expected<Driver *> driver = Driver::process();
  if (!driver)
    return std::move(driver).takeStatus();
  thread_local CUcontext current = nullptr;
  thread_local int currentDevice = -1;
  if (current && currentDevice == device)
    return static_cast<const Driver *>(*driver);

  const DriverApi &api = (*driver)->api();
  CUcontext context = nullptr;
  {
    std::lock_guard<std::mutex> lock(contextMutex);
    auto it = contexts.find(device);
    if (it != contexts.end()) {
      context = it->second;
    } else {
      std::string what = "selecting CUDA device " + std::to_string(device);
      CUdevice handle = 0;
      if (Status s = (*driver)->check(api.cuDeviceGet(&handle, device), what);
          !s)
        return s;
      if (Status s = (*driver)->check(
              api.cuDevicePrimaryCtxRetain(&context, handle), what);
          !s)
        return s;
      contexts[device] = context;
    }
  }
  if (Status s = (*driver)->check(api.cuCtxSetCurrent(context),
                                  "making the context of CUDA device " +
                                      std::to_string(device) + " current");
      !s)
    return s;
  current = context;
  currentDevice = device;
  return static_cast<const Driver *>(*driver);
}

CachingAllocator &CudaState::allocator(int device, bool managed) {
  std::lock_guard<std::mutex> lock(allocatorMutex);
  CachingAllocator *&slot = allocators[{device, managed}];
  if (!slot)
    slot =
        new CachingAllocator(std::make_unique<DriverMemory>(device, managed));
  return *slot;
}

CachingAllocator *CudaState::ownerOf(const void *ptr) {
  std::lock_guard<std::mutex> lock(allocatorMutex);
  for (const auto &entry : allocators)
    if (entry.second->owns(ptr))
      return entry.second;
  return nullptr;
}

void CudaState::streamSynchronized(CUstream stream) {
  std::lock_guard<std::mutex> lock(allocatorMutex);
  for (const auto &entry : allocators)
    entry.second->streamSynchronized(stream);
}

Status CudaState::emptyCaches() {
  std::lock_guard<std::mutex> lock(allocatorMutex);
  Status firstError;
  for (const auto &entry : allocators)
    if (Status s = entry.second->emptyCache(); !s && firstError.ok())
      firstError = std::move(s);
  return firstError;
}

void CudaState::recordError(Status error) {
  std::lock_guard<std::mutex> lock(errorMutex);
  if (firstError.ok())
    firstError = std::move(error);
}

bool CudaState::failed() {
  std::lock_guard<std::mutex> lock(errorMutex);
  return !firstError.ok();
}

void CudaState::skippedOperation() {
  std::lock_guard<std::mutex> lock(errorMutex);
  ++operationsSkipped;
}

Status CudaState::takeError() {
  std::lock_guard<std::mutex> lock(errorMutex);
  Status error = std::move(firstError);
  firstError = Status();
  if (!error.ok() && operationsSkipped)
    error = Status::fail(
        error.error() + " (" + std::to_string(operationsSkipped) +
        " later device operation" +
        (operationsSkipped == 1 ? " was" : "s were") + " skipped)");
  operationsSkipped = 0;
  return error;
}

void CudaState::nameFunction(CUfunction function, CUmodule module,
                             std::string name) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  kernels[function] = Kernel{std::move(name), module, defaultSharedMemoryLimit};
}

void CudaState::forgetModule(CUmodule module) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  for (auto it = kernels.begin(); it != kernels.end();)
    it = it->second.module == module ? kernels.erase(it) : std::next(it);
}

std::string CudaState::functionName(CUfunction function) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  auto it = kernels.find(function);
  return it == kernels.end() ? "<unknown kernel>" : it->second.name;
}

int CudaState::sharedMemoryLimit(CUfunction function) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  auto it = kernels.find(function);
  return it == kernels.end() ? defaultSharedMemoryLimit
                             : it->second.sharedMemoryLimit;
}

void CudaState::setSharedMemoryLimit(CUfunction function, int bytes) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  auto it = kernels.find(function);
  if (it != kernels.end())
    it->second.sharedMemoryLimit = bytes;
}

std::string CudaState::describe(const Launch &launch) {
  auto dims = [](const int64_t(&d)[3]) {
    return std::to_string(d[0]) + "x" + std::to_string(d[1]) + "x" +
           std::to_string(d[2]);
  };
  std::string text = "kernel '" + functionName(launch.function) + "' (grid " +
                     dims(launch.grid) + ", block " + dims(launch.block);
  if (launch.sharedMemory)
    text +=
        ", " + std::to_string(launch.sharedMemory) + " B dynamic shared memory";
  return text + ")";
}

void CudaState::noteLaunch(CUstream stream, const Launch &launch) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  launches[stream] = launch;
}

std::string CudaState::lastLaunchOn(CUstream stream) {
  Launch launch;
  {
    std::lock_guard<std::mutex> lock(kernelMutex);
    auto it = launches.find(stream);
    if (it == launches.end())
      return "";
    launch = it->second;
  }
  return " (the last kernel queued on it: " + describe(launch) + ")";
}

void CudaState::forgetStream(CUstream stream) {
  std::lock_guard<std::mutex> lock(kernelMutex);
  launches.erase(stream);
}

} // namespace tessera::rt::cuda
