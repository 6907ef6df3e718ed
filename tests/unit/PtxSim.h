//===- PtxSim.h - A PTX interpreter for the fake CUDA driver -----*- C++ -*-===//
//
// Runs the kernels of a PTX module on the host, one CUDA thread after
// another, so that GPU packages are checked for their numbers on machines
// without a GPU. It covers the subset of PTX that LLVM's NVPTX backend emits
// for Tessera's kernels: integer and f32/f64 arithmetic, conversions (bf16,
// f16), predicates and branches, global/shared/local/param memory, vector
// loads and stores, cp.async, bar.sync, ldmatrix and mma.sync m16n8k16.
// Anything else is rejected when the module is parsed, naming the line.
//
// Threads run until they reach a barrier or a warp-wide instruction
// (ldmatrix, mma.sync); those run once every thread of the warp (or block)
// has reached them. A cp.async copy lands in shared memory only when a
// cp.async.wait_group (or wait_all) covers it. Every global access
// must lie inside one allocation and be aligned to its size, as on a GPU,
// and no byte of shared memory may be written by one thread and touched by
// another between the same two barriers;
// a violation stops the launch with the kernel, the PTX line and the
// address.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_TESTS_UNIT_PTXSIM_H
#define TESSERA_TESTS_UNIT_PTXSIM_H

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace ptxsim {

struct Module;

/// Parses PTX text into a module that `destroy` frees. On failure returns
/// null and sets `error` to "line N: message".
Module *parse(const std::string &text, std::string &error);
void destroy(Module *module);

/// Whether `module` has an entry point `name`.
bool hasKernel(const Module &module, const std::string &name);

/// Where a device address lives on the host: the allocation holding it.
struct Allocation {
  uint64_t base = 0;
  uint64_t size = 0;
  char *host = nullptr;
};
/// Finds the allocation containing `address`; false if none does.
using Resolver = std::function<bool(uint64_t address, Allocation &)>;

enum class Failure { None, IllegalAddress, MisalignedAddress, LaunchFailed };

struct LaunchResult {
  Failure failure = Failure::None;
  std::string message;
  /// Instructions executed, over all threads.
  uint64_t instructions = 0;
};

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/// Runs `kernel` over `grid` x `block` with the cuLaunchKernel parameter
/// array `params`. Blocks run on up to `workers` host threads.
LaunchResult launch(const Module &module, const std::string &kernel,
                    Dim3 grid, Dim3 block, unsigned dynamicShared,
                    void **params, const Resolver &resolve,
                    unsigned workers);

} // namespace ptxsim

#endif // TESSERA_TESTS_UNIT_PTXSIM_H
