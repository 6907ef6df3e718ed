//===- PtxSimTest.cpp - The PTX interpreter of the fake driver ------------===//
//
// Hand-written PTX: shared memory and a barrier, early exits, warp shuffles,
// packed conversions, the faults a GPU reports (out of bounds, misaligned),
// a race on shared memory, a warpgroup MMA with the hazards the
// interpreter reports (no fence.proxy.async, a result read before its
// wait), named barriers, and the tensor memory accelerator: tensor maps of
// the fake driver, cp.async.bulk.tensor boxes waited on through mbarriers,
// a warp-specialized matmul through a ring of them, and their hazards;
// atomics from blocks that run at once, split-K's "the last block sums the
// partials" handshake, and barriers with reductions; the check that no two
// blocks of a launch store to the same byte. The interpreter's
// tensor-core instructions are checked end to end besides: the bf16
// char-GPT's packages against the CPU (tests/lit/e2e/ptx-vs-cpu.test).
//
//===----------------------------------------------------------------------===//

#include "PtxSim.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

// Each of the first n threads reads in[tid] + 1 into shared memory; after
// the barrier it writes the value of thread n - 1 - tid to out[tid].
const char *kReverse = R"(
.version 8.0
.target sm_80
.address_size 64

	// .globl	reverse
.visible .entry reverse(
	.param .u64 reverse_param_0,
	.param .u64 .ptr .align 1 reverse_param_1,
	.param .u32 reverse_param_2
)
.maxntid 64, 1, 1
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<5>;
	.reg .b32 	%f<3>;
	.reg .b64 	%rd<10>;
	.shared .align 4 .b8 buf[256];

	ld.param.b64 	%rd1, [reverse_param_0];
	ld.param.b64 	%rd2, [reverse_param_1];
	ld.param.b32 	%r1, [reverse_param_2];
	mov.u32 	%r2, %tid.x;
	setp.ge.u32 	%p1, %r2, %r1;
	@%p1 bra 	$L__BB0_2;
	cvta.to.global.u64 	%rd3, %rd1;
	mul.wide.u32 	%rd4, %r2, 4;
	add.s64 	%rd5, %rd3, %rd4;
	ld.global.b32 	%f1, [%rd5];
	add.rn.f32 	%f2, %f1, 0f3F800000;
	mov.b64 	%rd6, buf;
	add.s64 	%rd7, %rd6, %rd4;
	st.shared.b32 	[%rd7], %f2;
	bar.sync 	0;
	sub.s32 	%r3, %r1, %r2;
	add.s32 	%r4, %r3, -1;
	mul.wide.u32 	%rd8, %r4, 4;
	add.s64 	%rd9, %rd6, %rd8;
	ld.shared.b32 	%f1, [%rd9];
	cvta.to.global.u64 	%rd3, %rd2;
	add.s64 	%rd5, %rd3, %rd4;
	st.global.b32 	[%rd5], %f1;
$L__BB0_2:
	ret;

}

	// .globl	offset_v4
.visible .entry offset_v4(
	.param .u64 offset_v4_param_0
)
{
	.reg .b32 	%r<5>;
	.reg .b64 	%rd<2>;

	ld.param.b64 	%rd1, [offset_v4_param_0];
	ld.global.v4.b32 	{%r1, %r2, %r3, %r4}, [%rd1+4];
	ret;

}
)";

// Lane l of one warp reads in[l] and writes to out[8l..8l+4]: the value of
// lane l^1 (butterfly), of lane l+3 with its validity (down, clamped at
// lane 31), of lane 1 of its group of 4 (indexed, width 4), and in[l] and
// in[l^1] as bf16 packed in one register (in[l] in the upper half).
const char *kShuffles = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry shuffles(
	.param .u64 shuffles_param_0,
	.param .u64 shuffles_param_1
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<12>;
	.reg .b64 	%rd<8>;

	ld.param.b64 	%rd1, [shuffles_param_0];
	ld.param.b64 	%rd2, [shuffles_param_1];
	mov.u32 	%r1, %tid.x;
	mul.wide.u32 	%rd3, %r1, 4;
	add.s64 	%rd4, %rd1, %rd3;
	ld.global.b32 	%r2, [%rd4];
	mov.b32 	%r9, -1;
	shfl.sync.bfly.b32 	%r3, %r2, 1, 31, %r9;
	shfl.sync.down.b32 	%r4|%p1, %r2, 3, 31, %r9;
	selp.b32 	%r5, 1, 0, %p1;
	shfl.sync.idx.b32 	%r6, %r2, 5, 7199, %r9;
	cvt.rn.bf16x2.f32 	%r7, %r2, %r3;
	mul.wide.u32 	%rd5, %r1, 32;
	add.s64 	%rd6, %rd2, %rd5;
	st.global.v4.b32 	[%rd6], {%r3, %r4, %r5, %r6};
	st.global.b32 	[%rd6+16], %r7;
	ret;

}
)";

// wgmma m64n8k16 from interleaved (unswizzled) K-major shared memory: A is
// 64 x 16 ones, B's column c is c + 1, so D[r][c] = 16 (c + 1). Threads
// 0-63 write A, 64-79 B. Mode 1 reads a result register before the wait,
// mode 2 leaves out the fence.proxy.async.
const char *kWgmma = R"(
.version 8.0
.target sm_90a
.address_size 64

.visible .entry wg(
	.param .u64 wg_param_0,
	.param .u32 wg_param_1
)
{
	.reg .pred 	%p<4>;
	.reg .b32 	%r<12>;
	.reg .b32 	%f<2>;
	.reg .b64 	%rd<8>;
	.shared .align 1024 .b8 smem[4096];

	ld.param.b64 	%rd1, [wg_param_0];
	ld.param.b32 	%r9, [wg_param_1];
	mov.u32 	%r1, %tid.x;
	mov.b64 	%rd3, smem;
	setp.lt.u32 	%p1, %r1, 64;
	@%p1 bra 	$A;
	setp.lt.u32 	%p1, %r1, 80;
	@!%p1 bra 	$W;
	sub.s32 	%r5, %r1, 64;
	and.b32 	%r6, %r5, 7;
	add.s32 	%r7, %r6, 1;
	cvt.rn.f32.u32 	%f1, %r7;
	cvt.rn.bf16x2.f32 	%r2, %f1, %f1;
	mul.wide.u32 	%rd2, %r5, 16;
	add.s64 	%rd4, %rd3, %rd2;
	st.shared.v4.b32 	[%rd4+2048], {%r2, %r2, %r2, %r2};
	bra 	$W;
$A:
	mul.wide.u32 	%rd2, %r1, 32;
	add.s64 	%rd4, %rd3, %rd2;
	mov.b32 	%r2, 1065369472;
	st.shared.v4.b32 	[%rd4], {%r2, %r2, %r2, %r2};
	st.shared.v4.b32 	[%rd4+16], {%r2, %r2, %r2, %r2};
$W:
	setp.ne.u32 	%p2, %r9, 2;
	@%p2 fence.proxy.async.shared::cta;
	bar.sync 	0;
	shr.u64 	%rd5, %rd3, 4;
	or.b64 	%rd5, %rd5, 68720001024;
	add.s64 	%rd6, %rd3, 2048;
	shr.u64 	%rd6, %rd6, 4;
	or.b64 	%rd6, %rd6, 68720001024;
	mov.b32 	%r3, 0;
	mov.b32 	%r4, 0;
	mov.b32 	%r5, 0;
	mov.b32 	%r6, 0;
	wgmma.fence.sync.aligned;
	{
	.reg .pred p;
	setp.ne.b32 p, 1, 0;
	wgmma.mma_async.sync.aligned.m64n8k16.f32.bf16.bf16 {%r3, %r4, %r5, %r6}, %rd5, %rd6, p, 1, 1, 0, 0;
	}
	wgmma.commit_group.sync.aligned;
	setp.eq.u32 	%p3, %r9, 1;
	@%p3 add.s32 	%r7, %r3, 0;
	wgmma.wait_group.sync.aligned 	0;
	cvta.to.global.u64 	%rd7, %rd1;
	mul.wide.u32 	%rd2, %r1, 16;
	add.s64 	%rd7, %rd7, %rd2;
	st.global.v4.b32 	[%rd7], {%r3, %r4, %r5, %r6};
	ret;
}
)";

struct Memory {
  std::vector<std::vector<float>> buffers;
  ptxsim::Resolver resolver() {
    return [this](uint64_t address, ptxsim::Allocation &out) {
      for (std::vector<float> &b : buffers) {
        auto base = reinterpret_cast<uint64_t>(b.data());
        if (address >= base && address < base + b.size() * 4) {
          out = {base, b.size() * 4, reinterpret_cast<char *>(b.data())};
          return true;
        }
      }
      return false;
    };
  }
};

struct ModuleDeleter {
  void operator()(ptxsim::Module *m) const { ptxsim::destroy(m); }
};
using ModulePtr = std::unique_ptr<ptxsim::Module, ModuleDeleter>;

ModulePtr parseOrFail(const char *text) {
  std::string error;
  ModulePtr m(ptxsim::parse(text, error));
  EXPECT_TRUE(m) << error;
  return m;
}

TEST(PtxSim, SharedMemoryAndBarrierWithEarlyExits) {
  ModulePtr m = parseOrFail(kReverse);
  ASSERT_TRUE(m);
  ASSERT_TRUE(ptxsim::hasKernel(*m, "reverse"));
  EXPECT_FALSE(ptxsim::hasKernel(*m, "missing"));
  Memory mem;
  mem.buffers = {std::vector<float>(50), std::vector<float>(50, -1.0f)};
  for (int i = 0; i < 50; ++i)
    mem.buffers[0][size_t(i)] = float(i) * 0.5f;
  void *in = mem.buffers[0].data(), *out = mem.buffers[1].data();
  uint32_t n = 50;
  void *params[] = {&in, &out, &n};
  // 64 threads: 14 exit at once, the others wait for each other.
  ptxsim::LaunchResult r = ptxsim::launch(*m, "reverse", {1, 1, 1}, {64, 1, 1},
                                          0, params, mem.resolver(), 2);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(mem.buffers[1][size_t(i)], float(49 - i) * 0.5f + 1.0f) << i;
  EXPECT_GT(r.instructions, 50u * 20u);
}

TEST(PtxSim, OutOfBoundsAccessNamesKernelThreadAndLine) {
  ModulePtr m = parseOrFail(kReverse);
  ASSERT_TRUE(m);
  Memory mem;
  mem.buffers = {std::vector<float>(40), std::vector<float>(50)};
  void *in = mem.buffers[0].data(), *out = mem.buffers[1].data();
  uint32_t n = 50;
  void *params[] = {&in, &out, &n};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "reverse", {1, 1, 1}, {64, 1, 1},
                                          0, params, mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::IllegalAddress);
  EXPECT_NE(r.message.find("kernel reverse, thread (40,0,0) of block (0,0,0)"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("`ld.global.b32 \t%f1, [%rd5]`"), std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("in no allocation"), std::string::npos)
      << r.message;
}

