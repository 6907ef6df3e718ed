//===- CudaRuntimeTest.cpp - The CUDA device, on a fake driver ------------===//
//
// The runtime loads libtessera_fake_cuda.so (FakeCuda.cpp) instead of
// libcuda.so.1 through TESSERA_LIBCUDA, set before the first load. The
// process-wide state (allocators, the error slot) is shared by all tests
// here, so each test starts by taking any waiting error.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/CudaDevice.h"
#include "runtime/cuda/CudaDriver.h"
#include "runtime/cuda/MgpuABI.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <dlfcn.h>
#include <type_traits>
#include <vector>

using namespace tessera::rt;
using namespace tessera::rt::cuda;

namespace {

constexpr uint64_t MiB = 1024 * 1024;
constexpr int illegalAddress = 700; // CUDA_ERROR_ILLEGAL_ADDRESS
constexpr int launchFailed = 719;   // CUDA_ERROR_LAUNCH_FAILED

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

/// The control functions of the fake driver.
struct FakeCuda {
  void (*failNextLaunch)(int);
  void (*failNextSync)(int);
  void (*setMemoryLimit)(uint64_t);
  uint64_t (*bytesAllocated)();
  int (*allocationCount)();
  int (*tensorMapsEncoded)();
  int (*managedAllocations)();
  int (*launchCount)();
  int (*sharedMemoryAttributeSets)();
};

class CudaRuntime : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    setenv("TESSERA_LIBCUDA", TESSERA_FAKE_CUDA, /*overwrite=*/1);
    Status init = initialize();
    ASSERT_TRUE(init.ok()) << init.error();
    // The library the runtime loaded (dlopen of the same path shares it).
    void *handle = dlopen(TESSERA_FAKE_CUDA, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(handle, nullptr) << dlerror();
    auto get = [&](const char *name, auto &fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(handle, name));
      ASSERT_NE(fn, nullptr) << name;
    };
    get("fakeCudaFailNextLaunch", fake.failNextLaunch);
    get("fakeCudaFailNextSync", fake.failNextSync);
    get("fakeCudaSetMemoryLimit", fake.setMemoryLimit);
    get("fakeCudaBytesAllocated", fake.bytesAllocated);
    get("fakeCudaAllocationCount", fake.allocationCount);
    get("fakeCudaTensorMapsEncoded", fake.tensorMapsEncoded);
    get("fakeCudaManagedAllocations", fake.managedAllocations);
    get("fakeCudaLaunchCount", fake.launchCount);
    get("fakeCudaSharedMemoryAttributeSets", fake.sharedMemoryAttributeSets);
  }

  void SetUp() override {
    ASSERT_TRUE(fake.launchCount) << "the fake driver did not load";
    Status earlier = takeError();
    EXPECT_TRUE(earlier.ok()) << "left by an earlier test: " << earlier.error();
  }

  /// A kernel of a loaded fake module.
  CUfunction kernel(const char *name) {
    static char image[] = "fake cubin";
    CUmodule module = mgpuModuleLoad(image, sizeof(image));
    EXPECT_NE(module, nullptr);
    return mgpuModuleGetFunction(module, name);
  }

  static FakeCuda fake;
};

FakeCuda CudaRuntime::fake = {};

TEST(CudaDriver, MissingLibrarySaysSoAndSuggestsTheDriver) {
  Expected<std::unique_ptr<Driver>> driver =
      Driver::open("/nonexistent/libcuda.so.1");
  ASSERT_FALSE(driver.ok());
  const std::string &error = driver.error();
  EXPECT_TRUE(contains(error, "cannot load the CUDA driver "
                              "/nonexistent/libcuda.so.1"))
      << error;
  EXPECT_TRUE(contains(error, "No such file or directory")) << error; // dlerror
  EXPECT_TRUE(contains(error, "is an NVIDIA driver installed?")) << error;
}

TEST(CudaDriver, LibraryWithoutTheDriverApiIsRejected) {
  Expected<std::unique_ptr<Driver>> driver = Driver::open("libz.so.1");
  ASSERT_FALSE(driver.ok());
  EXPECT_TRUE(contains(driver.error(), "libz.so.1 has no cuInit"))
      << driver.error();
}

