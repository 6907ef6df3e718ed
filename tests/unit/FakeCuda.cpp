//===- FakeCuda.cpp - A CUDA driver on host memory, for the unit tests ----===//
//
// libtessera_fake_cuda.so exports the driver entry points that the runtime
// resolves (runtime/cuda/CudaDriver.cpp), with the signatures and error codes
// of cuda.h, so that the CUDA runtime is tested on machines without a GPU
// (TESSERA_LIBCUDA points the runtime at it).
//
// It has two devices, "Tessera Fake GPU 0" (sm_90, 132 SMs, 80 GiB) and
// "Tessera Fake GPU 1" (sm_80, 108 SMs, 40 GiB). Device memory is host
// memory, so copies are memcpy. One kernel does something:
// `fake_add_one_f32(float *data, int64_t n)` adds 1 to n floats; every
// launch is recorded. The `fakeCuda*` functions let a test fail the next
// launch or synchronization with a chosen error, limit memory, and inspect
// what happened.
//
// FAKE_CUDA_MULTIPROCESSORS=N makes the devices report N multiprocessors.
//
// With FAKE_CUDA_EXECUTE=1 the fake runs kernels for real: modules must be
// PTX text, which PtxSim.cpp parses when the module is loaded and interprets
// at each launch (on FAKE_CUDA_WORKERS host threads, default: all cores).
// A kernel that reads or writes outside an allocation, or misaligned,
// fails its launch with CUDA_ERROR_ILLEGAL_ADDRESS or
// CUDA_ERROR_MISALIGNED_ADDRESS, and the fake prints the kernel, thread
// and PTX line to stderr.
//
// FAKE_CUDA_CHECK_WRITES=1 (with FAKE_CUDA_EXECUTE=1) fails a launch with
// CUDA_ERROR_LAUNCH_FAILED when two of its blocks store to the same byte of
// global memory (plain and vector stores; atom and red may share), which
// the interpreter's blocks, finishing about in id order, would otherwise
// hide: the fake prints both blocks, the address and the PTX line of the
// second store. Reads are not checked (a block reading what another
// stores, in whatever order), and stores that a lock or flag orders are
// reported too. It costs 2 KiB of host memory per 4 KiB page stored to,
// for the duration of the launch.
//
// cuTensorMapEncodeTiled writes tensor maps in the interpreter's own
// encoding (ptxsim::encodeTiledTensorMap), which its cp.async.bulk.tensor
// reads; invalid arguments fail with CUDA_ERROR_INVALID_VALUE and a line on
// stderr saying which.
//
//===----------------------------------------------------------------------===//

#include "PtxSim.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>

