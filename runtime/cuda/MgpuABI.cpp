//===- MgpuABI.cpp - C entry points of MLIR's GPU host code ---------------===//
//
// The CUDA driver implementation of MgpuABI.h. Each entry point reports a
// failure to the process-wide error slot with what it was doing; copies,
// sets and launches are asynchronous on the caller's stream, so a kernel
// that faults is reported when its stream is synchronized, together with
// the last kernel queued on that stream.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/MgpuABI.h"

#include "runtime/cuda/CudaDevice.h"
#include "runtime/cuda/CudaState.h"
#include "runtime/cuda/Profiler.h"

#include <array>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

using namespace tessera::rt;
using namespace tessera::rt::cuda;

/// The driver with the default device's context current, or null after
/// recording why there is none.
static const Driver *activeDriver(const char *what) {
  CudaState &state = CudaState::get();
  Expected<const Driver *> driver = state.activate(CudaState::defaultDevice());
  if (!driver) {
    state.recordError(std::move(driver).takeStatus().within(what));
    return nullptr;
  }
  return *driver;
}

/// Records a failed driver call; true when `result` is success.
static bool succeeded(const Driver &driver, CUresult result,
                      const std::string &what) {
  if (result == CUDA_SUCCESS)
    return true;
  CudaState::get().recordError(driver.check(result, what));
  return false;
}

/// True (after counting it) when an earlier error makes device work
/// pointless.
static bool skipAfterError() {
  CudaState &state = CudaState::get();
  if (!state.failed())
    return false;
  state.skippedOperation();
  return true;
}

static std::string pointerText(const void *ptr) {
  char text[32];
  std::snprintf(text, sizeof(text), "%p", ptr);
  return text;
}

static CUdeviceptr devicePointer(const void *ptr) {
  return reinterpret_cast<CUdeviceptr>(ptr);
}

extern "C" CUmodule mgpuModuleLoad(void *data, size_t size) {
  const Driver *driver = activeDriver("loading a GPU module");
  CUmodule module = nullptr;
  if (driver)
    succeeded(*driver, driver->api().cuModuleLoadData(&module, data),
              "loading a GPU module (" + std::to_string(size) +
                  " bytes of cubin/fatbin)");
  return module;
}

extern "C" CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  const Driver *driver = activeDriver("loading a GPU module");
  if (!driver)
    return nullptr;
  char log[8192] = {};
  int options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES,
                   CU_JIT_OPTIMIZATION_LEVEL};
  void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log) - 1)),
                    reinterpret_cast<void *>(uintptr_t(optLevel))};
  CUmodule module = nullptr;
  CUresult result =
      driver->api().cuModuleLoadDataEx(&module, data, 3, options, values);
  std::string what = "compiling PTX in the CUDA driver (optimization level " +
                     std::to_string(optLevel) + ")";
  if (result != CUDA_SUCCESS && log[0])
    what += " [log: " + std::string(log) + "]";
  succeeded(*driver, result, what);
  return module;
}

extern "C" void mgpuModuleUnload(CUmodule module) {
  if (!module)
    return;
  CudaState::get().forgetModule(module);
  if (const Driver *driver = activeDriver("unloading a GPU module"))
    succeeded(*driver, driver->api().cuModuleUnload(module),
              "unloading a GPU module");
}

extern "C" CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  const Driver *driver = activeDriver("looking up a kernel");
  CUfunction function = nullptr;
  if (driver &&
      succeeded(
          *driver, driver->api().cuModuleGetFunction(&function, module, name),
          "looking up kernel '" + std::string(name) + "' in a GPU module"))
    CudaState::get().nameFunction(function, module, name);
  return function;
}