TEST(CudaDriver, ErrorsCarryTheDriversNameAndDescription) {
  Expected<std::unique_ptr<Driver>> driver = Driver::open(TESSERA_FAKE_CUDA);
  ASSERT_TRUE(driver.ok()) << driver.error();
  Status s = (*driver)->check(illegalAddress, "doing something");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "doing something: CUDA_ERROR_ILLEGAL_ADDRESS: an "
                       "illegal memory access was encountered");
  EXPECT_EQ((*driver)->describe(12345), "CUDA error 12345 (unknown to this "
                                        "driver)");
  EXPECT_TRUE((*driver)->check(0, "fine").ok());
}

TEST_F(CudaRuntime, ListsTheDevices) {
  Expected<DriverInfo> info = queryDevices();
  ASSERT_TRUE(info.ok()) << info.error();
  EXPECT_EQ(info->library, TESSERA_FAKE_CUDA);
  EXPECT_EQ(info->version, 13000);
  ASSERT_EQ(info->devices.size(), 2u);
  const DeviceInfo &d = info->devices[0];
  EXPECT_EQ(d.name, "Tessera Fake GPU 0");
  EXPECT_EQ(d.computeMajor, 9);
  EXPECT_EQ(d.computeMinor, 0);
  EXPECT_EQ(d.multiprocessors, 132);
  EXPECT_EQ(d.totalMemory, uint64_t(80) << 30);
  EXPECT_EQ(info->devices[1].name, "Tessera Fake GPU 1");
  EXPECT_EQ(info->devices[1].computeMajor, 8);
}

TEST_F(CudaRuntime, MemAllocAndMemcpyRoundTripThroughTheCache) {
  CUstream stream = mgpuStreamCreate();
  ASSERT_NE(stream, nullptr);
  std::vector<float> host(1000), back(1000);
  for (size_t i = 0; i < host.size(); ++i)
    host[i] = float(i) * 0.5f;
  size_t bytes = host.size() * sizeof(float);

  void *device = mgpuMemAlloc(bytes, stream, /*isHostShared=*/false);
  ASSERT_NE(device, nullptr);
  mgpuMemcpy(device, host.data(), bytes, stream);
  mgpuMemset32(static_cast<char *>(device) + 4 * 10, 0x3f800000u, 5, stream);
  mgpuMemcpy(back.data(), device, bytes, stream);
  mgpuStreamSynchronize(stream);
  ASSERT_TRUE(takeError().ok());
  for (size_t i = 0; i < host.size(); ++i)
    ASSERT_EQ(back[i], i >= 10 && i < 15 ? 1.0f : host[i]) << i;

  AllocatorStats before = memoryStats();
  int driverAllocations = fake.allocationCount();
  mgpuMemFree(device, stream);
  void *again = mgpuMemAlloc(bytes, stream, /*isHostShared=*/false);
  AllocatorStats after = memoryStats();
  EXPECT_EQ(again, device);
  EXPECT_EQ(after.cacheHits, before.cacheHits + 1);
  EXPECT_EQ(after.backendAllocations, before.backendAllocations);
  EXPECT_EQ(fake.allocationCount(), driverAllocations);
  mgpuMemFree(again, stream);
  mgpuStreamDestroy(stream);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, TensorMapsAreEncodedOncePerMatrixAndBox) {
  // A 200 x 83 f16 matrix in a padded copy (rows of 88 halves).
  void *device = mgpuMemAlloc(200 * 88 * 2, nullptr, /*isHostShared=*/false);
  ASSERT_NE(device, nullptr);
  uint64_t base = reinterpret_cast<uintptr_t>(device);
  int before = fake.tensorMapsEncoded();
  uint64_t a = tesseraTensorMap2D(base, 200, 83, 176, 128, 64, 0);
  uint64_t again = tesseraTensorMap2D(base, 200, 83, 176, 128, 64, 0);
  uint64_t otherBox = tesseraTensorMap2D(base, 200, 83, 176, 64, 64, 0);
  uint64_t bf16 = tesseraTensorMap2D(base, 200, 83, 176, 128, 64, 1);
  ASSERT_TRUE(takeError().ok());
  EXPECT_NE(a, 0u);
  EXPECT_EQ(a % 64, 0u);
  EXPECT_EQ(again, a);
  EXPECT_NE(otherBox, a);
  EXPECT_NE(bf16, a);
  EXPECT_NE(bf16, otherBox);
  EXPECT_EQ(fake.tensorMapsEncoded(), before + 3);

  // Rows 166 bytes apart: TMA strides are multiples of 16 bytes.
  EXPECT_EQ(tesseraTensorMap2D(base, 200, 83, 166, 128, 64, 0), 0u);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "making the TMA tensor map of a 200 x 83 "
                                      "matrix"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "rows 166 bytes apart"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "CUDA_ERROR_INVALID_VALUE"))
      << error.error();
  mgpuMemFree(device, nullptr);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, MultiprocessorCountIsTheDefaultDevices) {
  // The fake's device 0 is an sm_90 with 132 multiprocessors.
  ASSERT_EQ(defaultDevice(), 0);
  EXPECT_EQ(tesseraMultiprocessorCount(), 132);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, KernelsGetTheirArguments) {
  CUfunction addOne = kernel("fake_add_one_f32");
  Tensor t = Tensor::zeros(DType::F32, {4, 8});
  for (int i = 0; i < 32; ++i)
    t.as<float>()[i] = float(i);
  Expected<void *> device = upload(t);
  ASSERT_TRUE(device.ok()) << device.error();
  int64_t n = 32;
  void *data = *device;
  void *params[] = {&data, &n};
  mgpuLaunchKernel(addOne, 1, 1, 1, 32, 1, 1, 0, nullptr, params, nullptr, 2);
  Tensor out = Tensor::zeros(DType::F32, {4, 8});
  ASSERT_TRUE(download(*device, out).ok());
  for (int i = 0; i < 32; ++i)
    EXPECT_EQ(out.as<float>()[i], float(i) + 1) << i;
  EXPECT_TRUE(deallocate(*device).ok());
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, FailedLaunchNamesTheErrorTheKernelAndTheGrid) {
  CUfunction function = kernel("forward_kernel_3");
  fake.failNextLaunch(illegalAddress);
  mgpuLaunchKernel(function, 64, 1, 1, 128, 1, 1, 0, nullptr, nullptr, nullptr,
                   0);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error(),
            "launching kernel 'forward_kernel_3' (grid 64x1x1, block "
            "128x1x1): CUDA_ERROR_ILLEGAL_ADDRESS: an illegal memory access "
            "was encountered");
}

