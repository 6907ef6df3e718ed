//===- CachingAllocator.cpp - Caching allocator of device memory ----------===//

#include "runtime/cuda/CachingAllocator.h"

#include <cinttypes>
#include <cstdio>
#include <tuple>
#include <vector>

namespace tessera::rt::cuda {

MemoryBackend::~MemoryBackend() = default;

/// "12.0 MiB" for messages.
static std::string formatBytes(uint64_t bytes) {
  char text[32];
  if (bytes < 1024)
    std::snprintf(text, sizeof(text), "%" PRIu64 " B", bytes);
  else if (bytes < (uint64_t(1) << 20))
    std::snprintf(text, sizeof(text), "%.1f KiB", double(bytes) / 1024);
  else if (bytes < (uint64_t(1) << 30))
    std::snprintf(text, sizeof(text), "%.1f MiB", double(bytes) / (1 << 20));
  else
    std::snprintf(text, sizeof(text), "%.2f GiB", double(bytes) / (1 << 30));
  return text;
}

static std::string formatPointer(const void *ptr) {
  char text[32];
  std::snprintf(text, sizeof(text), "%p", ptr);
  return text;
}

static uint64_t roundUp(uint64_t value, uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

/// Larger requests are refused before rounding could overflow.
static constexpr uint64_t maxRequest = uint64_t(1) << 62;

bool CachingAllocator::FreeOrder::operator()(const Block *a,
                                             const Block *b) const {
  auto key = [](const Block *x) {
    return std::make_tuple(x->small, x->pending,
                           reinterpret_cast<uintptr_t>(x->stream), x->size,
                           reinterpret_cast<uintptr_t>(x->address));
  };
  return key(a) < key(b);
}

CachingAllocator::CachingAllocator(std::unique_ptr<MemoryBackend> backend)
    : backend(std::move(backend)) {}

CachingAllocator::~CachingAllocator() {
  for (const auto &[address, block] : blocks)
    if (!block->prev)
      (void)backend->release(block->address);
}

uint64_t CachingAllocator::roundedSize(uint64_t bytes) {
  return bytes <= minBlockSize ? minBlockSize : roundUp(bytes, minBlockSize);
}

CachingAllocator::Block *CachingAllocator::findFree(bool small, uint64_t size,
                                                    StreamHandle stream) {
  // The best fit among idle blocks and among those pending on `stream`.
  auto bestIn = [&](bool pending, StreamHandle owner) -> Block * {
    Block probe{nullptr, size, small};
    probe.pending = pending;
    probe.stream = owner;
    auto it = freeBlocks.lower_bound(&probe);
    if (it == freeBlocks.end() || (*it)->small != small ||
        (*it)->pending != pending || (*it)->stream != owner)
      return nullptr;
    return *it;
  };
  Block *idle = bestIn(false, nullptr);
  Block *sameStream = bestIn(true, stream);
  if (!idle || (sameStream && sameStream->size < idle->size))
    return sameStream;
  return idle;
}

Expected<CachingAllocator::Block *>
CachingAllocator::newSegment(bool small, uint64_t size) {
  uint64_t segmentSize =
      small ? smallSegmentSize : roundUp(size, largeSegmentGranularity);
  bool outOfMemory = false;
  Expected<void *> memory = backend->allocate(segmentSize, outOfMemory);
  if (!memory && outOfMemory) {
    if (Status s = emptyCacheLocked(); !s)
      return s;
    memory = backend->allocate(segmentSize, outOfMemory);
  }
  if (!memory)
    return Status::fail(
        "cannot allocate a segment of " + formatBytes(segmentSize) + " (" +
        formatBytes(counters.bytesInUse) + " in use, " +
        formatBytes(bytesReserved - counters.bytesInUse) + " cached" +
        (outOfMemory ? ", after emptying the cache" : "") +
        "): " + memory.error());
  auto block = std::make_unique<Block>(
      Block{static_cast<char *>(*memory), segmentSize, small});
  Block *raw = block.get();
  blocks[raw->address] = std::move(block);
  bytesReserved += segmentSize;
  ++counters.backendAllocations;
  return raw;
}

Expected<void *> CachingAllocator::allocate(uint64_t bytes,
                                            StreamHandle stream) {
  if (bytes > maxRequest)
    return Status::fail("cannot allocate " + std::to_string(bytes) +
                        " bytes of device memory");
  uint64_t size = roundedSize(bytes);
  bool small = size <= smallRequestLimit;
  std::lock_guard<std::mutex> lock(mutex);
  Block *block = findFree(small, size, stream);
  if (block) {
    freeBlocks.erase(block);
    ++counters.cacheHits;
  } else {
    Expected<Block *> segment = newSegment(small, size);
    if (!segment)
      return std::move(segment).takeStatus();
    block = *segment;
  }

  uint64_t rest = block->size - size;
  if (small ? rest >= minBlockSize : rest > smallRequestLimit) {
    auto tail =
        std::make_unique<Block>(Block{block->address + size, rest, small});
    tail->pending = block->pending;
    tail->stream = block->stream;
    tail->prev = block;
    tail->next = block->next;
    if (block->next)
      block->next->prev = tail.get();
    block->next = tail.get();
    block->size = size;
    freeBlocks.insert(tail.get());
    blocks[tail->address] = std::move(tail);
  }
  block->allocated = true;
  block->pending = false;
  block->stream = nullptr;
  counters.bytesInUse += block->size;
  if (counters.bytesInUse > counters.peakBytesInUse)
    counters.peakBytesInUse = counters.bytesInUse;
  return static_cast<void *>(block->address);
}

void CachingAllocator::addFree(Block *block) {
  auto mergeable = [&](const Block *other) {
    return other && !other->allocated && other->pending == block->pending &&
           other->stream == block->stream;
  };
  if (mergeable(block->prev)) {
    Block *prev = block->prev;
    freeBlocks.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next)
      block->next->prev = prev;
    blocks.erase(block->address);
    block = prev;
  }
  if (mergeable(block->next)) {
    Block *next = block->next;
    freeBlocks.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next)
      next->next->prev = block;
    blocks.erase(next->address);
  }
  freeBlocks.insert(block);
}