extern "C" void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                                 intptr_t gridY, intptr_t gridZ,
                                 intptr_t blockX, intptr_t blockY,
                                 intptr_t blockZ, int32_t smem, CUstream stream,
                                 void **params, void **extra,
                                 size_t /*paramsCount*/) {
  if (skipAfterError())
    return;
  CudaState &state = CudaState::get();
  CudaState::Launch launch{
      function, {gridX, gridY, gridZ}, {blockX, blockY, blockZ}, smem};
  auto what = [&] { return "launching " + state.describe(launch); };
  bool inRange = smem >= 0;
  for (int64_t dim : {gridX, gridY, gridZ, blockX, blockY, blockZ})
    inRange = inRange && dim >= 1 && dim <= int64_t(UINT32_MAX);
  if (!inRange) {
    state.recordError(Status::fail(
        what() + ": a dimension or the shared memory size is out of range"));
    return;
  }
  const Driver *driver = activeDriver("launching a kernel");
  if (!driver)
    return;
  const DriverApi &api = driver->api();

  // Above 48 KiB of dynamic shared memory a kernel must opt in.
  if (smem > state.sharedMemoryLimit(function)) {
    CUresult result = api.cuFuncSetAttribute(
        function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
    if (result != CUDA_SUCCESS) {
      int device = 0;
      int allowed = 0;
      std::string limit;
      if (api.cuDeviceGet(&device, CudaState::defaultDevice()) ==
              CUDA_SUCCESS &&
          api.cuDeviceGetAttribute(
              &allowed, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
              device) == CUDA_SUCCESS)
        limit = " (the device allows " + std::to_string(allowed) + " B)";
      succeeded(*driver, result,
                what() + ": raising its dynamic shared memory limit" + limit);
      return;
    }
    state.setSharedMemoryLimit(function, smem);
  }

  CUevent start = profiler::enabled() ? profiler::begin(api, stream) : nullptr;
  if (succeeded(*driver,
                api.cuLaunchKernel(function, unsigned(gridX), unsigned(gridY),
                                   unsigned(gridZ), unsigned(blockX),
                                   unsigned(blockY), unsigned(blockZ),
                                   unsigned(smem), stream, params, extra),
                what()))
    state.noteLaunch(stream, launch);
  if (start)
    profiler::end(api, stream, start, state.functionName(function));
}

extern "C" CUstream mgpuStreamCreate() {
  const Driver *driver = activeDriver("creating a stream");
  CUstream stream = nullptr;
  if (driver)
    succeeded(*driver,
              driver->api().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING),
              "creating a stream");
  return stream;
}

extern "C" void mgpuStreamSynchronize(CUstream stream) {
  const Driver *driver = activeDriver("synchronizing a stream");
  if (!driver)
    return;
  CudaState &state = CudaState::get();
  CUresult result = driver->api().cuStreamSynchronize(stream);
  if (result == CUDA_SUCCESS) {
    state.streamSynchronized(stream);
    if (profiler::enabled())
      profiler::collect(driver->api(), stream);
    return;
  }
  succeeded(*driver, result,
            "synchronizing stream " + pointerText(stream) +
                state.lastLaunchOn(stream));
}

extern "C" void mgpuStreamDestroy(CUstream stream) {
  // The allocator may hand out the stream's freed blocks to other streams
  // only after its work is done; compiled code synchronizes before
  // destroying anyway, so this costs nothing there.
  mgpuStreamSynchronize(stream);
  CudaState::get().forgetStream(stream);
  if (const Driver *driver = activeDriver("destroying a stream"))
    succeeded(*driver, driver->api().cuStreamDestroy_v2(stream),
              "destroying stream " + pointerText(stream));
}

extern "C" void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  if (const Driver *driver = activeDriver("ordering streams"))
    succeeded(*driver, driver->api().cuStreamWaitEvent(stream, event, 0),
              "making stream " + pointerText(stream) + " wait for an event");
}

extern "C" CUevent mgpuEventCreate() {
  const Driver *driver = activeDriver("creating an event");
  CUevent event = nullptr;
  if (driver)
    succeeded(*driver,
              driver->api().cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
              "creating an event");
  return event;
}

