//===- CachingAllocator.h - Caching allocator of device memory --*- C++ -*-===//
//
// cuMemAlloc and cuMemFree are slow (they synchronize the device and map
// pages), and compiled code allocates and frees its temporaries on every
// call. This allocator keeps freed memory and hands it out again:
//
// * Requests are rounded up to 512 bytes. Requests of at most 1 MiB are cut
//   from 2 MiB segments (the small pool); larger ones get their own segment,
//   rounded up to 2 MiB (the large pool), so small blocks never fragment
//   large ones.
// * A freed block goes to a free list ordered by size; a request takes the
//   smallest free block that fits (best fit) and splits off the rest when it
//   is big enough to be useful (512 bytes in the small pool, more than 1 MiB
//   in the large one). Neighbouring free blocks of a segment merge again.
// * Memory is stream-ordered: a block freed on a stream may still be read by
//   work queued on it. It is reused at once on that stream (later work runs
//   after), and on other streams only once the stream was synchronized.
// * When the backend is out of memory, the allocator waits for the device,
//   returns every unused segment and retries once.
//
// The memory itself comes from a MemoryBackend: the CUDA driver, or a fake
// in the unit tests.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CUDA_CACHINGALLOCATOR_H
#define TESSERA_RUNTIME_CUDA_CACHINGALLOCATOR_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace tessera::rt::cuda {

/// Where a CachingAllocator gets its segments from.
class MemoryBackend {
public:
  virtual ~MemoryBackend();
  /// Allocates `bytes`. On failure sets `outOfMemory` when the only problem
  /// was a lack of memory (so that freeing cached segments may help).
  virtual Expected<void *> allocate(uint64_t bytes, bool &outOfMemory) = 0;
  /// Returns a segment that allocate() gave.
  virtual Status release(void *ptr) = 0;
  /// Waits until the device has finished all queued work.
  virtual Status synchronize() = 0;
};

/// A stream, as the allocator sees it: only compared for identity.
using StreamHandle = const void *;

struct AllocatorStats {
  /// Bytes of blocks handed out and not yet freed (rounded sizes).
  uint64_t bytesInUse = 0;
  /// Bytes held from the backend and not handed out.
  uint64_t bytesCached = 0;
  /// The largest bytesInUse so far.
  uint64_t peakBytesInUse = 0;
  /// Segments obtained from the backend, and given back to it.
  uint64_t backendAllocations = 0;
  uint64_t backendReleases = 0;
  /// Allocations served from cached memory, without calling the backend.
  uint64_t cacheHits = 0;
};

/// A thread-safe caching allocator over a MemoryBackend.
class CachingAllocator {
public:
  static constexpr uint64_t minBlockSize = 512;
  /// Requests up to this size come from the small pool.
  static constexpr uint64_t smallRequestLimit = uint64_t(1) << 20;
  static constexpr uint64_t smallSegmentSize = uint64_t(2) << 20;
  /// Large segments are multiples of this.
  static constexpr uint64_t largeSegmentGranularity = uint64_t(2) << 20;

  explicit CachingAllocator(std::unique_ptr<MemoryBackend> backend);
  CachingAllocator(const CachingAllocator &) = delete;
  CachingAllocator &operator=(const CachingAllocator &) = delete;
  /// Returns every segment to the backend (errors are ignored; the memory
  /// must no longer be in use).
  ~CachingAllocator();

  /// The size of the block that serves a request of `bytes`.
  static uint64_t roundedSize(uint64_t bytes);

  /// A block of at least `bytes` for work ordered on `stream`.
  Expected<void *> allocate(uint64_t bytes, StreamHandle stream = nullptr);
  /// Frees a block that allocate() returned; its last use is ordered on
  /// `stream`. A pointer that is not an allocated block is an error.
  Status deallocate(void *ptr, StreamHandle stream = nullptr);
  /// Whether `ptr` is the start of a block this allocator handed out.
  bool owns(const void *ptr) const;
  /// Tells the allocator that all work queued on `stream` has finished, so
  /// the blocks freed on it may serve any stream.
  void streamSynchronized(StreamHandle stream);
  /// Waits for the device and returns every wholly unused segment.
  Status emptyCache();

  AllocatorStats stats() const;

private:
  /// A piece of a segment, allocated or free. The blocks of one segment are
  /// a doubly linked list in address order.
  struct Block {
    char *address;
    uint64_t size;
    bool small;
    bool allocated = false;
    /// For a free block: whether work queued on `stream` may still use it.
    bool pending = false;
    StreamHandle stream = nullptr;
    Block *prev = nullptr;
    Block *next = nullptr;
  };
  /// Orders free blocks by pool, stream state and size, so that the best
  /// fit of a pool and stream is a lower_bound.
  struct FreeOrder {
    bool operator()(const Block *a, const Block *b) const;
  };

  Block *findFree(bool small, uint64_t size, StreamHandle stream);
  Expected<Block *> newSegment(bool small, uint64_t size);
  /// Merges `block` (free, not in the free set) with free neighbours in the
  /// same stream state and adds the result to the free set.
  void addFree(Block *block);
  /// Makes the free blocks pending on `stream` (on any stream when `all`)
  /// usable by every stream.
  void markIdle(bool all, StreamHandle stream);
  Status emptyCacheLocked();

  std::unique_ptr<MemoryBackend> backend;
  mutable std::mutex mutex;
  /// Every block by its address (owning).
  std::map<const void *, std::unique_ptr<Block>> blocks;
  std::set<Block *, FreeOrder> freeBlocks;
  uint64_t bytesReserved = 0;
  AllocatorStats counters;
};

} // namespace tessera::rt::cuda

#endif // TESSERA_RUNTIME_CUDA_CACHINGALLOCATOR_H