namespace {

using CUresult = int;
using CUdeviceptr = unsigned long long;
using cuuint32_t = uint32_t;
using cuuint64_t = uint64_t;

/// cuda.h's opaque tensor map.
struct alignas(64) CUtensorMap {
  cuuint64_t opaque[16];
};
// cuda.h's CUtensorMapDataType, CUtensorMapInterleave, CUtensorMapSwizzle,
// CUtensorMapL2promotion and CUtensorMapFloatOOBfill: C enums, passed as
// int.
using CUtensorMapDataType = int;
using CUtensorMapInterleave = int;
using CUtensorMapSwizzle = int;
using CUtensorMapL2promotion = int;
using CUtensorMapFloatOOBfill = int;

// Error codes of cuda.h, with the driver's names and descriptions.
enum : CUresult {
  CUDA_SUCCESS = 0,
  CUDA_ERROR_INVALID_VALUE = 1,
  CUDA_ERROR_OUT_OF_MEMORY = 2,
  CUDA_ERROR_INVALID_DEVICE = 101,
  CUDA_ERROR_INVALID_IMAGE = 200,
  CUDA_ERROR_INVALID_PTX = 218,
  CUDA_ERROR_INVALID_HANDLE = 400,
  CUDA_ERROR_NOT_FOUND = 500,
  CUDA_ERROR_ILLEGAL_ADDRESS = 700,
  CUDA_ERROR_MISALIGNED_ADDRESS = 716,
  CUDA_ERROR_LAUNCH_FAILED = 719,
};

struct ErrorText {
  CUresult code;
  const char *name;
  const char *description;
};
constexpr ErrorText errorTexts[] = {
    {CUDA_SUCCESS, "CUDA_SUCCESS", "no error"},
    {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE",
     "invalid device ordinal"},
    {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE",
     "device kernel image is invalid"},
    {CUDA_ERROR_INVALID_PTX, "CUDA_ERROR_INVALID_PTX",
     "a PTX JIT compilation failed"},
    {CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE",
     "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
    {CUDA_ERROR_MISALIGNED_ADDRESS, "CUDA_ERROR_MISALIGNED_ADDRESS",
     "misaligned address"},
    {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED",
     "unspecified launch failure"},
};

struct Device {
  const char *name;
  int major, minor, multiprocessors, sharedMemoryOptIn;
  size_t memory;
};
constexpr Device devices[] = {
    {"Tessera Fake GPU 0", 9, 0, 132, 232448, size_t(80) << 30},
    {"Tessera Fake GPU 1", 8, 0, 108, 166912, size_t(40) << 30},
};
constexpr int deviceCount = 2;

struct Module {
  /// The parsed PTX, with FAKE_CUDA_EXECUTE=1.
  std::unique_ptr<ptxsim::Module, void (*)(ptxsim::Module *)> ptx{
      nullptr, ptxsim::destroy};
};
struct Stream {};
struct Event {};
struct Function {
  std::string name;
  int maxDynamicSharedMemory = 48 << 10;
  const ptxsim::Module *ptx = nullptr;
};

/// What the fake has seen and what it was told to do.
struct State {
  std::mutex mutex;
  std::map<CUdeviceptr, size_t> allocations;
  std::map<CUdeviceptr, void *> shadows;
  std::map<std::string, int> launchesByKernel;
  uint64_t bytesAllocated = 0;
  uint64_t memoryLimit = uint64_t(1) << 30;
  int managedAllocations = 0;
  int launches = 0;
  /// Bytes copied from host to device memory and back (FAKE_CUDA_SUMMARY).
  uint64_t bytesUp = 0, bytesDown = 0;
  int sharedMemoryAttributeSets = 0;
  int tensorMapsEncoded = 0;
  /// PTX instructions interpreted (FAKE_CUDA_EXECUTE=1).
  uint64_t instructions = 0;
  CUresult nextLaunchResult = CUDA_SUCCESS;
  CUresult nextSyncResult = CUDA_SUCCESS;
};

State &state() {
  static State *s = new State();
  return *s;
}

CUresult takeSyncResult() {
  std::lock_guard<std::mutex> lock(state().mutex);
  CUresult result = state().nextSyncResult;
  state().nextSyncResult = CUDA_SUCCESS;
  return result;
}

/// With FAKE_CUDA_GUARD=1, device memory is mapped twice: the address
/// handed out is inaccessible, so host code that dereferences a device
/// pointer faults at once; the fake itself copies through a second,
/// writable mapping of the same pages.
bool guarded() {
  static bool on = [] {
    const char *v = std::getenv("FAKE_CUDA_GUARD");
    return v && std::strcmp(v, "1") == 0;
  }();
  return on;
}

size_t pageRound(size_t bytes) {
  size_t page = size_t(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}

CUresult allocate(CUdeviceptr *ptr, size_t bytes, bool managed) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!ptr || bytes == 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (s.bytesAllocated + bytes > s.memoryLimit)
    return CUDA_ERROR_OUT_OF_MEMORY;
  void *memory = nullptr;
  if (guarded() && !managed) {
    size_t size = pageRound(bytes);
    int fd = memfd_create("fake-cuda", 0);
    if (fd < 0 || ftruncate(fd, off_t(size)) != 0)
      return CUDA_ERROR_OUT_OF_MEMORY;
    memory = mmap(nullptr, size, PROT_NONE, MAP_SHARED, fd, 0);
    void *shadow = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (memory == MAP_FAILED || shadow == MAP_FAILED)
      return CUDA_ERROR_OUT_OF_MEMORY;
    s.shadows[reinterpret_cast<CUdeviceptr>(memory)] = shadow;
  } else {
    memory = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  }
  if (!memory)
    return CUDA_ERROR_OUT_OF_MEMORY;
  *ptr = reinterpret_cast<CUdeviceptr>(memory);
  s.allocations[*ptr] = bytes;
  s.bytesAllocated += bytes;
  s.managedAllocations += managed;
  return CUDA_SUCCESS;
}

/// Where the fake reads and writes `ptr`: its writable twin for guarded
/// device memory, else `ptr` itself (host or managed memory).
void *access(CUdeviceptr ptr) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.allocations.upper_bound(ptr);
  if (it != s.allocations.begin()) {
    --it;
    auto shadow = s.shadows.find(it->first);
    if (shadow != s.shadows.end() && ptr < it->first + pageRound(it->second))
      return static_cast<char *>(shadow->second) + (ptr - it->first);
  }
  return reinterpret_cast<void *>(ptr);
}

/// The allocation holding `address` (for the interpreter: with its host
/// address).
bool resolve(uint64_t address, ptxsim::Allocation &out) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.allocations.upper_bound(address);
  if (it == s.allocations.begin())
    return false;
  --it;
  if (address >= it->first + it->second)
    return false;
  auto shadow = s.shadows.find(it->first);
  out.base = it->first;
  out.size = it->second;
  out.host = shadow != s.shadows.end()
                 ? static_cast<char *>(shadow->second)
                 : reinterpret_cast<char *>(it->first);
  return true;
}