TEST_F(CudaRuntime, FirstErrorSkipsLaterLaunchesUntilTaken) {
  CUfunction first = kernel("first_kernel");
  CUfunction second = kernel("second_kernel");
  int launches = fake.launchCount();
  fake.failNextLaunch(launchFailed);
  mgpuLaunchKernel(first, 2, 3, 4, 32, 2, 1, 0, nullptr, nullptr, nullptr, 0);
  mgpuLaunchKernel(second, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  mgpuLaunchKernel(second, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_EQ(fake.launchCount(), launches + 1); // the others never reached it

  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "kernel 'first_kernel' (grid 2x3x4, "
                                      "block 32x2x1)"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "CUDA_ERROR_LAUNCH_FAILED"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "2 later device operations were skipped"))
      << error.error();
  EXPECT_FALSE(contains(error.error(), "second_kernel")) << error.error();

  // Taking the error clears the slot: launches run again.
  EXPECT_TRUE(takeError().ok());
  mgpuLaunchKernel(second, 1, 1, 1, 32, 1, 1, 0, nullptr, nullptr, nullptr, 0);
  EXPECT_EQ(fake.launchCount(), launches + 2);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, KernelFaultIsReportedAtSynchronizationWithTheKernel) {
  CUfunction function = kernel("attention_kernel");
  CUstream stream = mgpuStreamCreate();
  mgpuLaunchKernel(function, 8, 1, 1, 256, 1, 1, 0, stream, nullptr, nullptr,
                   0);
  fake.failNextSync(illegalAddress);
  mgpuStreamSynchronize(stream);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "synchronizing stream")) << error.error();
  EXPECT_TRUE(contains(error.error(), "CUDA_ERROR_ILLEGAL_ADDRESS"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "the last kernel queued on it: kernel "
                                      "'attention_kernel' (grid 8x1x1, block "
                                      "256x1x1)"))
      << error.error();
  mgpuStreamDestroy(stream);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, LargeDynamicSharedMemoryOptsInFirst) {
  CUfunction function = kernel("matmul_kernel");
  int sets = fake.sharedMemoryAttributeSets();
  int launches = fake.launchCount();
  // The fake, like the driver, refuses more than 48 KiB without opting in.
  mgpuLaunchKernel(function, 1, 1, 1, 128, 1, 1, 100000, nullptr, nullptr,
                   nullptr, 0);
  mgpuLaunchKernel(function, 1, 1, 1, 128, 1, 1, 64 << 10, nullptr, nullptr,
                   nullptr, 0);
  Status ok = takeError();
  EXPECT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(fake.launchCount(), launches + 2);
  EXPECT_EQ(fake.sharedMemoryAttributeSets(), sets + 1);

  mgpuLaunchKernel(function, 1, 1, 1, 128, 1, 1, 300000, nullptr, nullptr,
                   nullptr, 0);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "300000 B dynamic shared memory"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "the device allows 232448 B"))
      << error.error();
}

