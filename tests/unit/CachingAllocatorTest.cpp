//===- CachingAllocatorTest.cpp - The caching device allocator ------------===//
//
// The allocator runs over a fake backend that hands out addresses without
// memory behind them, counts calls and can run out of memory.
//
//===----------------------------------------------------------------------===//

#include "runtime/cuda/CachingAllocator.h"

#include <gtest/gtest.h>

#include <map>

using namespace tessera::rt;
using namespace tessera::rt::cuda;

namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * 1024;

/// What the fake backend did; owned by the test, so it outlives the
/// allocator's backend.
struct BackendLog {
  uint64_t limit = UINT64_MAX;
  uint64_t used = 0;
  int allocations = 0;
  int releases = 0;
  int synchronizations = 0;
  std::map<void *, uint64_t> live;
};

class FakeBackend : public MemoryBackend {
public:
  explicit FakeBackend(BackendLog &log) : log(log) {}

  Expected<void *> allocate(uint64_t bytes, bool &outOfMemory) override {
    outOfMemory = log.used + bytes > log.limit;
    if (outOfMemory)
      return Status::fail("fake device is out of memory");
    // Segments 1 GiB apart, so that no two are adjacent.
    void *ptr = reinterpret_cast<void *>(nextAddress);
    nextAddress += uint64_t(1) << 30;
    log.used += bytes;
    log.live[ptr] = bytes;
    ++log.allocations;
    return ptr;
  }

  Status release(void *ptr) override {
    auto it = log.live.find(ptr);
    if (it == log.live.end())
      return Status::fail("fake backend: releasing an unknown segment");
    log.used -= it->second;
    log.live.erase(it);
    ++log.releases;
    return {};
  }

  Status synchronize() override {
    ++log.synchronizations;
    return {};
  }

private:
  BackendLog &log;
  uint64_t nextAddress = uint64_t(1) << 40;
};

class CachingAllocatorTest : public ::testing::Test {
protected:
  BackendLog log;
  CachingAllocator allocator{std::make_unique<FakeBackend>(log)};

  void *allocate(uint64_t bytes, StreamHandle stream = nullptr) {
    Expected<void *> ptr = allocator.allocate(bytes, stream);
    EXPECT_TRUE(ptr.ok()) << ptr.error();
    return ptr.ok() ? *ptr : nullptr;
  }
  void free(void *ptr, StreamHandle stream = nullptr) {
    Status s = allocator.deallocate(ptr, stream);
    EXPECT_TRUE(s.ok()) << s.error();
  }
};

char *bytePtr(void *ptr) { return static_cast<char *>(ptr); }

const StreamHandle streamA = reinterpret_cast<StreamHandle>(0xa);
const StreamHandle streamB = reinterpret_cast<StreamHandle>(0xb);

TEST(CachingAllocator, RoundsRequestsTo512Bytes) {
  EXPECT_EQ(CachingAllocator::roundedSize(0), 512u);
  EXPECT_EQ(CachingAllocator::roundedSize(1), 512u);
  EXPECT_EQ(CachingAllocator::roundedSize(512), 512u);
  EXPECT_EQ(CachingAllocator::roundedSize(513), 1024u);
  EXPECT_EQ(CachingAllocator::roundedSize(3 * MiB + 1), 3 * MiB + 512);
}

TEST_F(CachingAllocatorTest, SmallRequestsShareOneTwoMiBSegment) {
  void *a = allocate(100);
  void *b = allocate(1000);
  EXPECT_EQ(bytePtr(b), bytePtr(a) + 512);
  EXPECT_EQ(log.allocations, 1);
  EXPECT_EQ(log.used, 2 * MiB);
  AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.bytesInUse, 512 + 1024u);
  EXPECT_EQ(stats.bytesCached, 2 * MiB - 1536);
}

TEST_F(CachingAllocatorTest, LargeRequestsGetSegmentsRoundedToTwoMiB) {
  allocate(3 * MiB);
  EXPECT_EQ(log.allocations, 1);
  EXPECT_EQ(log.used, 4 * MiB);
  // The 1 MiB left over is too small to split off in the large pool.
  EXPECT_EQ(allocator.stats().bytesInUse, 4 * MiB);
}

TEST_F(CachingAllocatorTest, FreedBlockIsReusedWithoutTheBackend) {
  void *a = allocate(1000);
  free(a);
  void *b = allocate(900);
  EXPECT_EQ(a, b);
  AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.backendAllocations, 1u);
  EXPECT_EQ(stats.cacheHits, 1u);
  EXPECT_EQ(log.allocations, 1);
}

TEST_F(CachingAllocatorTest, BestFitTakesTheSmallestBlockThatFits) {
  void *big = allocate(16 * KiB);
  allocate(512); // keeps `big` and `small` apart
  void *small = allocate(4 * KiB);
  allocate(512); // keeps `small` apart from the rest of the segment
  free(big);
  free(small);
  EXPECT_EQ(allocate(3 * KiB), small);
  EXPECT_EQ(allocate(10 * KiB), big);
  EXPECT_EQ(log.allocations, 1);
}