TEST(PtxSim, SharedMemoryRaceWithoutBarrierFails) {
  std::string text = kReverse;
  text.erase(text.find("\tbar.sync \t0;"), 13);
  ModulePtr m = parseOrFail(text.c_str());
  ASSERT_TRUE(m);
  Memory mem;
  mem.buffers = {std::vector<float>(50), std::vector<float>(50)};
  void *in = mem.buffers[0].data(), *out = mem.buffers[1].data();
  uint32_t n = 50;
  void *params[] = {&in, &out, &n};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "reverse", {1, 1, 1}, {64, 1, 1},
                                          0, params, mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed) << r.message;
  EXPECT_NE(r.message.find("race on shared memory"), std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("byte 100 written here without a barrier since thread 24 read it"),
            std::string::npos)
      << r.message;
}

TEST(PtxSim, MisalignedVectorLoadFails) {
  ModulePtr m = parseOrFail(kReverse);
  ASSERT_TRUE(m);
  Memory mem;
  mem.buffers = {std::vector<float>(16)};
  void *p = mem.buffers[0].data();
  void *params[] = {&p};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "offset_v4", {1, 1, 1},
                                          {1, 1, 1}, 0, params,
                                          mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::MisalignedAddress) << r.message;
  EXPECT_NE(r.message.find("for 16 bytes"), std::string::npos) << r.message;
}

TEST(PtxSim, WarpShufflesAndPackedConversion) {
  ModulePtr m = parseOrFail(kShuffles);
  ASSERT_TRUE(m);
  Memory mem;
  mem.buffers = {std::vector<float>(32), std::vector<float>(32 * 8)};
  for (int l = 0; l < 32; ++l)
    mem.buffers[0][size_t(l)] = float(l) * 1.5f;
  void *in = mem.buffers[0].data(), *out = mem.buffers[1].data();
  void *params[] = {&in, &out};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "shuffles", {1, 1, 1},
                                          {32, 1, 1}, 0, params,
                                          mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  };
  for (int l = 0; l < 32; ++l) {
    const float *o = &mem.buffers[1][size_t(l) * 8];
    const std::vector<float> &x = mem.buffers[0];
    EXPECT_EQ(o[0], x[size_t(l ^ 1)]) << l;
    EXPECT_EQ(o[1], x[size_t(l < 29 ? l + 3 : l)]) << l;
    EXPECT_EQ(bits(o[2]), l < 29 ? 1u : 0u) << l;
    EXPECT_EQ(o[3], x[size_t((l & 28) | 1)]) << l;
    // The inputs are exact in bf16: their upper 16 bits.
    EXPECT_EQ(bits(o[4]), (bits(x[size_t(l)]) & 0xffff0000u) |
                              bits(x[size_t(l ^ 1)]) >> 16)
        << l;
  }
}

TEST(PtxSim, UnsupportedInstructionNamesItsLine) {
  std::string text = kReverse;
  text.replace(text.find("add.rn.f32"), 10, "tanh.approx.f32");
  std::string error;
  ModulePtr m(ptxsim::parse(text, error));
  EXPECT_FALSE(m);
  EXPECT_EQ(error, "line 30: unsupported PTX instruction 'tanh.approx.f32'");
  error.clear();
  ModulePtr none(ptxsim::parse("\x50\xed\x55\xba binary", error));
  EXPECT_FALSE(none);
  EXPECT_NE(error.find("not PTX text"), std::string::npos) << error;
}

TEST(PtxSim, WarpgroupMmaAndItsHazards) {
  ModulePtr m = parseOrFail(kWgmma);
  ASSERT_TRUE(m);
  auto run = [&](uint32_t mode, std::vector<float> &out) {
    Memory mem;
    mem.buffers = {std::vector<float>(128 * 4, -1.0f)};
    void *ptr = mem.buffers[0].data();
    void *params[] = {&ptr, &mode};
    ptxsim::LaunchResult r = ptxsim::launch(*m, "wg", {1, 1, 1}, {128, 1, 1},
                                            0, params, mem.resolver(), 1);
    out = mem.buffers[0];
    return r;
  };
  std::vector<float> out;
  ptxsim::LaunchResult r = run(0, out);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  // Thread t's register i: column 2 (t % 4) + i % 2 of the m16n8 layout.
  for (unsigned t = 0; t < 128; ++t)
    for (unsigned i = 0; i < 4; ++i)
      EXPECT_EQ(out[t * 4 + i], 16.0f * float(2 * (t % 4) + i % 2 + 1))
          << "thread " << t << ", register " << i;

  r = run(1, out);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("`@%p3 add.s32 \t%r7, %r3, 0`: a register that an "
                           "in-flight wgmma.mma_async writes is accessed "
                           "before the wgmma.wait_group"),
            std::string::npos)
      << r.message;

  r = run(2, out);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("without a fence.proxy.async since"),
            std::string::npos)
      << r.message;
}

} // namespace

// Thread t reads a (u64), pos and len (u32) from in[16 t], and writes
// bfe.u64, bfe.s64 (8 bytes each), bfe.u32 and bfe.s32 of a's low half
// to out[24 t]. LLVM's NVPTX back end emits bfe for shifts and masks of
// constants (a row kernel's lane = tid % 32, warp = tid / 32).
const char *kBitFields = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry bfe(
	.param .u64 bfe_param_0,
	.param .u64 bfe_param_1
)
{
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<14>;

	ld.param.b64 	%rd1, [bfe_param_0];
	ld.param.b64 	%rd2, [bfe_param_1];
	cvta.to.global.u64 	%rd3, %rd1;
	cvta.to.global.u64 	%rd4, %rd2;
	mov.u32 	%r1, %tid.x;
	mul.wide.u32 	%rd5, %r1, 16;
	add.s64 	%rd6, %rd3, %rd5;
	ld.global.b64 	%rd7, [%rd6];
	ld.global.b32 	%r2, [%rd6+8];
	ld.global.b32 	%r3, [%rd6+12];
	bfe.u64 	%rd8, %rd7, %r2, %r3;
	bfe.s64 	%rd9, %rd7, %r2, %r3;
	cvt.u32.u64 	%r4, %rd7;
	bfe.u32 	%r5, %r4, %r2, %r3;
	bfe.s32 	%r6, %r4, %r2, %r3;
	mul.wide.u32 	%rd10, %r1, 24;
	add.s64 	%rd11, %rd4, %rd10;
	st.global.b64 	[%rd11], %rd8;
	st.global.b64 	[%rd11+8], %rd9;
	st.global.b32 	[%rd11+16], %r5;
	st.global.b32 	[%rd11+20], %r6;
	ret;
}
)";

/// bfe by shifts, for n-bit a: the field [pos, pos + len) moved to the
/// bottom, then (signed) sign-extended from its top bit, or from a's sign
/// bit when the field runs past it.
template <typename U, typename S>
std::pair<U, U> bitFieldByShifts(U a, uint32_t pos, uint32_t len) {
  constexpr uint32_t n = sizeof(U) * 8;
  pos &= 0xff;
  len &= 0xff;
  if (len == 0)
    return {0, 0};
  if (pos >= n)
    return {0, U(S(a) < 0 ? ~U(0) : 0)};
  if (pos + len >= n) // everything from pos up: a plain right shift
    return {U(a >> pos), U(S(a) >> pos)};
  U field = U(a << (n - pos - len));
  return {U(field >> (n - len)), U(S(field) >> (n - len))};
}

TEST(PtxSim, BitFieldExtract) {
  ModulePtr m = parseOrFail(kBitFields);
  ASSERT_TRUE(m);
  struct Case {
    uint64_t a;
    uint32_t pos, len;
  };
  std::vector<Case> cases;
  const uint64_t values[] = {0x8000000000000000ull, 0xfedcba9876543210ull,
                             0x00000000ffffffffull, 0x0123456789abcdefull};
  const uint32_t positions[] = {0, 3, 31, 32, 40, 63, 64, 300};
  const uint32_t lengths[] = {0, 1, 5, 32, 33, 64, 200, 0x105};
  for (uint64_t a : values)
    for (uint32_t pos : positions)
      for (uint32_t len : lengths)
        cases.push_back({a, pos, len});
  ASSERT_EQ(cases.size(), 256u);
  Memory mem;
  mem.buffers = {std::vector<float>(cases.size() * 4),
                 std::vector<float>(cases.size() * 6)};
  std::memcpy(mem.buffers[0].data(), cases.data(), cases.size() * 16);
  void *in = mem.buffers[0].data(), *out = mem.buffers[1].data();
  void *params[] = {&in, &out};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "bfe", {1, 1, 1},
                                          {uint32_t(cases.size()), 1, 1}, 0,
                                          params, mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case &c = cases[i];
    const char *o = reinterpret_cast<const char *>(out) + i * 24;
    uint64_t u64, s64;
    uint32_t u32, s32;
    std::memcpy(&u64, o, 8);
    std::memcpy(&s64, o + 8, 8);
    std::memcpy(&u32, o + 16, 4);
    std::memcpy(&s32, o + 20, 4);
    auto want64 = bitFieldByShifts<uint64_t, int64_t>(c.a, c.pos, c.len);
    auto want32 = bitFieldByShifts<uint32_t, int32_t>(uint32_t(c.a), c.pos, c.len);
    std::string at = "a=" + std::to_string(c.a) + " pos=" +
                     std::to_string(c.pos) + " len=" + std::to_string(c.len);
    EXPECT_EQ(u64, want64.first) << at;
    EXPECT_EQ(s64, want64.second) << at;
    EXPECT_EQ(u32, want32.first) << at;
    EXPECT_EQ(s32, want32.second) << at;
  }
}

/// fma.rn on halves, as LLVM writes bf16 additions for sm_80 (which has
/// no add.bf16): a + b = fma(a, 1.0, b). Each thread reads three 16-bit
/// values and writes fma in bf16 and in f16 of them.
const char *kHalfFma = R"(
.version 8.0
.target sm_80
.address_size 64

.visible .entry half_fma(
	.param .u64 half_fma_param_0,
	.param .u64 half_fma_param_1
)
{
	.reg .b16 	%rs<6>;
	.reg .b32 	%r<2>;
	.reg .b64 	%rd<9>;

	ld.param.b64 	%rd1, [half_fma_param_0];
	ld.param.b64 	%rd2, [half_fma_param_1];
	cvta.to.global.u64 	%rd3, %rd1;
	cvta.to.global.u64 	%rd4, %rd2;
	mov.u32 	%r1, %tid.x;
	mul.wide.u32 	%rd5, %r1, 6;
	add.s64 	%rd6, %rd3, %rd5;
	ld.global.b16 	%rs1, [%rd6];
	ld.global.b16 	%rs2, [%rd6+2];
	ld.global.b16 	%rs3, [%rd6+4];
	fma.rn.bf16 	%rs4, %rs1, %rs2, %rs3;
	fma.rn.f16 	%rs5, %rs1, %rs2, %rs3;
	mul.wide.u32 	%rd7, %r1, 4;
	add.s64 	%rd8, %rd4, %rd7;
	st.global.b16 	[%rd8], %rs4;
	st.global.b16 	[%rd8+2], %rs5;
	ret;
}
)";

