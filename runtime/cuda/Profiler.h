//===- Profiler.h - Time per kernel, with CUDA events -----------*- C++ -*-===//
//
// With TESSERA_CUDA_PROFILE=1, every kernel launch of compiled code is
// bracketed by two CUDA events. When its stream is synchronized the elapsed
// times are added up per kernel, and at exit a table goes to stderr: total
// time, share, launches and mean time per kernel, most expensive first.
// The events cost a few microseconds per launch, so profiled runs are
// slower; the kernel times themselves are the GPU's.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_PROFILER_H
#define TESSERA_RUNTIME_CUDA_PROFILER_H

#include "runtime/cuda/CudaDriver.h"

#include <string>

namespace tessera::rt::cuda::profiler {

/// Whether TESSERA_CUDA_PROFILE=1 (read once).
bool enabled();
/// Records the start event of a launch on `stream`; returns it (or null).
CUevent begin(const DriverApi &api, CUstream stream);
/// Records the end event of the launch of `kernel` that `begin` started.
void end(const DriverApi &api, CUstream stream, CUevent start,
         const std::string &kernel);
/// `stream` was synchronized: its launches' times are added up.
void collect(const DriverApi &api, CUstream stream);

} // namespace tessera::rt::cuda::profiler

#endif // TESSERA_RUNTIME_CUDA_PROFILER_H