extern "C" void mgpuEventDestroy(CUevent event) {
  if (const Driver *driver = activeDriver("destroying an event"))
    succeeded(*driver, driver->api().cuEventDestroy_v2(event),
              "destroying an event");
}

extern "C" void mgpuEventSynchronize(CUevent event) {
  if (const Driver *driver = activeDriver("waiting for an event"))
    succeeded(*driver, driver->api().cuEventSynchronize(event),
              "waiting for an event");
}

extern "C" void mgpuEventRecord(CUevent event, CUstream stream) {
  if (const Driver *driver = activeDriver("recording an event"))
    succeeded(*driver, driver->api().cuEventRecord(event, stream),
              "recording an event on stream " + pointerText(stream));
}

extern "C" void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream,
                              bool isHostShared) {
  if (sizeBytes == 0)
    return nullptr;
  CudaState &state = CudaState::get();
  int device = CudaState::defaultDevice();
  Expected<void *> ptr =
      state.allocator(device, isHostShared).allocate(sizeBytes, stream);
  if (!ptr) {
    state.recordError(std::move(ptr).takeStatus().within(
        "allocating " + std::to_string(sizeBytes) + " bytes of " +
        (isHostShared ? "managed" : "device") + " memory on CUDA device " +
        std::to_string(device)));
    return nullptr;
  }
  return *ptr;
}

extern "C" void mgpuMemFree(void *ptr, CUstream stream) {
  if (!ptr)
    return;
  CudaState &state = CudaState::get();
  CachingAllocator *owner = state.ownerOf(ptr);
  Status s = owner ? owner->deallocate(ptr, stream)
                   : Status::fail("freeing " + pointerText(ptr) +
                                  ", which mgpuMemAlloc did not return (or "
                                  "which was freed already)");
  if (!s)
    state.recordError(std::move(s));
}

extern "C" void mgpuMemcpy(void *dst, void *src, size_t sizeBytes,
                           CUstream stream) {
  if (sizeBytes == 0 || skipAfterError())
    return;
  if (const Driver *driver = activeDriver("copying memory"))
    succeeded(*driver,
              driver->api().cuMemcpyAsync(
                  devicePointer(dst), devicePointer(src), sizeBytes, stream),
              "copying " + std::to_string(sizeBytes) + " bytes from " +
                  pointerText(src) + " to " + pointerText(dst));
}

extern "C" void mgpuMemset32(void *dst, unsigned int value, size_t count,
                             CUstream stream) {
  if (count == 0 || skipAfterError())
    return;
  if (const Driver *driver = activeDriver("setting memory"))
    succeeded(*driver,
              driver->api().cuMemsetD32Async(devicePointer(dst), value, count,
                                             stream),
              "setting " + std::to_string(count) + " 32-bit words at " +
                  pointerText(dst));
}

extern "C" void mgpuMemset16(void *dst, unsigned short value, size_t count,
                             CUstream stream) {
  if (count == 0 || skipAfterError())
    return;
  if (const Driver *driver = activeDriver("setting memory"))
    succeeded(*driver,
              driver->api().cuMemsetD16Async(devicePointer(dst), value, count,
                                             stream),
              "setting " + std::to_string(count) + " 16-bit words at " +
                  pointerText(dst));
}

extern "C" void mgpuSetDefaultDevice(int32_t device) {
  CudaState::defaultDevice() = device;
}