TEST(PtxSim, HalfPrecisionFma) {
  ModulePtr m = parseOrFail(kHalfFma);
  ASSERT_TRUE(m);
  // {a, b, c} as bf16 bits and as f16 bits, and the expected results.
  struct Case {
    uint16_t bf[3], h[3], bfWant, hWant;
  };
  const Case cases[] = {
      // 1.5 * 1.0 + 1.5 = 3.0 (LLVM's x + x)
      {{0x3fc0, 0x3f80, 0x3fc0}, {0x3e00, 0x3c00, 0x3e00}, 0x4040, 0x4200},
      // 2.0 * -0.5 + 0.25 = -0.75
      {{0x4000, 0xbf00, 0x3e80}, {0x4000, 0xb800, 0x3400}, 0xbf40, 0xba00},
      // (1 + 2^-7) * (1 + 2^-7) + 0 = 1 + 2^-6 + 2^-14: rounds to 1 + 2^-6
      // in bf16 (7 fraction bits); f16: (1 + 2^-10)^2 = 1 + 2^-9 + 2^-20
      // rounds to 1 + 2^-9.
      {{0x3f81, 0x3f81, 0x0000}, {0x3c01, 0x3c01, 0x0000}, 0x3f82, 0x3c02},
  };
  constexpr size_t n = sizeof(cases) / sizeof(cases[0]);
  Memory mem;
  mem.buffers = {std::vector<float>(n * 2), std::vector<float>(n * 2)};
  // Two launches' inputs: the bf16 triples, then the f16 ones.
  for (int half = 0; half < 2; ++half) {
    auto *in = reinterpret_cast<uint16_t *>(mem.buffers[0].data());
    for (size_t i = 0; i < n; ++i)
      for (int j = 0; j < 3; ++j)
        in[i * 3 + j] = half ? cases[i].h[j] : cases[i].bf[j];
    void *inPtr = mem.buffers[0].data(), *outPtr = mem.buffers[1].data();
    void *params[] = {&inPtr, &outPtr};
    ptxsim::LaunchResult r = ptxsim::launch(*m, "half_fma", {1, 1, 1},
                                            {uint32_t(n), 1, 1}, 0, params,
                                            mem.resolver(), 1);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    auto *out = reinterpret_cast<const uint16_t *>(outPtr);
    for (size_t i = 0; i < n; ++i) {
      if (half)
        EXPECT_EQ(out[i * 2 + 1], cases[i].hWant) << "f16 case " << i;
      else
        EXPECT_EQ(out[i * 2], cases[i].bfWant) << "bf16 case " << i;
    }
  }
}

//===----------------------------------------------------------------------===//
// The tensor memory accelerator: mbarriers and cp.async.bulk.tensor
//===----------------------------------------------------------------------===//

namespace {

constexpr unsigned kFloat16 = 6;    // CU_TENSOR_MAP_DATA_TYPE_FLOAT16
constexpr unsigned kSwizzle128 = 3; // CU_TENSOR_MAP_SWIZZLE_128B

/// Device memory for the tensor-map tests, aligned as cuMemAlloc's.
struct DeviceMemory {
  struct Free {
    void operator()(char *p) const { std::free(p); }
  };
  std::vector<std::pair<std::unique_ptr<char, Free>, size_t>> blocks;

  template <typename T> T *alloc(size_t count, T fill = T()) {
    size_t bytes = (count * sizeof(T) + 255) / 256 * 256;
    T *p = static_cast<T *>(std::aligned_alloc(256, bytes));
    std::fill(p, p + count, fill);
    blocks.emplace_back(reinterpret_cast<char *>(p), count * sizeof(T));
    return p;
  }
  ptxsim::Resolver resolver() {
    return [this](uint64_t address, ptxsim::Allocation &out) {
      for (auto &[block, size] : blocks) {
        auto base = reinterpret_cast<uint64_t>(block.get());
        if (address >= base && address < base + size) {
          out = {base, size, block.get()};
          return true;
        }
      }
      return false;
    };
  }
};

uint16_t f16Bits(float f) {
  _Float16 h = _Float16(f);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

// Thread 0 loads two 64 x 128 boxes (128-byte rows) of a 2-D f16 tensor
// map, one after the other, into the same 16 KB of dynamic shared memory,
// completing on one mbarrier (its phases 0 and 1); all 128 threads wait for
// each in an inline-assembly spin loop - the same labels in both blocks -
// and thread t copies row t of the box as it lies in shared memory to
// out[128 t] (first box) and out[16384 + 128 t] (second). Mode 1 reads the
// first box without waiting, mode 2 expects its bytes but issues no copy,
// mode 3 moves its destination 128 bytes up.
const char *kTmaBox = R"(
.version 8.3
.target sm_90a
.address_size 64

.extern .shared .align 1024 .b8 tiles[];

.visible .entry box(
	.param .u64 box_param_0,
	.param .u64 box_param_1,
	.param .u32 box_param_2,
	.param .u32 box_param_3,
	.param .u32 box_param_4,
	.param .u32 box_param_5,
	.param .u32 box_param_6
)
.maxntid 128, 1, 1
{
	.reg .pred 	%p<6>;
	.reg .b32 	%r<16>;
	.reg .b64 	%rd<12>;
	.shared .align 8 .b8 bar[8];

	ld.param.b64 	%rd1, [box_param_0];
	ld.param.b64 	%rd2, [box_param_1];
	ld.param.b32 	%r1, [box_param_2];
	ld.param.b32 	%r2, [box_param_3];
	ld.param.b32 	%r3, [box_param_4];
	ld.param.b32 	%r4, [box_param_5];
	ld.param.b32 	%r5, [box_param_6];
	mov.u32 	%r6, %tid.x;
	setp.ne.s32 	%p1, %r6, 0;
	@%p1 bra 	$L_INIT;
	mov.b32 	%r7, 1;
	mbarrier.init.shared.b64 	[bar], %r7;
	fence.mbarrier_init.release.cluster;
	fence.proxy.tensormap::generic.acquire.gpu [%rd1], 128;
	prefetch.tensormap 	[%rd1];
$L_INIT:
	bar.sync 	0;
	mov.b64 	%rd3, tiles;
	cvta.shared.u64 	%rd4, %rd3;
	cvta.to.shared::cluster.u64 	%rd5, %rd4;
	setp.eq.u32 	%p2, %r5, 3;
	@%p2 add.s64 	%rd5, %rd5, 128;
	mov.b64 	%rd6, bar;
	cvt.u32.u64 	%r8, %rd6;
	@%p1 bra 	$L_WAIT0;
	mov.b32 	%r9, 16384;
	mbarrier.arrive.expect_tx.shared.b64 	%rd7, [bar], %r9;
	setp.eq.u32 	%p3, %r5, 2;
	@%p3 bra 	$L_WAIT0;
	cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%rd5], [%rd1, {%r1, %r2}], [bar];
$L_WAIT0:
	setp.eq.u32 	%p4, %r5, 1;
	@%p4 bra 	$L_COPY0;
	// begin inline asm
	{
	.reg .pred       P1;
	LAB_WAIT:
	mbarrier.try_wait.parity.shared.b64 P1, [%r8], 0, 1000000;
	@P1 bra.uni DONE;
	bra.uni     LAB_WAIT;
	DONE:
	}
	// end inline asm
$L_COPY0:
	mul.wide.u32 	%rd8, %r6, 128;
	add.s64 	%rd9, %rd3, %rd8;
	add.s64 	%rd10, %rd2, %rd8;
	mov.b32 	%r10, 0;
$L_LOOP0:
	ld.shared.v4.b32 	{%r11, %r12, %r13, %r14}, [%rd9];
	st.global.v4.b32 	[%rd10], {%r11, %r12, %r13, %r14};
	add.s64 	%rd9, %rd9, 16;
	add.s64 	%rd10, %rd10, 16;
	add.s32 	%r10, %r10, 1;
	setp.lt.u32 	%p5, %r10, 8;
	@%p5 bra 	$L_LOOP0;
	bar.sync 	0;
	@%p1 bra 	$L_WAIT1;
	mbarrier.arrive.expect_tx.shared::cta.b64 	_, [%r8], 16384;
	cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%rd5], [%rd1, {%r3, %r4}], [%r8];
$L_WAIT1:
	// begin inline asm
	{
	.reg .pred       P1;
	LAB_WAIT:
	mbarrier.try_wait.parity.shared.b64 P1, [%r8], 1;
	@P1 bra.uni DONE;
	bra.uni     LAB_WAIT;
	DONE:
	}
	// end inline asm
	mul.wide.u32 	%rd8, %r6, 128;
	add.s64 	%rd9, %rd3, %rd8;
	add.s64 	%rd10, %rd2, %rd8;
	add.s64 	%rd10, %rd10, 16384;
	mov.b32 	%r10, 0;
$L_LOOP1:
	ld.shared.v4.b32 	{%r11, %r12, %r13, %r14}, [%rd9];
	st.global.v4.b32 	[%rd10], {%r11, %r12, %r13, %r14};
	add.s64 	%rd9, %rd9, 16;
	add.s64 	%rd10, %rd10, 16;
	add.s32 	%r10, %r10, 1;
	setp.lt.u32 	%p5, %r10, 8;
	@%p5 bra 	$L_LOOP1;
	ret;
}
)";

/// A 100 x 150 f16 tensor with rows of 160 elements (320 bytes), and the
/// box kernel's launch on it.
struct BoxTest {
  static constexpr int64_t rows = 100, cols = 150, pitch = 160;
  DeviceMemory mem;
  uint16_t *tensor = mem.alloc<uint16_t>(rows * pitch, 0xffff);
  uint64_t *map = mem.alloc<uint64_t>(16);
  uint16_t *out = mem.alloc<uint16_t>(2 * 128 * 64, 0xdead);
  /// The two boxes' corners (column, row): partly past the tensor's end in
  /// both dimensions, and before its start in rows.
  int32_t corner[2][2] = {{96, -8}, {0, 40}};