TEST_F(CudaRuntime, MissingKernelAndBadModuleAreReported) {
  EXPECT_EQ(kernel("missing"), nullptr);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_EQ(error.error(), "looking up kernel 'missing' in a GPU module: "
                           "CUDA_ERROR_NOT_FOUND: named symbol not found");

  char ptx[] = "bad ptx";
  EXPECT_EQ(mgpuModuleLoadJIT(ptx, 2), nullptr);
  error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "optimization level 2")) << error.error();
  EXPECT_TRUE(contains(error.error(), "ptxas fatal: fake syntax error"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "CUDA_ERROR_INVALID_PTX"))
      << error.error();
}

TEST_F(CudaRuntime, FreeingAnUnknownPointerIsAnError) {
  int x = 0;
  mgpuMemFree(&x, nullptr);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "which mgpuMemAlloc did not return"))
      << error.error();
  EXPECT_FALSE(deallocate(&x).ok());
}

TEST_F(CudaRuntime, OutOfMemoryRetriesAfterEmptyingTheCache) {
  ASSERT_TRUE(emptyCache().ok());
  fake.setMemoryLimit(fake.bytesAllocated() + 8 * MiB);
  void *cached = mgpuMemAlloc(3 * MiB, nullptr, false); // a 4 MiB segment
  ASSERT_NE(cached, nullptr);
  mgpuMemFree(cached, nullptr);
  uint64_t releases = memoryStats().backendReleases;
  // A 6 MiB segment fits only once the cached one is returned.
  void *ptr = mgpuMemAlloc(5 * MiB, nullptr, false);
  Status ok = takeError();
  EXPECT_TRUE(ok.ok()) << ok.error();
  EXPECT_NE(ptr, nullptr);
  EXPECT_EQ(memoryStats().backendReleases, releases + 1);

  EXPECT_EQ(mgpuMemAlloc(64 * MiB, nullptr, false), nullptr);
  Status error = takeError();
  ASSERT_FALSE(error.ok());
  EXPECT_TRUE(contains(error.error(), "allocating 67108864 bytes of device "
                                      "memory on CUDA device 0"))
      << error.error();
  EXPECT_TRUE(contains(error.error(), "CUDA_ERROR_OUT_OF_MEMORY: out of "
                                      "memory"))
      << error.error();
  mgpuMemFree(ptr, nullptr);
  fake.setMemoryLimit(uint64_t(1) << 30);
  EXPECT_TRUE(takeError().ok());
}

TEST_F(CudaRuntime, HostSharedMemoryIsManagedAndPooledApart) {
  int managed = fake.managedAllocations();
  void *shared = mgpuMemAlloc(1024, nullptr, /*isHostShared=*/true);
  ASSERT_NE(shared, nullptr);
  EXPECT_EQ(fake.managedAllocations(), managed + 1);
  mgpuMemFree(shared, nullptr);
  void *device = mgpuMemAlloc(1024, nullptr, /*isHostShared=*/false);
  EXPECT_NE(device, shared);
  mgpuMemFree(device, nullptr);
  EXPECT_EQ(mgpuMemAlloc(0, nullptr, false), nullptr); // nothing to allocate
  EXPECT_TRUE(takeError().ok());
}

} // namespace
