//===- PtxSimTest.cpp - The PTX interpreter of the fake driver ------------===//
//
// Hand-written PTX: shared memory and a barrier, early exits, warp shuffles,
// packed conversions, the faults a GPU reports (out of bounds, misaligned),
// and a race on shared memory. The interpreter's
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

} // namespace