  BoxTest() {
    // Element (r, c) is 1 + 160 r + c; the padding past column 150 keeps
    // 0xffff, which a box must not show.
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c)
        tensor[r * pitch + c] = uint16_t(1 + r * pitch + c);
  }
  std::string encode(unsigned swizzle) {
    uint64_t dims[] = {cols, rows}, strides[] = {pitch * 2};
    uint32_t box[] = {64, 128}, elementStrides[] = {1, 1};
    return ptxsim::encodeTiledTensorMap(map, kFloat16, 2, tensor, dims,
                                        strides, box, elementStrides, 0,
                                        swizzle, 0, 0);
  }
  ptxsim::LaunchResult run(const ptxsim::Module &m, uint32_t mode,
                           unsigned dynamicShared = 16384) {
    void *mapPtr = map, *outPtr = out;
    void *params[] = {&mapPtr, &outPtr,       &corner[0][0], &corner[0][1],
                      &corner[1][0], &corner[1][1], &mode};
    return ptxsim::launch(m, "box", {1, 1, 1}, {128, 1, 1}, dynamicShared,
                          params, mem.resolver(), 1);
  }
  /// Element (r, c) of box `b` as the copy leaves it in shared memory: the
  /// 16-byte chunk c / 8 of row r at chunk (c / 8) ^ (r % 8) when swizzled
  /// by 128 bytes.
  uint16_t landed(int b, bool swizzled, int r, int c) const {
    int chunk = swizzled ? (c / 8) ^ (r % 8) : c / 8;
    return out[b * 8192 + r * 64 + chunk * 8 + c % 8];
  }
  uint16_t expected(int b, int r, int c) const {
    int64_t x = corner[b][0] + c, y = corner[b][1] + r;
    bool inside = x >= 0 && x < cols && y >= 0 && y < rows;
    return inside ? uint16_t(1 + y * pitch + x) : 0;
  }
};

TEST(PtxSimTma, SwizzledBoxPartlyOutOfBoundsWaitedOnTwice) {
  ModulePtr m = parseOrFail(kTmaBox);
  ASSERT_TRUE(m);
  for (unsigned swizzle : {kSwizzle128, 0u}) {
    SCOPED_TRACE("swizzle " + std::to_string(swizzle));
    BoxTest t;
    ASSERT_EQ(t.encode(swizzle), "");
    ptxsim::LaunchResult r = t.run(*m, 0);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    unsigned mismatches = 0;
    for (int b = 0; b < 2; ++b)
      for (int row = 0; row < 128; ++row)
        for (int c = 0; c < 64; ++c)
          if (t.landed(b, swizzle != 0, row, c) != t.expected(b, row, c) &&
              ++mismatches < 10)
            ADD_FAILURE() << "box " << b << ", row " << row << ", column "
                          << c << ": " << t.landed(b, swizzle != 0, row, c)
                          << ", not " << t.expected(b, row, c);
    EXPECT_EQ(mismatches, 0u);
  }
}

TEST(PtxSimTma, ReadingBeforeTheWaitOrWaitingForeverFails) {
  ModulePtr m = parseOrFail(kTmaBox);
  ASSERT_TRUE(m);
  BoxTest t;
  ASSERT_EQ(t.encode(kSwizzle128), "");

  ptxsim::LaunchResult r = t.run(*m, 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("kernel box, thread (0,0,0) of block (0,0,0)"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("`ld.shared.v4.b32 \t{%r11, %r12, %r13, %r14}, "
                           "[%rd9]`: reads shared memory that a "
                           "cp.async.bulk.tensor still in flight writes"),
            std::string::npos)
      << r.message;

  // The bytes are expected but never come: every thread sleeps on the
  // mbarrier, and the launch ends instead of spinning.
  r = t.run(*m, 2);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("kernel box, thread (0,0,0) of block (0,0,0), "
                           "PTX line 61 `mbarrier.try_wait.parity.shared.b64 "
                           "P1, [%r8], 0, 1000000`: deadlock"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("awaits 0 of 1 arrivals and 16384 transaction "
                           "bytes"),
            std::string::npos)
      << r.message;

  r = t.run(*m, 3, 16384 + 1024);
  ASSERT_EQ(r.failure, ptxsim::Failure::MisalignedAddress);
  EXPECT_NE(r.message.find("is not 1024-byte aligned, as a box swizzled by "
                           "128 bytes must be"),
            std::string::npos)
      << r.message;

  std::fill(t.map, t.map + 16, 0);
  r = t.run(*m, 0);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("are not a tensor map"), std::string::npos)
      << r.message;
}

TEST(PtxSimTma, MbarrierMisuseFails) {
  BoxTest t;
  ASSERT_EQ(t.encode(kSwizzle128), "");
  std::string uninitialized = kTmaBox;
  uninitialized.erase(uninitialized.find("\tmbarrier.init"), 39);
  ModulePtr m = parseOrFail(uninitialized.c_str());
  ASSERT_TRUE(m);
  ptxsim::LaunchResult r = t.run(*m, 0);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("`mbarrier.arrive.expect_tx.shared.b64 \t%rd7, "
                           "[bar], %r9`: no mbarrier.init initialized an "
                           "mbarrier at shared offset 0"),
            std::string::npos)
      << r.message;

  // One arrival too many: the phase already has its one, and waits for
  // the bytes.
  std::string extra = kTmaBox;
  size_t copy = extra.find("\tcp.async.bulk.tensor");
  extra.replace(copy, extra.find('\n', copy) - copy,
                "\tmbarrier.arrive.shared.b64 \t_, [bar];");
  m = parseOrFail(extra.c_str());
  ASSERT_TRUE(m);
  r = t.run(*m, 0);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("an arrival count of 1 on the mbarrier at shared "
                           "offset 0, whose phase 0 expects 0 more arrivals "
                           "(1 a phase)"),
            std::string::npos)
      << r.message;
}

TEST(PtxSimTma, LabelsAndRegistersAreScopedToTheirBlock) {
  // Both inline blocks of the box kernel define LAB_WAIT, DONE and P1; a
  // branch out of a block to a label inside another is an error, as is a
  // label defined twice in one block.
  ASSERT_TRUE(parseOrFail(kTmaBox));
  std::string outside = kTmaBox;
  outside.replace(outside.find("@%p4 bra \t$L_COPY0;"), 19,
                  "@%p4 bra \tDONE;");
  std::string error;
  EXPECT_FALSE(ModulePtr(ptxsim::parse(outside, error)));
  EXPECT_EQ(error, "line 56: unknown label or symbol 'DONE'");

  std::string twice = kTmaBox;
  twice.replace(twice.find("\tDONE:\n"), 7, "\tDONE:\n\tLAB_WAIT:\n");
  error.clear();
  EXPECT_FALSE(ModulePtr(ptxsim::parse(twice, error)));
  EXPECT_EQ(error, "line 65: label 'LAB_WAIT' defined twice in one block");

  std::string leaked = kTmaBox;
  leaked.replace(leaked.find("$L_COPY0:\n"), 10,
                 "$L_COPY0:\n\t@P1 bra \t$L_COPY0;\n");
  error.clear();
  EXPECT_FALSE(ModulePtr(ptxsim::parse(leaked, error)));
  EXPECT_EQ(error, "line 68: unknown predicate P1");
}

// A warp-specialized sm_90a matmul of the shape Tessera emits, small:
// C (128 x 8, f32) = A (128 x K, f16) B^T with B 8 x K, both K-major, in K
// tiles of 64 through a two-stage ring in dynamic shared memory (A at
// 16384 s, B at 32768 + 1024 s, 128-byte swizzled; full[s] at 34816 + 8 s
// counts the producer and the bytes, empty[s] at 34832 + 8 s the 8 consumer
// warps). Warpgroup 0 produces: its thread 0 waits for a stage to be empty,
// expects its bytes and loads A's and B's tiles. Warpgroups 1 and 2 consume
// 64 rows of A each: they wait for the stage to be full, run wgmma
// m64n8k16 four times, and release the stage of the previous tile once
// wgmma.wait_group 1 retired its wgmmas. Mode 1: the consumers do not wait
// for full; mode 2: they release a stage while its wgmmas are in flight.
const char *kWarpSpecialized = R"(
.version 8.3
.target sm_90a
.address_size 64

.extern .shared .align 1024 .b8 smem[];

.visible .entry ws(
	.param .u64 ws_param_0,
	.param .u64 ws_param_1,
	.param .u64 ws_param_2,
	.param .u32 ws_param_3,
	.param .u32 ws_param_4
)
.maxntid 384, 1, 1
{
	.reg .pred 	%p<10>;
	.reg .b32 	%r<34>;
	.reg .b64 	%rd<24>;

	ld.param.b64 	%rd1, [ws_param_0];
	ld.param.b64 	%rd2, [ws_param_1];
	ld.param.b64 	%rd3, [ws_param_2];
	ld.param.b32 	%r1, [ws_param_3];
	ld.param.b32 	%r2, [ws_param_4];
	mov.u32 	%r3, %tid.x;
	mov.b64 	%rd4, smem;
	cvt.u32.u64 	%r4, %rd4;
	setp.ne.s32 	%p1, %r3, 0;
	@%p1 bra 	$L_INIT;
	mov.b32 	%r5, 1;
	mbarrier.init.shared.b64 	[smem+34816], %r5;
	mbarrier.init.shared.b64 	[smem+34824], %r5;
	mov.b32 	%r5, 8;
	mbarrier.init.shared.b64 	[smem+34832], %r5;
	mbarrier.init.shared.b64 	[smem+34840], %r5;
	fence.mbarrier_init.release.cluster;
$L_INIT:
	bar.sync 	0;
	setp.gt.u32 	%p2, %r3, 127;
	@%p2 bra 	$L_CONSUMER;
	setmaxnreg.dec.sync.aligned.u32 	40;
	@%p1 bra 	$L_EXIT;
	fence.proxy.tensormap::generic.acquire.gpu [%rd1], 128;
	prefetch.tensormap 	[%rd1];
	fence.proxy.tensormap::generic.acquire.gpu [%rd2], 128;
	prefetch.tensormap 	[%rd2];
	mov.b32 	%r6, 0;
$L_PRODUCE:
	and.b32 	%r7, %r6, 1;
	bfe.u32 	%r8, %r6, 1, 1;
	xor.b32 	%r8, %r8, 1;
	shl.b32 	%r9, %r7, 3;
	add.s32 	%r10, %r4, %r9;
	add.s32 	%r11, %r10, 34816;
	add.s32 	%r12, %r10, 34832;
	// begin inline asm
	{
	.reg .pred       P1;
	LAB_WAIT:
	mbarrier.try_wait.parity.shared.b64 P1, [%r12], %r8, 1000000;
	@P1 bra.uni DONE;
	bra.uni     LAB_WAIT;
	DONE:
	}
	// end inline asm
	mov.b32 	%r13, 17408;
	mbarrier.arrive.expect_tx.shared.b64 	%rd5, [%r11], %r13;
	shl.b32 	%r14, %r6, 6;
	mov.b32 	%r15, 0;
	mul.wide.u32 	%rd6, %r7, 16384;
	add.s64 	%rd7, %rd4, %rd6;
	cvta.shared.u64 	%rd8, %rd7;
	cvta.to.shared::cluster.u64 	%rd9, %rd8;
	cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%rd9], [%rd1, {%r14, %r15}], [%r11];
	mul.wide.u32 	%rd10, %r7, 1024;
	add.s64 	%rd11, %rd4, %rd10;
	add.s64 	%rd11, %rd11, 32768;
	cvta.shared.u64 	%rd12, %rd11;
	cvta.to.shared::cluster.u64 	%rd13, %rd12;
	cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%rd13], [%rd2, {%r14, %r15}], [%r11];
	add.s32 	%r6, %r6, 1;
	setp.lt.u32 	%p3, %r6, %r1;
	@%p3 bra 	$L_PRODUCE;
