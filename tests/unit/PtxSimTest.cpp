//===- PtxSimTest.cpp - The PTX interpreter of the fake driver ------------===//
//
// Hand-written PTX: shared memory and a barrier, early exits, warp shuffles,
// packed conversions, the faults a GPU reports (out of bounds, misaligned),
// a race on shared memory, and a warpgroup MMA with the hazards the
// interpreter reports (no fence.proxy.async, a result read before its
// wait). The interpreter's
// tensor-core instructions are checked end to end instead: the bf16
// char-GPT's packages against the CPU (tests/lit/e2e/ptx-vs-cpu.test).
//
//===----------------------------------------------------------------------===//

#include "PtxSim.h"

#include <gtest/gtest.h>

#include <cstring>
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