TEST_F(CachingAllocatorTest, LargeBlocksSplitAndSmallRequestsUseTheirOwnPool) {
  void *block = allocate(8 * MiB);
  free(block);
  void *first = allocate(3 * MiB);
  void *second = allocate(4 * MiB);
  EXPECT_EQ(first, block);
  EXPECT_EQ(bytePtr(second), bytePtr(block) + 3 * MiB);
  EXPECT_EQ(log.allocations, 1);
  // A small request does not cut into the large pool's free 1 MiB.
  allocate(KiB);
  EXPECT_EQ(log.allocations, 2);
}

TEST_F(CachingAllocatorTest, StatsTrackInUseCachedAndPeak) {
  void *a = allocate(KiB);
  void *b = allocate(2 * KiB);
  free(b);
  AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.bytesInUse, KiB);
  EXPECT_EQ(stats.bytesCached, 2 * MiB - KiB);
  EXPECT_EQ(stats.peakBytesInUse, 3 * KiB);
  free(a);
  stats = allocator.stats();
  EXPECT_EQ(stats.bytesInUse, 0u);
  EXPECT_EQ(stats.bytesCached, 2 * MiB);
  EXPECT_EQ(stats.peakBytesInUse, 3 * KiB);
}

TEST_F(CachingAllocatorTest, NeighboursMergeAndEmptyCacheReturnsSegments) {
  void *a = allocate(KiB);
  void *b = allocate(KiB);
  void *large = allocate(4 * MiB);
  free(b);
  free(a);
  // Once the stream is done, the freed blocks and the rest of the segment
  // merge back into one block, which starts at `a`.
  allocator.streamSynchronized(nullptr);
  EXPECT_EQ(allocate(MiB), a);
  EXPECT_EQ(log.allocations, 2);
  free(a);
  ASSERT_TRUE(allocator.emptyCache().ok());
  EXPECT_EQ(log.releases, 1); // the small segment; `large` is in use
  EXPECT_EQ(log.used, 4 * MiB);
  EXPECT_TRUE(allocator.owns(large));
  AllocatorStats stats = allocator.stats();
  EXPECT_EQ(stats.bytesCached, 0u);
  EXPECT_EQ(stats.backendReleases, 1u);
}

TEST_F(CachingAllocatorTest, OutOfMemoryEmptiesTheCacheAndRetriesOnce) {
  log.limit = 8 * MiB;
  free(allocate(3 * MiB)); // a cached 4 MiB segment
  // 6 MiB more do not fit next to the cached segment, but do without it.
  void *ptr = allocate(5 * MiB);
  EXPECT_NE(ptr, nullptr);
  EXPECT_EQ(log.allocations, 2);
  EXPECT_EQ(log.releases, 1);
  EXPECT_GE(log.synchronizations, 1);
  EXPECT_EQ(log.used, 6 * MiB);
}

TEST_F(CachingAllocatorTest, OutOfMemoryAfterTheRetryIsAnError) {
  log.limit = 4 * MiB;
  void *kept = allocate(KiB);
  Expected<void *> ptr = allocator.allocate(5 * MiB);
  ASSERT_FALSE(ptr.ok());
  EXPECT_NE(ptr.error().find("fake device is out of memory"), std::string::npos)
      << ptr.error();
  EXPECT_NE(ptr.error().find("after emptying the cache"), std::string::npos)
      << ptr.error();
  EXPECT_NE(ptr.error().find("6.0 MiB"), std::string::npos) << ptr.error();
  // Blocks in use survive the attempt.
  EXPECT_TRUE(allocator.owns(kept));
  EXPECT_EQ(log.releases, 0);
}

TEST_F(CachingAllocatorTest, FreeingAnUnknownPointerIsAnError) {
  void *a = allocate(KiB);
  Status unknown = allocator.deallocate(reinterpret_cast<void *>(0x1234));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().find("did not hand out"), std::string::npos)
      << unknown.error();
  Status interior = allocator.deallocate(bytePtr(a) + 512);
  EXPECT_FALSE(interior.ok());
  free(a);
  Status twice = allocator.deallocate(a);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.error().find("already freed"), std::string::npos)
      << twice.error();
  EXPECT_EQ(allocator.stats().bytesInUse, 0u);
}

TEST_F(CachingAllocatorTest, BlocksFreedOnAStreamWaitForItBeforeOtherStreams) {
  void *a = allocate(KiB, streamA);
  free(a, streamA);
  // Work queued on stream A may still read `a`: stream B gets other memory,
  // stream A itself may reuse it at once.
  void *onB = allocate(KiB, streamB);
  EXPECT_NE(onB, a);
  void *onA = allocate(KiB, streamA);
  EXPECT_EQ(onA, a);
  free(onA, streamA);
  allocator.streamSynchronized(streamA);
  EXPECT_EQ(allocate(KiB, streamB), a);
}

} // namespace