$L_EXIT:
	ret;
$L_CONSUMER:
	setmaxnreg.inc.sync.aligned.u32 	232;
	sub.s32 	%r16, %r3, 128;
	shr.u32 	%r17, %r16, 7;
	and.b32 	%r18, %r3, 31;
	setp.eq.u32 	%p4, %r18, 0;
	setp.eq.u32 	%p5, %r3, %r3;
	mov.b32 	%r20, 0;
	mov.b32 	%r21, 0;
	mov.b32 	%r22, 0;
	mov.b32 	%r23, 0;
	mov.b32 	%r6, 0;
$L_CONSUME:
	and.b32 	%r7, %r6, 1;
	bfe.u32 	%r8, %r6, 1, 1;
	shl.b32 	%r9, %r7, 3;
	add.s32 	%r10, %r4, %r9;
	add.s32 	%r11, %r10, 34816;
	setp.eq.u32 	%p6, %r2, 1;
	@%p6 bra 	$L_FULL;
	// begin inline asm
	{
	.reg .pred       P1;
	LAB_WAIT:
	mbarrier.try_wait.parity.shared.b64 P1, [%r11], %r8, 1000000;
	@P1 bra.uni DONE;
	bra.uni     LAB_WAIT;
	DONE:
	}
	// end inline asm
$L_FULL:
	mul.wide.u32 	%rd14, %r7, 16384;
	mul.wide.u32 	%rd15, %r17, 8192;
	add.s64 	%rd16, %rd4, %rd14;
	add.s64 	%rd16, %rd16, %rd15;
	shr.u64 	%rd16, %rd16, 4;
	or.b64 	%rd16, %rd16, 4611686293305360384;
	mul.wide.u32 	%rd17, %r7, 1024;
	add.s64 	%rd18, %rd4, %rd17;
	add.s64 	%rd18, %rd18, 32768;
	shr.u64 	%rd18, %rd18, 4;
	or.b64 	%rd18, %rd18, 4611686293305360384;
	wgmma.fence.sync.aligned;
	wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%r20, %r21, %r22, %r23}, %rd16, %rd18, %p5, 1, 1, 0, 0;
	add.s64 	%rd19, %rd16, 2;
	add.s64 	%rd20, %rd18, 2;
	wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%r20, %r21, %r22, %r23}, %rd19, %rd20, %p5, 1, 1, 0, 0;
	add.s64 	%rd19, %rd16, 4;
	add.s64 	%rd20, %rd18, 4;
	wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%r20, %r21, %r22, %r23}, %rd19, %rd20, %p5, 1, 1, 0, 0;
	add.s64 	%rd19, %rd16, 6;
	add.s64 	%rd20, %rd18, 6;
	wgmma.mma_async.sync.aligned.m64n8k16.f32.f16.f16 {%r20, %r21, %r22, %r23}, %rd19, %rd20, %p5, 1, 1, 0, 0;
	wgmma.commit_group.sync.aligned;
	wgmma.wait_group.sync.aligned 	1;
	mov.b32 	%r24, %r7;
	setp.eq.u32 	%p7, %r2, 2;
	@%p7 bra 	$L_RELEASE;
	setp.eq.u32 	%p8, %r6, 0;
	@%p8 bra 	$L_NEXT;
	xor.b32 	%r24, %r7, 1;
$L_RELEASE:
	shl.b32 	%r25, %r24, 3;
	add.s32 	%r26, %r4, %r25;
	add.s32 	%r26, %r26, 34832;
	@%p4 mbarrier.arrive.shared.b64 	%rd21, [%r26];
$L_NEXT:
	add.s32 	%r6, %r6, 1;
	setp.lt.u32 	%p9, %r6, %r1;
	@%p9 bra 	$L_CONSUME;
	wgmma.wait_group.sync.aligned 	0;
	bfe.u32 	%r27, %r16, 5, 2;
	shl.b32 	%r28, %r17, 6;
	shl.b32 	%r29, %r27, 4;
	shr.u32 	%r30, %r18, 2;
	add.s32 	%r31, %r28, %r29;
	add.s32 	%r31, %r31, %r30;
	and.b32 	%r32, %r18, 3;
	shl.b32 	%r32, %r32, 1;
	shl.b32 	%r33, %r31, 3;
	add.s32 	%r33, %r33, %r32;
	mul.wide.u32 	%rd22, %r33, 4;
	add.s64 	%rd23, %rd3, %rd22;
	st.global.v2.b32 	[%rd23], {%r20, %r21};
	st.global.v2.b32 	[%rd23+256], {%r22, %r23};
	ret;
}
)";

/// The warp-specialized kernel on A (120 x 250) and B (8 x 250), rows 512
/// bytes apart with NaN in the padding: the last K tile and A's last 8 rows
/// of the box lie past the tensors' ends, and must read as zeros.
struct WarpSpecializedTest {
  static constexpr int64_t m = 120, n = 8, k = 250, pitch = 256;
  DeviceMemory mem;
  uint16_t *a = mem.alloc<uint16_t>(m * pitch, 0x7e00);
  uint16_t *b = mem.alloc<uint16_t>(n * pitch, 0x7e00);
  uint64_t *mapA = mem.alloc<uint64_t>(16), *mapB = mem.alloc<uint64_t>(16);
  float *c = mem.alloc<float>(128 * n, -1.0f);

  static float valueA(int64_t i, int64_t j) { return float((3 * i + j) % 7 - 3); }
  static float valueB(int64_t i, int64_t j) { return float((i + 2 * j) % 5 - 2); }

  WarpSpecializedTest() {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < k; ++j)
        a[i * pitch + j] = f16Bits(valueA(i, j));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j)
        b[i * pitch + j] = f16Bits(valueB(i, j));
    uint64_t dimsA[] = {k, m}, dimsB[] = {k, n}, strides[] = {pitch * 2};
    uint32_t boxA[] = {64, 128}, boxB[] = {64, 8}, elementStrides[] = {1, 1};
    EXPECT_EQ(ptxsim::encodeTiledTensorMap(mapA, kFloat16, 2, a, dimsA,
                                           strides, boxA, elementStrides, 0,
                                           kSwizzle128, 0, 0),
              "");
    EXPECT_EQ(ptxsim::encodeTiledTensorMap(mapB, kFloat16, 2, b, dimsB,
                                           strides, boxB, elementStrides, 0,
                                           kSwizzle128, 0, 0),
              "");
  }
  ptxsim::LaunchResult run(const ptxsim::Module &module, uint32_t mode) {
    void *pa = mapA, *pb = mapB, *pc = c;
    uint32_t tiles = 4;
    void *params[] = {&pa, &pb, &pc, &tiles, &mode};
    return ptxsim::launch(module, "ws", {1, 1, 1}, {384, 1, 1}, 34848,
                          params, mem.resolver(), 1);
  }
};

TEST(PtxSimTma, WarpSpecializedMatmulThroughARing) {
  ModulePtr module = parseOrFail(kWarpSpecialized);
  ASSERT_TRUE(module);
  WarpSpecializedTest t;
  ptxsim::LaunchResult r = t.run(*module, 0);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  for (int64_t i = 0; i < 128; ++i)
    for (int64_t j = 0; j < t.n; ++j) {
      // Rows past A's end read as zeros.
      float want = 0;
      for (int64_t kk = 0; kk < t.k && i < t.m; ++kk)
        want += t.valueA(i, kk) * t.valueB(j, kk);
      EXPECT_EQ(t.c[i * t.n + j], want) << "C[" << i << "][" << j << "]";
    }
}

TEST(PtxSimTma, WarpSpecializedHazards) {
  ModulePtr module = parseOrFail(kWarpSpecialized);
  ASSERT_TRUE(module);
  {
    WarpSpecializedTest t;
    ptxsim::LaunchResult r = t.run(*module, 1);
    ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
    EXPECT_NE(r.message.find("kernel ws, thread (128,0,0)"), std::string::npos)
        << r.message;
    EXPECT_NE(r.message.find("`wgmma.mma_async.sync.aligned.m64n8k16.f32.f16."
                             "f16 {%r20, %r21, %r22, %r23}, %rd16, %rd18, "
                             "%p5, 1, 1, 0, 0`: reads shared memory that a "
                             "cp.async.bulk.tensor still in flight writes"),
              std::string::npos)
        << r.message;
  }
  {
    WarpSpecializedTest t;
    ptxsim::LaunchResult r = t.run(*module, 2);
    ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
    EXPECT_NE(r.message.find("kernel ws, thread (0,0,0)"), std::string::npos)
        << r.message;
    EXPECT_NE(r.message.find("`cp.async.bulk.tensor.2d.shared::cluster.global."
                             "tile.mbarrier::complete_tx::bytes [%rd9], "
                             "[%rd1, {%r14, %r15}], [%r11]`: lands on shared "
                             "byte 16384, which the wgmma.mma_async at PTX "
                             "line"),
              std::string::npos)
        << r.message;
    EXPECT_NE(r.message.find("still in flight reads: retire it with "
                             "wgmma.wait_group before releasing its buffer"),
              std::string::npos)
        << r.message;
  }
}

// Threads 0-63 meet at barrier 1 (64 threads) while threads 64-127 wait at
// barrier 0 for the whole block: thread t < 64 writes out[t] = the value of
// thread t ^ 32, then every thread writes out[128 + t] = that of 127 - t
// (thread t's value is t + 1).
const char *kNamedBarriers = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry named(
	.param .u64 named_param_0
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<10>;
	.shared .align 4 .b8 buf[512];

	ld.param.b64 	%rd1, [named_param_0];
	mov.u32 	%r1, %tid.x;
	add.s32 	%r2, %r1, 1;
	mul.wide.u32 	%rd2, %r1, 4;
	mov.b64 	%rd3, buf;
	add.s64 	%rd4, %rd3, %rd2;
	st.shared.b32 	[%rd4], %r2;
	setp.lt.u32 	%p1, %r1, 64;
	@!%p1 bra 	$L_ALL;
	mov.b32 	%r3, 1;
	bar.sync 	%r3, 64;
	xor.b32 	%r4, %r1, 32;
	mul.wide.u32 	%rd5, %r4, 4;
	add.s64 	%rd6, %rd3, %rd5;
	ld.shared.b32 	%r5, [%rd6];
	add.s64 	%rd7, %rd1, %rd2;
	st.global.b32 	[%rd7], %r5;
$L_ALL:
	bar.sync 	0;
	sub.s32 	%r6, 127, %r1;
	mul.wide.u32 	%rd8, %r6, 4;
	add.s64 	%rd9, %rd3, %rd8;
	ld.shared.b32 	%r7, [%rd9];
	add.s64 	%rd7, %rd1, %rd2;
	st.global.b32 	[%rd7+512], %r7;
	ret;
}
)";

