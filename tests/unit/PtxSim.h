//===- PtxSim.h - A PTX interpreter for the fake CUDA driver -----*- C++ -*-===//
//
// Runs the kernels of a PTX module on the host, one CUDA thread after
// another, so that GPU packages are checked for their numbers on machines
// without a GPU. It covers the subset of PTX that LLVM's NVPTX backend emits
// for Tessera's kernels: integer and f32/f64 arithmetic, conversions (bf16,
// f16), predicates and branches, global/shared/local/param memory, vector
// loads and stores, atom and red (atomic for the blocks that run at once on
// other host threads too), membar and fence, cp.async, bar.sync and bar.red
// (named barriers too), ldmatrix, mma.sync m16n8k16, wgmma.mma_async, and
// the sm_90 tensor memory accelerator: mbarrier objects and
// cp.async.bulk.tensor loads through tensor maps that
// `encodeTiledTensorMap` wrote. Anything else is rejected when the module
// is parsed, naming the line.
//
// Threads run until they reach a barrier or a warp-wide instruction
// (ldmatrix, mma.sync); those run once every thread of the warp (or block)
// has reached them. A cp.async copy lands in shared memory only when a
// cp.async.wait_group (or wait_all) covers it. An mbarrier.try_wait that
// finds its phase incomplete puts the thread to sleep until the phase
// completes, and a cp.async.bulk.tensor copy lands as late as it can: when
// no thread can go on without it. Every global access must lie inside one
// allocation and be aligned to its size, as on a GPU, and no byte of shared
// memory may be written by one thread and touched by another between the
// same two barriers unless both accesses are atomic (bar.sync: an mbarrier
// does not order threads' own shared-memory writes for this check, only the
// bulk copies that complete it); no thread may touch shared memory that a
// bulk copy still in flight writes, and no bulk copy may land on the
// operands of an in-flight wgmma; on request (`launch`'s checkWrites), no
// two blocks may store to the same byte of global memory. A violation stops
// the launch with the kernel, the PTX line and the address.
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
/// array `params`. Blocks run on up to `workers` host threads, taking
/// block ids in increasing order.
///
/// With `checkWrites`, the launch fails when two of its blocks store to the
/// same byte of global memory (st, vector stores; not atom or red, which
/// are meant to be shared), since on a GPU which store lands last depends
/// on the blocks' order: say, every block of a split-K tile storing its
/// tile rather than only the last to arrive. Stores of one block to a byte
/// are fine, as are stores to it by blocks of other launches. Stores of two
/// blocks that synchronization orders (a lock, a flag) are reported too.
/// Reads are not checked: a block reading what another block stores,
/// before or after, is not reported. The launch holds 2 KiB of host memory
/// per 4 KiB page of global memory its blocks stored to.
LaunchResult launch(const Module &module, const std::string &kernel,
                    Dim3 grid, Dim3 block, unsigned dynamicShared,
                    void **params, const Resolver &resolve,
                    unsigned workers, bool checkWrites = false);

/// cuTensorMapEncodeTiled for the fake driver: checks the arguments as the
/// CUDA driver documents (plus what the interpreter does not emulate:
/// interleaved layouts, element strides other than 1, the 128B swizzles
/// with 32- and 64-byte atoms, packed data types, the NaN out-of-bounds
/// fill) and writes the 128-byte map that cp.async.bulk.tensor reads.
/// Enums are passed as their values in cuda.h. Returns an empty string on
/// success, else what is wrong (the driver's CUDA_ERROR_INVALID_VALUE), and
/// then leaves `tensorMap` alone.
///
/// The map is 16 little-endian 64-bit words:
///   0      the magic word "TESSTMAP" (0x50414d5453534554)
///   1      data type | element bytes << 8 | rank << 16 | swizzle << 24 |
///          L2 promotion << 32
///   2      global address
///   3-7    globalDim[0..rank)
///   8-11   globalStrides[0..rank-1), in bytes
///   12-13  boxDim[0..rank), 16 bits each (word 12: dimensions 0-3)
///   14-15  zero
std::string encodeTiledTensorMap(void *tensorMap, unsigned dataType,
                                 unsigned rank, const void *globalAddress,
                                 const uint64_t *globalDim,
                                 const uint64_t *globalStrides,
                                 const uint32_t *boxDim,
                                 const uint32_t *elementStrides,
                                 unsigned interleave, unsigned swizzle,
                                 unsigned l2Promotion, unsigned oobFill);

} // namespace ptxsim

#endif // TESSERA_TESTS_UNIT_PTXSIM_H
