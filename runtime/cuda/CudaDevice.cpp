//===- CudaDevice.cpp - The runtime's interface to the CUDA device --------===//

#include "runtime/cuda/CudaDevice.h"

#include "runtime/cuda/CudaState.h"

namespace tessera::rt::cuda {

Expected<DriverInfo> queryDevices() {
  Expected<Driver *> driver = Driver::process();
  if (!driver)
    return std::move(driver).takeStatus();
  const Driver &d = **driver;
  const DriverApi &api = d.api();
  DriverInfo info;
  info.library = d.path();
  if (Status s = d.check(api.cuDriverGetVersion(&info.version),
                         "querying the CUDA driver version");
      !s)
    return s;
  int count = 0;
  if (Status s = d.check(api.cuDeviceGetCount(&count), "counting CUDA devices");
      !s)
    return s;
  for (int ordinal = 0; ordinal < count; ++ordinal) {
    std::string what = "querying CUDA device " + std::to_string(ordinal);
    DeviceInfo device;
    device.ordinal = ordinal;
    CUdevice handle = 0;
    char name[256] = {};
    size_t memory = 0;
    Status s = d.check(api.cuDeviceGet(&handle, ordinal), what);
    if (s)
      s = d.check(api.cuDeviceGetName(name, sizeof(name) - 1, handle), what);
    if (s)
      s = d.check(api.cuDeviceTotalMem_v2(&memory, handle), what);
    if (s)
      s = d.check(api.cuDeviceGetAttribute(
                      &device.computeMajor,
                      CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle),
                  what);
    if (s)
      s = d.check(api.cuDeviceGetAttribute(
                      &device.computeMinor,
                      CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle),
                  what);
    if (s)
      s = d.check(api.cuDeviceGetAttribute(
                      &device.multiprocessors,
                      CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, handle),
                  what);
    if (!s)
      return s;
    device.name = name;
    device.totalMemory = memory;
    info.devices.push_back(std::move(device));
  }
  return info;
}

Status initialize() {
  Expected<const Driver *> driver =
      CudaState::get().activate(CudaState::defaultDevice());
  return driver ? Status() : std::move(driver).takeStatus();
}

int defaultDevice() { return CudaState::defaultDevice(); }

void setDefaultDevice(int device) { CudaState::defaultDevice() = device; }

AllocatorStats memoryStats() {
  return CudaState::get()
      .allocator(CudaState::defaultDevice(), /*managed=*/false)
      .stats();
}

Status emptyCache() { return CudaState::get().emptyCaches(); }

Status takeError() { return CudaState::get().takeError(); }

Expected<void *> allocate(uint64_t bytes) {
  int device = CudaState::defaultDevice();
  Expected<void *> ptr =
      CudaState::get().allocator(device, /*managed=*/false).allocate(bytes);
  if (!ptr)
    return std::move(ptr).takeStatus().within(
        "allocating " + std::to_string(bytes) + " bytes on CUDA device " +
        std::to_string(device));
  return ptr;
}

Status deallocate(void *ptr) {
  CachingAllocator *owner = CudaState::get().ownerOf(ptr);
  if (!owner)
    return Status::fail("freeing device memory that the CUDA runtime did not "
                        "allocate (or freed already)");
  return owner->deallocate(ptr);
}

/// Copies with cuMemcpy (the direction follows from unified addressing).
static Status copy(void *dst, const void *src, uint64_t bytes,
                   const std::string &what, bool synchronizeFirst) {
  Expected<const Driver *> driver =
      CudaState::get().activate(CudaState::defaultDevice());
  if (!driver)
    return std::move(driver).takeStatus();
  const DriverApi &api = (*driver)->api();
  if (synchronizeFirst)
    if (Status s = (*driver)->check(api.cuCtxSynchronize(),
                                    "waiting for the device before " + what);
        !s)
      return s;
  return (*driver)->check(api.cuMemcpy(reinterpret_cast<CUdeviceptr>(dst),
                                       reinterpret_cast<CUdeviceptr>(src),
                                       bytes),
                          what);
}

Status copyToDevice(void *device, const void *host, uint64_t bytes) {
  return copy(device, host, bytes,
              "copying " + std::to_string(bytes) + " bytes to the device",
              /*synchronizeFirst=*/false);
}

Status copyToHost(void *host, const void *device, uint64_t bytes) {
  return copy(host, device, bytes,
              "copying " + std::to_string(bytes) + " bytes from the device",
              /*synchronizeFirst=*/true);
}

} // namespace tessera::rt::cuda