TEST(PtxSimTma, NamedBarrierReleasesAtItsThreadCount) {
  ModulePtr m = parseOrFail(kNamedBarriers);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  uint32_t *out = mem.alloc<uint32_t>(256, 0xffffffff);
  void *ptr = out;
  void *params[] = {&ptr};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "named", {1, 1, 1}, {128, 1, 1},
                                          0, params, mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  for (uint32_t t = 0; t < 128; ++t) {
    EXPECT_EQ(out[t], t < 64 ? (t ^ 32) + 1 : 0xffffffff) << t;
    EXPECT_EQ(out[128 + t], 128 - t) << t;
  }

  std::string more = kNamedBarriers;
  more.replace(more.find("%r3, 64;"), 8, "%r3, 96;");
  m = parseOrFail(more.c_str());
  ASSERT_TRUE(m);
  r = ptxsim::launch(*m, "named", {1, 1, 1}, {128, 1, 1}, 0, params,
                     mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("thread (0,0,0) of block (0,0,0), PTX line 25 "
                           "`bar.sync \t%r3, 96`: deadlock: barrier 1 waits "
                           "for 96 threads, and 64 arrived"),
            std::string::npos)
      << r.message;
}

TEST(PtxSimTma, FakeDriverEncodesAndChecksTensorMaps) {
  void *lib = dlopen(TESSERA_FAKE_CUDA, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << dlerror();
  using Encode = int (*)(void *, int, uint32_t, void *, const uint64_t *,
                         const uint64_t *, const uint32_t *, const uint32_t *,
                         int, int, int, int);
  auto encode = reinterpret_cast<Encode>(dlsym(lib, "cuTensorMapEncodeTiled"));
  auto encoded =
      reinterpret_cast<int (*)()>(dlsym(lib, "fakeCudaTensorMapsEncoded"));
  ASSERT_NE(encode, nullptr);
  ASSERT_NE(encoded, nullptr);
  constexpr int invalidValue = 1; // CUDA_ERROR_INVALID_VALUE

  DeviceMemory mem;
  char *tensor = mem.alloc<char>(64 << 10);
  uint64_t *map = mem.alloc<uint64_t>(32, 0x1234);
  struct Args {
    void *map;
    unsigned dataType = kFloat16, rank = 2;
    char *address;
    uint64_t dims[2] = {150, 100}, strides[1] = {320};
    uint32_t box[2] = {64, 128}, elementStrides[2] = {1, 1};
    unsigned interleave = 0, swizzle = kSwizzle128, l2 = 0, oobFill = 0;
  };
  auto call = [&](const Args &a) {
    return encode(a.map, int(a.dataType), a.rank, a.address, a.dims,
                  a.strides, a.box, a.elementStrides, int(a.interleave),
                  int(a.swizzle), int(a.l2), int(a.oobFill));
  };
  const Args valid{map, kFloat16, 2, tensor};
  int before = encoded();
  ASSERT_EQ(call(valid), 0);
  EXPECT_EQ(encoded(), before + 1);
  EXPECT_EQ(map[0], 0x50414d5453534554u); // "TESSTMAP"
  EXPECT_EQ(map[2], reinterpret_cast<uint64_t>(tensor));

  std::vector<uint64_t> written(map, map + 16);
  std::vector<std::pair<const char *, Args>> invalid;
  auto add = [&](const char *what, auto change) {
    Args a = valid;
    change(a);
    invalid.emplace_back(what, a);
  };
  add("misaligned address", [&](Args &a) { a.address = tensor + 8; });
  add("stride not a multiple of 16", [](Args &a) { a.strides[0] = 328; });
  add("map not 64-byte aligned", [&](Args &a) { a.map = map + 1; });
  add("rank 0", [](Args &a) { a.rank = 0; });
  add("rank 6", [](Args &a) { a.rank = 6; });
  add("dimension 0", [](Args &a) { a.dims[1] = 0; });
  add("box of 0", [](Args &a) { a.box[1] = 0; });
  add("box of 257", [](Args &a) { a.box[1] = 257; });
  add("inner box of 8 bytes", [](Args &a) { a.box[0] = 4; });
  add("inner box wider than the swizzle", [](Args &a) { a.box[0] = 128; });
  add("element stride 2", [](Args &a) { a.elementStrides[1] = 2; });
  add("interleave", [](Args &a) { a.interleave = 1; });
  add("unknown swizzle", [](Args &a) { a.swizzle = 7; });
  add("NaN fill", [](Args &a) { a.oobFill = 1; });
  add("packed type", [](Args &a) { a.dataType = 13; });
  for (auto &[what, args] : invalid) {
    EXPECT_EQ(call(args), invalidValue) << what;
    EXPECT_EQ(std::vector<uint64_t>(map, map + 16), written) << what;
  }
  EXPECT_EQ(encoded(), before + 1);
  // 128-byte rows with no swizzle, and a 64-byte swizzle of 64-byte rows.
  Args wide = valid;
  wide.swizzle = 0;
  wide.box[0] = 128;
  EXPECT_EQ(call(wide), 0);
  Args narrow = valid;
  narrow.swizzle = 2;
  narrow.box[0] = 32;
  EXPECT_EQ(call(narrow), 0);
  dlclose(lib);
}

// Atomics across blocks: every thread adds 1 to counters[0] with
// atom.global.add.u32 and writes the old value to olds[its global index],
// adds that index to counters[1] (red), 1.0 to the f32 counters[2], 3 to
// the u64 at counters[4] through a generic address and -1 to the s32
// counters[6] - with the semantics and scopes LLVM may print.
const char *kAtomics = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry count(
	.param .u64 .ptr .global .align 1 count_param_0,
	.param .u64 .ptr .global .align 1 count_param_1
)
{
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<7>;

	ld.param.b64 	%rd1, [count_param_0];
	ld.param.b64 	%rd2, [count_param_1];
	mov.u32 	%r1, %tid.x;
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %ntid.x;
	mad.lo.s32 	%r4, %r2, %r3, %r1;
	atom.global.add.u32 	%r5, [%rd1], 1;
	mul.wide.u32 	%rd3, %r4, 4;
	add.s64 	%rd4, %rd2, %rd3;
	st.global.b32 	[%rd4], %r5;
	red.relaxed.gpu.global.add.u32 	[%rd1+4], %r4;
	atom.acq_rel.gpu.global.add.f32 	%r6, [%rd1+8], 0f3F800000;
	cvta.global.u64 	%rd5, %rd1;
	atom.add.u64 	%rd6, [%rd5+16], 3;
	atom.relaxed.sys.global.add.s32 	%r7, [%rd1+24], -1;
	ret;
}

	// Thread 0 of each block takes a spin lock (cas), adds 1 and its
	// block's index to data[0] and data[1] with plain loads and stores, and
	// releases the lock (exch).
.visible .entry locked(
	.param .u64 .ptr .global .align 1 locked_param_0,
	.param .u64 .ptr .global .align 1 locked_param_1
)
{
	.reg .pred 	%p<3>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<3>;

	ld.param.b64 	%rd1, [locked_param_0];
	ld.param.b64 	%rd2, [locked_param_1];
	mov.u32 	%r1, %tid.x;
	setp.ne.s32 	%p1, %r1, 0;
	@%p1 bra 	$L__BB1_3;
$L__BB1_1:
	atom.acquire.gpu.global.cas.b32 	%r2, [%rd1], 0, 1;
	setp.ne.s32 	%p2, %r2, 0;
	@%p2 bra 	$L__BB1_1;
	ld.global.b32 	%r3, [%rd2];
	add.s32 	%r4, %r3, 1;
	st.global.b32 	[%rd2], %r4;
	mov.u32 	%r5, %ctaid.x;
	ld.global.b32 	%r6, [%rd2+4];
	add.s32 	%r7, %r6, %r5;
	st.global.b32 	[%rd2+4], %r7;
	fence.sc.gpu;
	atom.release.gpu.global.exch.b32 	%r2, [%rd1], 0;
$L__BB1_3:
	ret;
}
)";

TEST(PtxSimAtomics, AddFromEveryThreadOfConcurrentBlocks) {
  ModulePtr m = parseOrFail(kAtomics);
  ASSERT_TRUE(m);
  constexpr uint32_t blocks = 64, threads = 128, n = blocks * threads;
  for (unsigned workers : {1u, 4u}) {
    DeviceMemory mem;
    uint32_t *counters = mem.alloc<uint32_t>(8, 0);
    uint32_t *olds = mem.alloc<uint32_t>(n, 0xffffffff);
    void *ptrs[] = {counters, olds};
    void *params[] = {&ptrs[0], &ptrs[1]};
    ptxsim::LaunchResult r =
        ptxsim::launch(*m, "count", {blocks, 1, 1}, {threads, 1, 1}, 0,
                       params, mem.resolver(), workers);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    EXPECT_EQ(counters[0], n) << workers;
    EXPECT_EQ(counters[1], n * (n - 1) / 2) << workers;
    float sum;
    std::memcpy(&sum, &counters[2], 4);
    EXPECT_EQ(sum, float(n)) << workers;
    uint64_t wide;
    std::memcpy(&wide, &counters[4], 8);
    EXPECT_EQ(wide, 3u * n) << workers;
    EXPECT_EQ(int32_t(counters[6]), -int32_t(n)) << workers;
    // Each thread saw another count.
    std::vector<uint32_t> seen(olds, olds + n);
    std::sort(seen.begin(), seen.end());
    for (uint32_t i = 0; i < n; ++i)
      ASSERT_EQ(seen[i], i) << workers;
  }
}

TEST(PtxSimAtomics, CompareAndSwapLockAcrossWorkers) {
  ModulePtr m = parseOrFail(kAtomics);
  ASSERT_TRUE(m);
  constexpr uint32_t blocks = 200;
  DeviceMemory mem;
  uint32_t *lock = mem.alloc<uint32_t>(1, 0);
  uint32_t *data = mem.alloc<uint32_t>(2, 0);
  void *ptrs[] = {lock, data};
  void *params[] = {&ptrs[0], &ptrs[1]};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "locked", {blocks, 1, 1},
                                          {32, 1, 1}, 0, params,
                                          mem.resolver(), 4);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  EXPECT_EQ(*lock, 0u);
  EXPECT_EQ(data[0], blocks);
  EXPECT_EQ(data[1], blocks * (blocks - 1) / 2);
}