/// Whether `ptr` lies in an allocation of the fake.
bool isDevice(CUdeviceptr ptr) {
  ptxsim::Allocation allocation;
  return resolve(ptr, allocation);
}

bool executing() {
  static bool on = [] {
    const char *v = std::getenv("FAKE_CUDA_EXECUTE");
    return v && std::strcmp(v, "1") == 0;
  }();
  return on;
}

bool checkingWrites() {
  static bool on = [] {
    const char *v = std::getenv("FAKE_CUDA_CHECK_WRITES");
    return v && std::strcmp(v, "1") == 0;
  }();
  return on;
}

unsigned workers() {
  static unsigned n = [] {
    const char *v = std::getenv("FAKE_CUDA_WORKERS");
    unsigned w = v ? unsigned(std::atoi(v)) : std::thread::hardware_concurrency();
    return std::max(1u, w);
  }();
  return n;
}

CUresult loadModule(void **module, const void *image, std::string &log) {
  if (!module || !image)
    return CUDA_ERROR_INVALID_VALUE;
  const char *text = static_cast<const char *>(image);
  if (std::strncmp(text, "bad", 3) == 0) {
    log = "ptxas fatal: fake syntax error";
    return CUDA_ERROR_INVALID_IMAGE;
  }
  auto m = std::make_unique<Module>();
  if (executing()) {
    uint32_t magic;
    std::memcpy(&magic, image, 4);
    if (magic == 0xBA55ED50u || magic == 0x464c457fu) { // fatbin, ELF
      log = "fake-cuda executes PTX only: compile with --gpu-code=ptx";
    } else {
      m->ptx.reset(ptxsim::parse(text, log));
    }
    if (!m->ptx) {
      std::fprintf(stderr, "fake-cuda: cannot run this module: %s\n",
                   log.c_str());
      return CUDA_ERROR_INVALID_IMAGE;
    }
  }
  *module = m.release();
  return CUDA_SUCCESS;
}

} // namespace

extern "C" {

// --- The driver API -------------------------------------------------------

/// With FAKE_CUDA_SUMMARY=1, prints at exit how many launches the process
/// made, of how many distinct kernels, and how many bytes it copied between
/// host and device.
void printSummary() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::fprintf(stderr,
               "fake-cuda: %d launches of %zu kernels, %llu bytes to the "
               "device, %llu bytes to the host\n",
               s.launches, s.launchesByKernel.size(),
               (unsigned long long)s.bytesUp, (unsigned long long)s.bytesDown);
  if (executing())
    std::fprintf(stderr, "fake-cuda: %llu PTX instructions interpreted\n",
                 (unsigned long long)s.instructions);
}

