//===- MgpuABI.h - C entry points of MLIR's GPU host code -------*- C++ -*-===//
//
// The functions that host code lowered by MLIR's `gpu-to-llvm` (and the LLVM
// translation of gpu.binary / gpu.launch_func) calls, with the signatures of
// MLIR 22's declarations:
//
//   ptr  @mgpuModuleLoad(ptr, i64)              ; cubin or fatbin
//   ptr  @mgpuModuleLoadJIT(ptr, i32)           ; PTX, optimization level
//   void @mgpuModuleUnload(ptr)
//   ptr  @mgpuModuleGetFunction(ptr, ptr)
//   void @mgpuLaunchKernel(ptr, i64 x6, i32, ptr, ptr, ptr, i64)
//   ptr  @mgpuStreamCreate()   void @mgpuStreamDestroy(ptr)
//   void @mgpuStreamSynchronize(ptr)   void @mgpuStreamWaitEvent(ptr, ptr)
//   ptr  @mgpuEventCreate()    void @mgpuEventDestroy(ptr)
//   void @mgpuEventSynchronize(ptr)    void @mgpuEventRecord(ptr, ptr)
//   ptr  @mgpuMemAlloc(i64, ptr, i8)   void @mgpuMemFree(ptr, ptr)
//   void @mgpuMemcpy(ptr, ptr, i64, ptr)
//   void @mgpuMemset32(ptr, i32, i64, ptr)
//   void @mgpuMemset16(ptr, i16, i64, ptr)
//   void @mgpuSetDefaultDevice(i32)
//
// and one of Tessera's own, which the sm_90a matmul kernels that load
// through TMA (`--wgmma-loads=tma`) call before their launch:
//
//   i64  @tesseraTensorMap2D(i64, i64, i64, i64, i64, i64, i64)
//   i64  @tesseraMultiprocessorCount()
//
// (checked against the output of mlir-opt/mlir-translate 22.1.8 and
// mlir/lib/ExecutionEngine/CudaRuntimeWrappers.cpp).
//
// They return nothing, so a failure goes into a process-wide slot that the
// runtime reads with tessera::rt::cuda::takeError() after calling compiled
// code; while an error waits there, launches, copies and sets are skipped.
// Memory comes from the runtime's caching allocator.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_MGPUABI_H
#define TESSERA_RUNTIME_CUDA_MGPUABI_H

#include "runtime/cuda/CudaDriver.h"

#include <cstddef>
#include <cstdint>

using tessera::rt::cuda::CUevent;
using tessera::rt::cuda::CUfunction;
using tessera::rt::cuda::CUmodule;
using tessera::rt::cuda::CUstream;

extern "C" {

/// Loads a cubin or fatbin of `size` bytes; null on failure.
CUmodule mgpuModuleLoad(void *data, size_t size);
/// Loads NUL-terminated PTX, compiled by the driver at `optLevel` (0-4).
CUmodule mgpuModuleLoadJIT(void *data, int optLevel);
void mgpuModuleUnload(CUmodule module);
/// The kernel `name` of `module`; its name is kept for error messages.
CUfunction mgpuModuleGetFunction(CUmodule module, const char *name);
/// Queues `function` on `stream`. Dimensions are MLIR index values;
/// `params` points to `paramsCount` argument addresses.
void mgpuLaunchKernel(CUfunction function, intptr_t gridX, intptr_t gridY,
                      intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                      intptr_t blockZ, int32_t smem, CUstream stream,
                      void **params, void **extra, size_t paramsCount);

/// A non-blocking stream.
CUstream mgpuStreamCreate();
/// Waits for the stream's work, then destroys it.
void mgpuStreamDestroy(CUstream stream);
void mgpuStreamSynchronize(CUstream stream);
void mgpuStreamWaitEvent(CUstream stream, CUevent event);
/// An event without timing.
CUevent mgpuEventCreate();
void mgpuEventDestroy(CUevent event);
void mgpuEventSynchronize(CUevent event);
void mgpuEventRecord(CUevent event, CUstream stream);

/// `sizeBytes` of device memory (managed memory when `isHostShared`) for
/// work on `stream`; null for 0 bytes or on failure.
void *mgpuMemAlloc(uint64_t sizeBytes, CUstream stream, bool isHostShared);
/// Frees memory of mgpuMemAlloc after the work queued on `stream`.
void mgpuMemFree(void *ptr, CUstream stream);
void mgpuMemcpy(void *dst, void *src, size_t sizeBytes, CUstream stream);
/// Set `count` 32-bit (16-bit) elements at `dst` to `value`.
void mgpuMemset32(void *dst, unsigned int value, size_t count, CUstream stream);
void mgpuMemset16(void *dst, unsigned short value, size_t count,
                  CUstream stream);
/// The device that later calls of this thread use.
/// The device address of a TMA descriptor (a CUtensorMap in device memory)
/// of the row-major `rows` x `cols` matrix of 16-bit elements (bf16 if
/// `bf16`, else f16) at device address `base`, rows `rowBytes` apart,
/// loaded `boxRows` x `boxCols` at a time into shared memory with the
/// 128-byte swizzle; elements past the matrix read as zero. A descriptor is
/// encoded once per distinct argument list and device and kept for the
/// process (compiled code asks before every launch, so a training step
/// reuses its descriptors); 0 after recording an error.
uint64_t tesseraTensorMap2D(uint64_t base, int64_t rows, int64_t cols,
                            int64_t rowBytes, int64_t boxRows,
                            int64_t boxCols, int64_t bf16);

/// The default device's multiprocessor count (the grid of the persistent
/// TMA matmul kernels, `--wgmma-loads=tma-persistent`); 1 after recording
/// an error.
int64_t tesseraMultiprocessorCount();

void mgpuSetDefaultDevice(int32_t device);

} // extern "C"

#endif // TESSERA_RUNTIME_CUDA_MGPUABI_H