// Split-K's handshake: thread t of block b writes partials[128 b + t] =
// 128 b + t + 1; after membar.gl and bar.sync, thread 0 counts its block
// done on *counter and bar.red.or tells the block whether it was the last.
// The last block sums all partials, each thread into a shared accumulator
// (atom.shared), writes the sum to *out and resets the counter.
const char *kLastBlock = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry last(
	.param .u64 .ptr .global .align 1 last_param_0,
	.param .u64 .ptr .global .align 1 last_param_1,
	.param .u64 .ptr .global .align 1 last_param_2
)
{
	.reg .pred 	%p<5>;
	.reg .b32 	%r<14>;
	.reg .b64 	%rd<9>;
	.shared .align 4 .u32 acc;

	ld.param.b64 	%rd1, [last_param_0];
	ld.param.b64 	%rd2, [last_param_1];
	ld.param.b64 	%rd3, [last_param_2];
	mov.u32 	%r1, %tid.x;
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %nctaid.x;
	shl.b32 	%r4, %r2, 7;
	add.s32 	%r4, %r4, %r1;
	add.s32 	%r5, %r4, 1;
	mul.wide.u32 	%rd4, %r4, 4;
	add.s64 	%rd5, %rd1, %rd4;
	st.global.b32 	[%rd5], %r5;
	setp.eq.s32 	%p1, %r1, 0;
	mov.b64 	%rd8, acc;
	@%p1 st.shared.b32 	[%rd8], 0;
	membar.gl;
	bar.sync 	0;
	mov.pred 	%p2, 0;
	@!%p1 bra 	$L__BB0_2;
	atom.global.add.u32 	%r6, [%rd2], 1;
	add.s32 	%r7, %r3, -1;
	setp.eq.s32 	%p2, %r6, %r7;
$L__BB0_2:
	bar.red.or.pred 	%p3, 0, %p2;
	@!%p3 bra 	$L__BB0_6;
	fence.acq_rel.gpu;
	mov.b32 	%r8, 0;
	shl.b32 	%r9, %r3, 7;
	mov.u32 	%r10, %r1;
$L__BB0_3:
	setp.ge.u32 	%p4, %r10, %r9;
	@%p4 bra 	$L__BB0_5;
	mul.wide.u32 	%rd6, %r10, 4;
	add.s64 	%rd7, %rd1, %rd6;
	ld.global.b32 	%r11, [%rd7];
	add.s32 	%r8, %r8, %r11;
	add.s32 	%r10, %r10, 128;
	bra 	$L__BB0_3;
$L__BB0_5:
	atom.shared.add.u32 	%r12, [%rd8], %r8;
	bar.sync 	0;
	@!%p1 bra 	$L__BB0_6;
	ld.shared.b32 	%r13, [%rd8];
	st.global.b32 	[%rd3], %r13;
	st.global.b32 	[%rd2], 0;
$L__BB0_6:
	ret;
}
)";

TEST(PtxSimAtomics, LastBlockSumsThePartials) {
  ModulePtr m = parseOrFail(kLastBlock);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  constexpr uint32_t maxBlocks = 301;
  uint32_t *partials = mem.alloc<uint32_t>(maxBlocks * 128, 0);
  uint32_t *counter = mem.alloc<uint32_t>(1, 0);
  uint32_t *out = mem.alloc<uint32_t>(1, 0);
  void *ptrs[] = {partials, counter, out};
  void *params[] = {&ptrs[0], &ptrs[1], &ptrs[2]};
  // The counter goes back to 0 for each next launch, as in split-K.
  for (uint32_t blocks : {1u, 2u, 97u, 300u, maxBlocks})
    for (unsigned workers : {1u, 4u}) {
      *out = 0;
      ptxsim::LaunchResult r = ptxsim::launch(*m, "last", {blocks, 1, 1},
                                              {128, 1, 1}, 0, params,
                                              mem.resolver(), workers);
      ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
      uint32_t n = blocks * 128;
      EXPECT_EQ(*out, n * (n + 1) / 2) << blocks << " blocks, " << workers;
      EXPECT_EQ(*counter, 0u) << blocks << " blocks, " << workers;
    }

  // A plain access of what another thread updated atomically since the
  // last barrier races; atomic updates among themselves do not.
  std::string racy = kLastBlock;
  racy.erase(racy.find("\tbar.sync \t0;\n\t@!%p1"), 13);
  m = parseOrFail(racy.c_str());
  ASSERT_TRUE(m);
  ptxsim::LaunchResult r = ptxsim::launch(*m, "last", {1, 1, 1}, {128, 1, 1},
                                          0, params, mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("thread (1,0,0) of block (0,0,0), PTX line 56 "
                           "`atom.shared.add.u32 \t%r12, [%rd8], %r8`: race "
                           "on shared memory: byte 0 updated atomically here "
                           "without a barrier since thread 0 read it"),
            std::string::npos)
      << r.message;
}

// Threads 0-63 reduce at barrier 1 (64 threads) and threads 64-127 at
// barrier 2 (64 threads), then all 128 at barrier 0: thread t of block b
// writes to out[512 b + 4 t..512 b + 4 t + 3] the or of t == 37, the and of t != 37 (barrier 1) or
// t >= 64 (barrier 2), the popc of t % 3 == 0 (barrier 1) or of its
// negation (barrier 2), and the block's popc of t < 100.
const char *kVotes = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry votes(
	.param .u64 .ptr .global .align 1 votes_param_0
)
{
	.reg .pred 	%p<9>;
	.reg .b32 	%r<11>;
	.reg .b64 	%rd<4>;

	ld.param.b64 	%rd1, [votes_param_0];
	mov.u32 	%r1, %tid.x;
	setp.eq.s32 	%p1, %r1, 37;
	rem.u32 	%r2, %r1, 3;
	setp.eq.s32 	%p2, %r2, 0;
	setp.lt.u32 	%p3, %r1, 64;
	@!%p3 bra 	$L__BB0_2;
	bar.red.or.pred 	%p4, 1, 64, %p1;
	mov.b32 	%r3, 64;
	bar.red.and.pred 	%p5, 1, %r3, !%p1;
	barrier.cta.red.popc.aligned.u32 	%r4, 1, 64, %p2;
	bra 	$L__BB0_3;
$L__BB0_2:
	setp.ge.u32 	%p6, %r1, 64;
	barrier.red.or.pred 	%p4, 2, 64, %p1;
	barrier.cta.red.and.pred 	%p5, 2, 64, %p6;
	bar.red.popc.u32 	%r4, 2, 64, !%p2;
$L__BB0_3:
	setp.lt.u32 	%p7, %r1, 100;
	bar.red.popc.u32 	%r5, 0, %p7;
	selp.b32 	%r6, 1, 0, %p4;
	selp.b32 	%r7, 1, 0, %p5;
	mov.u32 	%r8, %ctaid.x;
	shl.b32 	%r9, %r8, 7;
	add.s32 	%r10, %r9, %r1;
	mul.wide.u32 	%rd2, %r10, 16;
	add.s64 	%rd3, %rd1, %rd2;
	st.global.v4.b32 	[%rd3], {%r6, %r7, %r4, %r5};
	ret;
}
)";

TEST(PtxSimAtomics, BarrierReductionsWithThreadCounts) {
  ModulePtr m = parseOrFail(kVotes);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  uint32_t *out = mem.alloc<uint32_t>(1024, 0xffffffff);
  void *ptr = out;
  void *params[] = {&ptr};
  ptxsim::LaunchResult r = ptxsim::launch(*m, "votes", {2, 1, 1}, {128, 1, 1},
                                          0, params, mem.resolver(), 2);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  for (uint32_t t = 0; t < 256; ++t) {
    bool first = t % 128 < 64;
    EXPECT_EQ(out[4 * t], first ? 1u : 0u) << t;
    EXPECT_EQ(out[4 * t + 1], first ? 0u : 1u) << t;
    // Multiples of 3: 22 in [0, 64), 21 in [64, 128).
    EXPECT_EQ(out[4 * t + 2], first ? 22u : 64u - 21u) << t;
    EXPECT_EQ(out[4 * t + 3], 100u) << t;
  }

  // A barrier's threads must all reduce alike: here threads 64-127 wait
  // at barrier 1 too, 32 of them with bar.sync.
  std::string mixed = kVotes;
  mixed.replace(mixed.find("\tbarrier.red.or.pred \t%p4, 2, 64, %p1;"), 38,
                "\tsetp.lt.u32 \t%p8, %r1, 96;\n"
                "\t@%p8 bar.sync \t1, 128;\n"
                "\t@!%p8 bar.red.or.pred \t%p4, 1, 128, %p1;");
  mixed.replace(mixed.find("%p4, 1, 64, %p1"), 15, "%p4, 1, 128, %p1");
  m = parseOrFail(mixed.c_str());
  ASSERT_TRUE(m);
  r = ptxsim::launch(*m, "votes", {1, 1, 1}, {128, 1, 1}, 0, params,
                     mem.resolver(), 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("thread (64,0,0) of block (0,0,0), PTX line 29 "
                           "`@%p8 bar.sync \t1, 128`: bar.sync at barrier 1, "
                           "while thread 0 waits there at bar.red.or: the "
                           "threads of a barrier must all reduce alike, or "
                           "none"),
            std::string::npos)
      << r.message;

  // popc gives a u32, and/or a predicate.
  std::string error;
  std::string wrong = kVotes;
  wrong.replace(wrong.find("bar.red.popc.u32 \t%r5"), 16, "bar.red.popc.pred");
  ModulePtr bad(ptxsim::parse(wrong, error));
  EXPECT_FALSE(bad);
  EXPECT_NE(error.find("line 33: unsupported PTX instruction "
                       "'bar.red.popc.pred'"),
            std::string::npos)
      << error;
}

// Each thread adds 1 to the u32 at p + offset, in global memory (mode 0,
// through a generic address in mode 1) or at shared offset `offset` of a
// 64-byte buffer (mode 2).
const char *kAtomAt = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry atomat(
	.param .u64 .ptr .global .align 1 atomat_param_0,
	.param .u64 atomat_param_1,
	.param .u32 atomat_param_2
)
{
	.reg .pred 	%p<3>;
	.reg .b32 	%r<4>;
	.reg .b64 	%rd<5>;
	.shared .align 4 .b8 buf[64];

	ld.param.b64 	%rd1, [atomat_param_0];
	ld.param.b64 	%rd2, [atomat_param_1];
	ld.param.b32 	%r1, [atomat_param_2];
	add.s64 	%rd3, %rd1, %rd2;
	setp.eq.s32 	%p1, %r1, 1;
	@%p1 bra 	$L__BB0_2;
	setp.eq.s32 	%p2, %r1, 2;
	@%p2 bra 	$L__BB0_3;
	atom.global.add.u32 	%r2, [%rd3], 1;
	ret;
$L__BB0_2:
	cvta.global.u64 	%rd4, %rd3;
	atom.add.u32 	%r2, [%rd4], 1;
	ret;
$L__BB0_3:
	mov.b64 	%rd4, buf;
	add.s64 	%rd4, %rd4, %rd2;
	atom.shared.add.u32 	%r3, [%rd4], 1;
	ret;
}
)";