CUresult cuInit(unsigned flags) {
  static bool summary = [] {
    const char *v = std::getenv("FAKE_CUDA_SUMMARY");
    if (v && std::strcmp(v, "1") == 0)
      std::atexit(printSummary);
    return true;
  }();
  (void)summary;
  return flags == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDriverGetVersion(int *version) {
  *version = 13000;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **name) {
  for (const ErrorText &e : errorTexts)
    if (e.code == error) {
      *name = e.name;
      return CUDA_SUCCESS;
    }
  *name = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuGetErrorString(CUresult error, const char **description) {
  for (const ErrorText &e : errorTexts)
    if (e.code == error) {
      *description = e.description;
      return CUDA_SUCCESS;
    }
  *description = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

CUresult cuDeviceGetCount(int *count) {
  *count = deviceCount;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGet(int *device, int ordinal) {
  if (ordinal < 0 || ordinal >= deviceCount)
    return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int length, int device) {
  if (device < 0 || device >= deviceCount || length <= 0)
    return CUDA_ERROR_INVALID_VALUE;
  std::strncpy(name, devices[device].name, size_t(length));
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *value, int attribute, int device) {
  if (device < 0 || device >= deviceCount)
    return CUDA_ERROR_INVALID_DEVICE;
  const Device &d = devices[device];
  switch (attribute) {
  case 16: // CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT
    // FAKE_CUDA_MULTIPROCESSORS=N: a smaller GPU, so that the persistent
    // kernels' blocks each walk several tiles in small tests.
    if (const char *n = std::getenv("FAKE_CUDA_MULTIPROCESSORS"))
      *value = std::max(1, std::atoi(n));
    else
      *value = d.multiprocessors;
    return CUDA_SUCCESS;
  case 75: // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    *value = d.major;
    return CUDA_SUCCESS;
  case 76: // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
    *value = d.minor;
    return CUDA_SUCCESS;
  case 97: // CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
    *value = d.sharedMemoryOptIn;
    return CUDA_SUCCESS;
  default:
    return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, int device) {
  if (device < 0 || device >= deviceCount)
    return CUDA_ERROR_INVALID_DEVICE;
  *bytes = devices[device].memory;
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRetain(void **context, int device) {
  if (device < 0 || device >= deviceCount)
    return CUDA_ERROR_INVALID_DEVICE;
  *context = reinterpret_cast<void *>(uintptr_t(0x1000 + device));
  return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(void *context) {
  return context ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuCtxSynchronize() { return takeSyncResult(); }

CUresult cuModuleLoadData(void **module, const void *image) {
  std::string log;
  return loadModule(module, image, log);
}

CUresult cuModuleLoadDataEx(void **module, const void *image,
                            unsigned numOptions, int *options,
                            void **optionValues) {
  std::string log;
  CUresult result = loadModule(module, image, log);
  size_t capacity = 0;
  for (unsigned i = 0; i < numOptions; ++i)
    if (options[i] == 6) // CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES
      capacity = reinterpret_cast<uintptr_t>(optionValues[i]);
  if (result != CUDA_SUCCESS)
    for (unsigned i = 0; i < numOptions; ++i)
      if (options[i] == 5) { // CU_JIT_ERROR_LOG_BUFFER
        // Without a size option, the buffer holds the log (as cuda.h says
        // it must, at its default size).
        size_t n = capacity ? capacity : log.size() + 1;
        char *buffer = static_cast<char *>(optionValues[i]);
        std::strncpy(buffer, log.c_str(), n - 1);
        buffer[n - 1] = 0;
      }
  return result == CUDA_ERROR_INVALID_IMAGE ? CUDA_ERROR_INVALID_PTX : result;
}

CUresult cuModuleUnload(void *module) {
  if (!module)
    return CUDA_ERROR_INVALID_HANDLE;
  delete static_cast<Module *>(module);
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(void **function, void *module, const char *name) {
  if (!module)
    return CUDA_ERROR_INVALID_HANDLE;
  if (std::strcmp(name, "missing") == 0)
    return CUDA_ERROR_NOT_FOUND;
  const ptxsim::Module *ptx = static_cast<Module *>(module)->ptx.get();
  if (ptx && !ptxsim::hasKernel(*ptx, name))
    return CUDA_ERROR_NOT_FOUND;
  *function = new Function{name, 48 << 10, ptx};
  return CUDA_SUCCESS;
}

CUresult cuFuncSetAttribute(void *function, int attribute, int value) {
  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, up to device 0's limit.
  if (!function || attribute != 8 || value < 0 ||
      value > devices[0].sharedMemoryOptIn)
    return CUDA_ERROR_INVALID_VALUE;
  static_cast<Function *>(function)->maxDynamicSharedMemory = value;
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().sharedMemoryAttributeSets;
  return CUDA_SUCCESS;
}

CUresult cuLaunchKernel(void *function, unsigned gridX, unsigned gridY,
                        unsigned gridZ, unsigned blockX, unsigned blockY,
                        unsigned blockZ, unsigned sharedMemBytes, void *stream,
                        void **params, void **extra) {
  if (!function)
    return CUDA_ERROR_INVALID_HANDLE;
  auto *f = static_cast<Function *>(function);
  if (int64_t(sharedMemBytes) > f->maxDynamicSharedMemory)
    return CUDA_ERROR_INVALID_VALUE;
  State &s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    ++s.launches;
    ++s.launchesByKernel[f->name];
    if (CUresult result = s.nextLaunchResult) {
      s.nextLaunchResult = CUDA_SUCCESS;
      return result;
    }
  }
  if (f->ptx) {
    ptxsim::LaunchResult r = ptxsim::launch(
        *f->ptx, f->name, {gridX, gridY, gridZ}, {blockX, blockY, blockZ},
        sharedMemBytes, params, resolve, workers(), checkingWrites());
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.instructions += r.instructions;
    }
    if (r.failure != ptxsim::Failure::None) {
      std::fprintf(stderr, "fake-cuda: %s\n", r.message.c_str());
      return r.failure == ptxsim::Failure::IllegalAddress
                 ? CUDA_ERROR_ILLEGAL_ADDRESS
             : r.failure == ptxsim::Failure::MisalignedAddress
                 ? CUDA_ERROR_MISALIGNED_ADDRESS
                 : CUDA_ERROR_LAUNCH_FAILED;
    }
    return CUDA_SUCCESS;
  }
  if (f->name == "fake_add_one_f32") {
    auto *data = static_cast<float *>(
        access(reinterpret_cast<CUdeviceptr>(*static_cast<float **>(params[0]))));
    int64_t n = *static_cast<int64_t *>(params[1]);
    for (int64_t i = 0; i < n; ++i)
      data[i] += 1.0f;
  }
  return CUDA_SUCCESS;
}

CUresult cuTensorMapEncodeTiled(CUtensorMap *tensorMap,
                                CUtensorMapDataType tensorDataType,
                                cuuint32_t tensorRank, void *globalAddress,
                                const cuuint64_t *globalDim,
                                const cuuint64_t *globalStrides,
                                const cuuint32_t *boxDim,
                                const cuuint32_t *elementStrides,
                                CUtensorMapInterleave interleave,
                                CUtensorMapSwizzle swizzle,
                                CUtensorMapL2promotion l2Promotion,
                                CUtensorMapFloatOOBfill oobFill) {
  std::string error = ptxsim::encodeTiledTensorMap(
      tensorMap, unsigned(tensorDataType), tensorRank, globalAddress,
      globalDim, globalStrides, boxDim, elementStrides, unsigned(interleave),
      unsigned(swizzle), unsigned(l2Promotion), unsigned(oobFill));
  if (!error.empty()) {
    std::fprintf(stderr, "fake-cuda: cuTensorMapEncodeTiled: %s\n",
                 error.c_str());
    return CUDA_ERROR_INVALID_VALUE;
  }
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().tensorMapsEncoded;
  return CUDA_SUCCESS;
}

CUresult cuMemAlloc_v2(CUdeviceptr *ptr, size_t bytes) {
  return allocate(ptr, bytes, /*managed=*/false);
}

CUresult cuMemAllocManaged(CUdeviceptr *ptr, size_t bytes, unsigned flags) {
  return flags == 1 ? allocate(ptr, bytes, /*managed=*/true)
                    : CUDA_ERROR_INVALID_VALUE;
}

CUresult cuMemFree_v2(CUdeviceptr ptr) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.allocations.find(ptr);
  if (it == s.allocations.end())
    return CUDA_ERROR_INVALID_VALUE;
  s.bytesAllocated -= it->second;
  auto shadow = s.shadows.find(ptr);
  if (shadow != s.shadows.end()) {
    munmap(reinterpret_cast<void *>(ptr), pageRound(it->second));
    munmap(shadow->second, pageRound(it->second));
    s.shadows.erase(shadow);
  } else {
    std::free(reinterpret_cast<void *>(ptr));
  }
  s.allocations.erase(it);
  return CUDA_SUCCESS;
}

CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t bytes) {
  bool toDevice = isDevice(dst), fromDevice = isDevice(src);
  bool up = toDevice && !fromDevice;
  bool down = !toDevice && fromDevice;
  {
    std::lock_guard<std::mutex> lock(state().mutex);
    state().bytesUp += up ? bytes : 0;
    state().bytesDown += down ? bytes : 0;
  }
  std::memmove(access(dst), access(src), bytes);
  return CUDA_SUCCESS;
}

CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t bytes,
                       void *stream) {
  return cuMemcpy(dst, src, bytes);
}

CUresult cuMemsetD32Async(CUdeviceptr dst, unsigned value, size_t count,
                          void *stream) {
  auto *words = static_cast<uint32_t *>(access(dst));
  for (size_t i = 0; i < count; ++i)
    words[i] = value;
  return CUDA_SUCCESS;
}

CUresult cuMemsetD16Async(CUdeviceptr dst, unsigned short value, size_t count,
                          void *stream) {
  auto *halves = static_cast<uint16_t *>(access(dst));
  for (size_t i = 0; i < count; ++i)
    halves[i] = value;
  return CUDA_SUCCESS;
}

CUresult cuStreamCreate(void **stream, unsigned flags) {
  *stream = new Stream();
  return CUDA_SUCCESS;
}

CUresult cuStreamDestroy_v2(void *stream) {
  if (!stream)
    return CUDA_ERROR_INVALID_HANDLE;
  delete static_cast<Stream *>(stream);
  return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(void *stream) { return takeSyncResult(); }

CUresult cuStreamWaitEvent(void *stream, void *event, unsigned flags) {
  return event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuEventCreate(void **event, unsigned flags) {
  *event = new Event();
  return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(void *event) {
  if (!event)
    return CUDA_ERROR_INVALID_HANDLE;
  delete static_cast<Event *>(event);
  return CUDA_SUCCESS;
}

CUresult cuEventRecord(void *event, void *stream) {
  return event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

CUresult cuEventSynchronize(void *event) {
  return event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

/// Every timed span takes 1 microsecond on the fake.
CUresult cuEventElapsedTime(float *ms, void *start, void *end) {
  if (!ms || !start || !end)
    return CUDA_ERROR_INVALID_HANDLE;
  *ms = 0.001f;
  return CUDA_SUCCESS;
}

// --- Control of the fake, for the tests -----------------------------------

/// The next launch fails with `result` (without running).
void fakeCudaFailNextLaunch(CUresult result) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().nextLaunchResult = result;
}

/// The next stream or context synchronization fails with `result`, as an
/// asynchronous fault of a kernel would.
void fakeCudaFailNextSync(CUresult result) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().nextSyncResult = result;
}

/// Allocations that would bring the total above `bytes` fail with
/// CUDA_ERROR_OUT_OF_MEMORY.
void fakeCudaSetMemoryLimit(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().memoryLimit = bytes;
}

uint64_t fakeCudaBytesAllocated() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().bytesAllocated;
}

int fakeCudaAllocationCount() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return int(state().allocations.size());
}

int fakeCudaManagedAllocations() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().managedAllocations;
}

int fakeCudaLaunchCount() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().launches;
}

int fakeCudaSharedMemoryAttributeSets() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().sharedMemoryAttributeSets;
}

/// Tensor maps cuTensorMapEncodeTiled wrote (failed calls not counted).
int fakeCudaTensorMapsEncoded() {
  std::lock_guard<std::mutex> lock(state().mutex);
  return state().tensorMapsEncoded;
}

} // extern "C"