extern "C" uint64_t tesseraTensorMap2D(uint64_t base, int64_t rows,
                                       int64_t cols, int64_t rowBytes,
                                       int64_t boxRows, int64_t boxCols,
                                       int64_t bf16) {
  if (skipAfterError())
    return 0;
  const Driver *driver = activeDriver("making a TMA tensor map");
  if (!driver)
    return 0;
  const DriverApi &api = driver->api();
  auto what = [&] {
    return "making the TMA tensor map of a " + std::to_string(rows) + " x " +
           std::to_string(cols) + " matrix at " +
           pointerText(reinterpret_cast<void *>(base)) + " (rows " +
           std::to_string(rowBytes) + " bytes apart, boxes of " +
           std::to_string(boxRows) + " x " + std::to_string(boxCols) + ")";
  };
  if (!api.cuTensorMapEncodeTiled) {
    CudaState::get().recordError(Status::fail(
        what() + ": the CUDA driver " + driver->path() +
        " has no cuTensorMapEncodeTiled (it needs CUDA 12 or later; or "
        "compile without --wgmma-loads=tma)"));
    return 0;
  }

  // Descriptors live in device memory, 128 bytes each, in blocks that are
  // never freed: a slot is never rewritten, so a kernel still running
  // never sees its descriptor change, and the TMA unit's descriptor cache
  // never holds a stale one.
  static std::mutex mutex;
  static std::map<std::array<int64_t, 8>, uint64_t> made;
  // Per device: the block being filled and the bytes used in it.
  static std::map<int, std::pair<uint64_t, uint64_t>> blocks;
  constexpr uint64_t kBlockBytes = 64 * 1024, kMapBytes = 128;
  int device = CudaState::defaultDevice();
  std::array<int64_t, 8> key{int64_t(base), rows,    cols,  rowBytes,
                             boxRows,       boxCols, bf16, device};
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = made.find(key); it != made.end())
    return it->second;

  alignas(64) uint64_t map[kMapBytes / 8] = {};
  uint64_t dims[2] = {uint64_t(cols), uint64_t(rows)};
  uint64_t strides[1] = {uint64_t(rowBytes)};
  uint32_t box[2] = {uint32_t(boxCols), uint32_t(boxRows)};
  uint32_t elementStrides[2] = {1, 1};
  if (!succeeded(*driver,
                 api.cuTensorMapEncodeTiled(
                     map,
                     bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                          : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
                     2, reinterpret_cast<void *>(base), dims, strides, box,
                     elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                     CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                 what()))
    return 0;
  auto &[block, used] = blocks[device];
  if (!block || used + kMapBytes > kBlockBytes) {
    CUdeviceptr fresh = 0;
    if (!succeeded(*driver, api.cuMemAlloc_v2(&fresh, kBlockBytes),
                   what() + ": allocating device memory for descriptors"))
      return 0;
    block = fresh;
    used = 0;
  }
  uint64_t slot = block + used;
  // Synchronous: the descriptor is in place before any launch queued later.
  CUdeviceptr from = reinterpret_cast<uintptr_t>(map);
  if (!succeeded(*driver, api.cuMemcpy(slot, from, kMapBytes),
                 what() + ": copying it to the device"))
    return 0;
  used += kMapBytes;
  made.emplace(key, slot);
  return slot;
}

extern "C" int64_t tesseraMultiprocessorCount() {
  if (skipAfterError())
    return 1;
  // The devices, described once (queryDevices): they do not change while
  // the process runs.
  static std::mutex mutex;
  static std::vector<int> counts;
  std::lock_guard<std::mutex> lock(mutex);
  if (counts.empty()) {
    Expected<DriverInfo> info = queryDevices();
    if (!info) {
      CudaState::get().recordError(
          std::move(info).takeStatus().within("counting the multiprocessors"));
      return 1;
    }
    for (const DeviceInfo &device : info->devices)
      counts.push_back(device.multiprocessors);
  }
  int ordinal = CudaState::defaultDevice();
  if (ordinal < 0 || size_t(ordinal) >= counts.size()) {
    CudaState::get().recordError(Status::fail(
        "counting the multiprocessors: there is no CUDA device " +
        std::to_string(ordinal) + " (the driver has " +
        std::to_string(counts.size()) + ")"));
    return 1;
  }
  return counts[ordinal];
}