TEST(PtxSimAtomics, MisalignedOrOutOfBoundsAtomFails) {
  ModulePtr m = parseOrFail(kAtomAt);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  uint32_t *word = mem.alloc<uint32_t>(4, 0);
  auto run = [&](uint64_t offset, uint32_t mode) {
    void *ptr = word;
    void *params[] = {&ptr, &offset, &mode};
    return ptxsim::launch(*m, "atomat", {2, 1, 1}, {32, 1, 1}, 0, params,
                          mem.resolver(), 2);
  };
  struct Case {
    uint64_t offset;
    uint32_t mode;
    ptxsim::Failure failure;
    const char *message;
  };
  const Case cases[] = {
      {12, 0, ptxsim::Failure::None, ""},
      {4, 1, ptxsim::Failure::None, ""},
      {60, 2, ptxsim::Failure::None, ""},
      {2, 0, ptxsim::Failure::MisalignedAddress,
       "PTX line 25 `atom.global.add.u32 \t%r2, [%rd3], 1`: misaligned "
       "address 0x"},
      {16, 0, ptxsim::Failure::IllegalAddress,
       "PTX line 25 `atom.global.add.u32 \t%r2, [%rd3], 1`: illegal address "
       "0x"},
      {6, 1, ptxsim::Failure::MisalignedAddress,
       "PTX line 29 `atom.add.u32 \t%r2, [%rd4], 1`: misaligned address 0x"},
      {16, 1, ptxsim::Failure::IllegalAddress,
       "PTX line 29 `atom.add.u32 \t%r2, [%rd4], 1`: illegal address 0x"},
      {64, 2, ptxsim::Failure::IllegalAddress,
       "PTX line 34 `atom.shared.add.u32 \t%r3, [%rd4], 1`: illegal address: "
       "4 bytes at shared offset 64, outside its 64 bytes"},
  };
  for (const Case &c : cases) {
    ptxsim::LaunchResult r = run(c.offset, c.mode);
    EXPECT_EQ(r.failure, c.failure) << c.offset << " " << c.mode;
    EXPECT_NE(r.message.find(c.message), std::string::npos)
        << c.offset << " " << c.mode << ": " << r.message;
  }
  // 64 additions each to word[3] and word[1].
  EXPECT_EQ(word[3], 64u);
  EXPECT_EQ(word[1], 64u);

  // Atomics take the global and shared spaces only, and red no result.
  for (const char *instruction : {"atom.local.add.u32 \t%r2, [%rd3], 1",
                                  "red.global.add.u32 \t%r2, [%rd3], 1",
                                  "atom.global.add.b32 \t%r2, [%rd3], 1",
                                  "red.global.cas.b32 \t[%rd3], 1, 2"}) {
    std::string text = kAtomAt;
    text.replace(text.find("atom.global.add.u32 \t%r2, [%rd3], 1"), 36,
                 instruction);
    std::string error;
    ModulePtr bad(ptxsim::parse(text, error));
    EXPECT_FALSE(bad) << instruction;
    EXPECT_NE(error.find("line 25: "), std::string::npos) << error;
  }
}


// Stores for launch's checkWrites. Block b (linear, of a 2D grid) and its
// thread t store, by mode:
//   0: b to the u32 at out + stride b + 4t;
//   1: atom.add 1 to that u32 instead;
//   2: b there, then t to the upper half of the block's first u32 and b to
//      all of it (through a generic address): every thread of the block
//      stores to that word, twice;
//   3: the byte b at out + stride x + y + t, for block (x,y).
const char *kStores = R"(
.version 8.3
.target sm_90a
.address_size 64

.visible .entry stores(
	.param .u64 .ptr .global .align 1 stores_param_0,
	.param .u64 stores_param_1,
	.param .u32 stores_param_2
)
{
	.reg .pred 	%p<4>;
	.reg .b32 	%r<8>;
	.reg .b64 	%rd<10>;

	ld.param.b64 	%rd1, [stores_param_0];
	ld.param.b64 	%rd2, [stores_param_1];
	ld.param.b32 	%r1, [stores_param_2];
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %ctaid.y;
	mov.u32 	%r4, %nctaid.x;
	mad.lo.s32 	%r5, %r3, %r4, %r2;
	mov.u32 	%r6, %tid.x;
	setp.eq.s32 	%p1, %r1, 3;
	@%p1 bra 	$L__BYTES;
	cvt.u64.u32 	%rd3, %r5;
	mul.lo.s64 	%rd4, %rd3, %rd2;
	add.s64 	%rd5, %rd1, %rd4;
	mul.wide.u32 	%rd6, %r6, 4;
	add.s64 	%rd7, %rd5, %rd6;
	setp.eq.s32 	%p2, %r1, 1;
	@%p2 bra 	$L__ATOM;
	st.global.b32 	[%rd7], %r5;
	setp.eq.s32 	%p3, %r1, 2;
	@!%p3 bra 	$L__DONE;
	st.global.b16 	[%rd5+2], %r6;
	cvta.global.u64 	%rd8, %rd5;
	st.b32 	[%rd8], %r5;
	bra 	$L__DONE;
$L__ATOM:
	atom.global.add.u32 	%r7, [%rd7], 1;
	bra 	$L__DONE;
$L__BYTES:
	cvt.u64.u32 	%rd3, %r2;
	mul.lo.s64 	%rd4, %rd3, %rd2;
	cvt.u64.u32 	%rd6, %r3;
	add.s64 	%rd4, %rd4, %rd6;
	cvt.u64.u32 	%rd6, %r6;
	add.s64 	%rd4, %rd4, %rd6;
	add.s64 	%rd9, %rd1, %rd4;
	st.global.u8 	[%rd9], %r5;
$L__DONE:
	ret;
}
)";

struct StoresLaunch {
  ptxsim::Module &m;
  DeviceMemory &mem;
  void *out;
  ptxsim::LaunchResult operator()(ptxsim::Dim3 grid, unsigned threads,
                                  uint64_t stride, uint32_t mode,
                                  unsigned workers, bool check = true) {
    void *params[] = {&out, &stride, &mode};
    return ptxsim::launch(m, "stores", grid, {threads, 1, 1}, 0, params,
                          mem.resolver(), workers, check);
  }
};

TEST(PtxSimWrites, BlocksStoringTheirOwnSlicesPass) {
  ModulePtr m = parseOrFail(kStores);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  constexpr uint32_t blocks = 15, threads = 64;
  uint32_t *out = mem.alloc<uint32_t>(blocks * threads, 0xffffffff);
  StoresLaunch launch{*m, mem, out};
  // Launches again over what the last one stored: the check is per launch.
  for (unsigned workers : {1u, 4u}) {
    std::fill(out, out + blocks * threads, 0xffffffff);
    ptxsim::LaunchResult r = launch({5, 3, 1}, threads, 4 * threads, 0,
                                    workers);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    for (uint32_t i = 0; i < blocks * threads; ++i)
      ASSERT_EQ(out[i], i / threads) << i << ", " << workers << " workers";

    // The threads of a block store to its first word twice each.
    r = launch({5, 3, 1}, threads, 4 * threads, 2, workers);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    for (uint32_t i = 0; i < blocks * threads; ++i)
      ASSERT_EQ(out[i], i / threads) << i << ", " << workers << " workers";

    // Blocks of 3 bytes share 16-byte granules (and their words) without
    // sharing bytes.
    auto *bytes = reinterpret_cast<uint8_t *>(out);
    std::fill(bytes, bytes + 64, 0xff);
    r = launch({20, 1, 1}, 3, 3, 3, workers);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    for (uint32_t i = 0; i < 60; ++i)
      ASSERT_EQ(bytes[i], i / 3) << i << ", " << workers << " workers";
    EXPECT_EQ(bytes[60], 0xff);
  }
}

TEST(PtxSimWrites, BlocksStoringTheSameWordFail) {
  ModulePtr m = parseOrFail(kStores);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  uint32_t *out = mem.alloc<uint32_t>(64, 0);
  StoresLaunch launch{*m, mem, out};
  std::ostringstream address;
  address << "both store to global address 0x" << std::hex
          << reinterpret_cast<uint64_t>(out)
          << ": the blocks of a launch run in any order on a GPU";
  // Without the check, the last block's store wins, as if it were right.
  ptxsim::LaunchResult r = launch({5, 3, 1}, 64, 0, 0, 1, /*check=*/false);
  ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
  EXPECT_EQ(out[0], 14u);
  r = launch({5, 3, 1}, 64, 0, 0, 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("kernel stores, thread (0,0,0) of block (1,0,0), "
                           "PTX line 33 `st.global.b32 \t[%rd7], %r5`: "
                           "blocks (1,0,0) and (0,0,0) " +
                           address.str()),
            std::string::npos)
      << r.message;
  r = launch({5, 3, 1}, 64, 0, 0, 4);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("`st.global.b32 \t[%rd7], %r5`: blocks ("),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find(address.str()), std::string::npos) << r.message;

  // Bytes: blocks (0,0,0) and (1,0,0) store bytes 0-1 and 2-3, sharing a
  // granule, then (0,1,0) bytes 1-2.
  auto *bytes = reinterpret_cast<uint8_t *>(out);
  r = launch({2, 2, 1}, 2, 2, 3, 1);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  std::ostringstream byte;
  byte << "PTX line 51 `st.global.u8 \t[%rd9], %r5`: blocks (0,1,0) and "
          "(0,0,0) both store to global address 0x"
       << std::hex << reinterpret_cast<uint64_t>(bytes + 1) << ":";
  EXPECT_NE(r.message.find(byte.str()), std::string::npos) << r.message;
  // Blocks of a row apart, of a column overlapping, on two workers.
  r = launch({2, 2, 1}, 2, 3, 3, 2);
  ASSERT_EQ(r.failure, ptxsim::Failure::LaunchFailed);
  EXPECT_NE(r.message.find("both store to global address 0x"),
            std::string::npos)
      << r.message;
}

TEST(PtxSimWrites, AtomicsOfAllBlocksOnOneWordPass) {
  ModulePtr m = parseOrFail(kStores);
  ASSERT_TRUE(m);
  DeviceMemory mem;
  uint32_t *out = mem.alloc<uint32_t>(64, 0);
  StoresLaunch launch{*m, mem, out};
  for (unsigned workers : {1u, 4u}) {
    std::fill(out, out + 64, 0);
    ptxsim::LaunchResult r = launch({5, 3, 1}, 64, 0, 1, workers);
    ASSERT_EQ(r.failure, ptxsim::Failure::None) << r.message;
    for (uint32_t i = 0; i < 64; ++i)
      ASSERT_EQ(out[i], 15u) << i << ", " << workers << " workers";
  }
}

} // namespace