Status CachingAllocator::deallocate(void *ptr, StreamHandle stream) {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = blocks.find(ptr);
  if (it == blocks.end() || !it->second->allocated)
    return Status::fail("freeing device pointer " + formatPointer(ptr) +
                        ", which " +
                        (it == blocks.end() ? "this allocator did not hand out"
                                            : "was already freed"));
  Block *block = it->second.get();
  block->allocated = false;
  block->pending = true;
  block->stream = stream;
  counters.bytesInUse -= block->size;
  addFree(block);
  return {};
}

bool CachingAllocator::owns(const void *ptr) const {
  std::lock_guard<std::mutex> lock(mutex);
  auto it = blocks.find(ptr);
  return it != blocks.end() && it->second->allocated;
}

void CachingAllocator::markIdle(bool all, StreamHandle stream) {
  auto matches = [&](const Block *block) {
    return !block->allocated && block->pending &&
           (all || block->stream == stream);
  };
  std::vector<const void *> addresses;
  for (const Block *block : freeBlocks)
    if (matches(block))
      addresses.push_back(block->address);
  // Merging deletes the absorbed block: look each one up again.
  for (const void *address : addresses) {
    auto it = blocks.find(address);
    if (it == blocks.end() || !matches(it->second.get()))
      continue;
    Block *block = it->second.get();
    freeBlocks.erase(block);
    block->pending = false;
    block->stream = nullptr;
    addFree(block);
  }
}

void CachingAllocator::streamSynchronized(StreamHandle stream) {
  std::lock_guard<std::mutex> lock(mutex);
  markIdle(/*all=*/false, stream);
}

Status CachingAllocator::emptyCacheLocked() {
  if (Status s = backend->synchronize(); !s)
    return std::move(s).within("waiting for the device before emptying the "
                               "memory cache");
  markIdle(/*all=*/true, nullptr);

  Status firstError;
  std::vector<Block *> unused;
  for (Block *block : freeBlocks)
    if (!block->prev && !block->next)
      unused.push_back(block);
  for (Block *block : unused) {
    freeBlocks.erase(block);
    bytesReserved -= block->size;
    ++counters.backendReleases;
    Status s = backend->release(block->address);
    if (!s && firstError.ok())
      firstError = std::move(s);
    blocks.erase(block->address);
  }
  return firstError;
}

Status CachingAllocator::emptyCache() {
  std::lock_guard<std::mutex> lock(mutex);
  return emptyCacheLocked();
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex);
  AllocatorStats result = counters;
  result.bytesCached = bytesReserved - counters.bytesInUse;
  return result;
}

} // namespace tessera::rt::cuda
