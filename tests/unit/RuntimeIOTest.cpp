//===- RuntimeIOTest.cpp - safetensors, .npy, manifests, initializers -----===//

#include "runtime/core/Init.h"
#include "runtime/io/Npy.h"
#include "runtime/io/Safetensors.h"
#include "runtime/package/Manifest.h"
#include "runtime/support/File.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <unistd.h>

using namespace tessera::rt;

namespace {

std::string tempPath(const std::string &name) {
  return "/tmp/tessera-unittest-" + std::to_string(getpid()) + "-" + name;
}

Tensor iota(DType t, std::vector<int64_t> shape) {
  Tensor x = Tensor::zeros(t, shape);
  for (uint64_t i = 0; i < x.byteSize(); ++i)
    static_cast<unsigned char *>(x.data())[i] = (unsigned char)(i * 7 + 1);
  return x;
}

std::string slurp(const std::string &path) {
  Expected<std::string> s = readFile(path);
  EXPECT_TRUE(s.ok());
  return s.ok() ? *s : "";
}

TEST(Safetensors, RoundTripKeepsBytesAndAlignsEveryTensor) {
  std::string path = tempPath("rt.safetensors");
  std::vector<std::pair<std::string, Tensor>> in = {
      {"a.u8", iota(DType::U8, {3})},
      {"b.f32", iota(DType::F32, {2, 3})},
      {"c.f64", iota(DType::F64, {5})},
      {"d.empty", iota(DType::F32, {0, 4})},
      {"e.bf16", iota(DType::BF16, {7})}};
  ASSERT_TRUE(writeSafetensors(path, in, {{"k", "v"}}).ok());
  Expected<SafetensorsFile> out = readSafetensors(path);
  ASSERT_TRUE(out.ok()) << out.error();
  EXPECT_EQ(out->metadata.at("k"), "v");
  ASSERT_EQ(out->tensors.size(), in.size());
  for (const auto &[name, t] : in) {
    const Tensor *r = out->find(name);
    ASSERT_NE(r, nullptr) << name;
    EXPECT_EQ(r->dtype(), t.dtype());
    EXPECT_EQ(r->shape(), t.shape());
    EXPECT_EQ(std::memcmp(r->data(), t.data(), t.byteSize()), 0) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r->data()) % dtypeSize(r->dtype()), 0u);
  }
  unlink(path.c_str());
}

// Every prefix of a valid file and many corrupted copies must be rejected
// (or, for a corruption inside tensor data, accepted) without reading out of
// bounds; the fuzz target checks the same under AddressSanitizer.
TEST(Safetensors, TruncationsAndCorruptionsAreErrors) {
  std::string path = tempPath("c.safetensors");
  ASSERT_TRUE(writeSafetensors(path, {{"w", iota(DType::F32, {4, 3})},
                                      {"b", iota(DType::F32, {3})}})
                  .ok());
  std::string good = slurp(path);
  unlink(path.c_str());
  auto parse = [](const std::string &bytes) {
    auto copy = std::make_shared<std::string>(bytes);
    return parseSafetensors(reinterpret_cast<const unsigned char *>(copy->data()),
                            copy->size(), "f", copy);
  };
  ASSERT_TRUE(parse(good).ok());
  for (size_t n = 0; n < good.size(); ++n) {
    Expected<SafetensorsFile> r = parse(good.substr(0, n));
    EXPECT_FALSE(r.ok()) << "prefix of " << n << " bytes accepted";
    if (!r.ok())
      EXPECT_EQ(r.error().rfind("f: ", 0), 0u) << r.error();
  }
  std::mt19937 rng(1);
  for (int i = 0; i < 3000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k)
      bad[rng() % bad.size()] = char(rng());
    (void)parse(bad);
  }
}

TEST(Npy, RoundTripAndNumpyHeaderVariants) {
  std::string path = tempPath("a.npy");
  for (std::vector<int64_t> shape : {std::vector<int64_t>{}, {5}, {2, 3}, {2, 0, 4}}) {
    Tensor t = iota(DType::F32, shape);
    ASSERT_TRUE(writeNpy(path, t).ok());
    std::string bytes = slurp(path);
    EXPECT_EQ(bytes.size() % 64, t.byteSize() % 64) << "header is 64-byte aligned";
    Expected<Tensor> r = readNpy(path);
    ASSERT_TRUE(r.ok()) << r.error();
    EXPECT_EQ(r->shape(), shape);
    EXPECT_EQ(std::memcmp(r->data(), t.data(), t.byteSize()), 0);
  }
  unlink(path.c_str());
  // A version 2.0 header with keys in another order and double quotes.
  std::string header = "{\"shape\": (2,), 'fortran_order': False, 'descr': '<i8'}";
  std::string v2 = std::string("\x93NUMPY\x02\x00", 8);
  uint32_t len = uint32_t(header.size());
  v2.append(reinterpret_cast<const char *>(&len), 4);
  v2 += header;
  int64_t vals[2] = {-3, 9};
  v2.append(reinterpret_cast<const char *>(vals), 16);
  Expected<Tensor> r = parseNpy(reinterpret_cast<const unsigned char *>(v2.data()),
                                v2.size(), "v2");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->dtype(), DType::I64);
  EXPECT_EQ(r->as<int64_t>()[0], -3);
}

TEST(Npy, BadFilesAreLocatedErrors) {
  auto err = [](std::string bytes) {
    Expected<Tensor> r = parseNpy(
        reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size(), "f");
    return r.ok() ? std::string("accepted") : r.error();
  };
  auto file = [](const std::string &header, size_t data) {
    std::string s = std::string("\x93NUMPY\x01\x00", 8);
    s += char(header.size() & 0xff);
    s += char(header.size() >> 8);
    return s + header + std::string(data, '\0');
  };
  EXPECT_EQ(err("xy"), "f: not a .npy file (no \\x93NUMPY magic)");
  EXPECT_EQ(err(file("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", 4)),
            "f: descr '>f4': only little-endian arrays are supported");
  EXPECT_EQ(err(file("{'descr': '<c8', 'fortran_order': False, 'shape': (1,)}", 8)),
            "f: unsupported descr '<c8' (supported: f8 f4 f2 i8 i4 i2 i1 u8 u4 "
            "u2 u1 b1)");
  EXPECT_EQ(err(file("{'descr': '<f4', 'shape': (1,)}", 4)),
            "f: the header lacks 'fortran_order'");
  EXPECT_EQ(err(file("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4)),
            "f: 'shape' must be a tuple of non-negative integers below 2^48");
  EXPECT_EQ(err(file("{'descr': '<f4', 'fortran_order': False, 'shape': "
                     "(99999999999999999,)}", 4)),
            "f: 'shape' must be a tuple of non-negative integers below 2^48");
  EXPECT_EQ(err(file("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 4)),
            "f: the data of f32[3] is 12 bytes but the file holds 4 (truncated)");
  std::string good = file("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2)}", 16);
  for (size_t n = 0; n < good.size(); ++n)
    EXPECT_NE(err(good.substr(0, n)), "accepted") << n;
}

TEST(Manifest, RoundTripAndFieldErrors) {
  Manifest m;
  m.compilerVersion = "0.1.0";
  m.sourceFile = "a.tsr";
  m.sourceSha256 = "00";
  m.trainName = "t";
  m.targetTriple = "x86_64-pc-linux-gnu";
  m.targetCpu = "znver4";
  m.seed = 5;
  ParameterSpec p;
  p.name = "w";
  p.shape = {2, 3};
  p.init = "normal(std=0.02)";
  m.parameters.push_back(p);
  EntryPoint e;
  e.name = "forward";
  e.symbol = "tessera_entry_forward";
  e.inputs.push_back({"x", DType::I32, {4, 3}, 80,
                      "rows of an embedding table (80)"});
  e.outputs.push_back({"output", DType::F32, {4, 2}, 0, ""});
  e.parameters = {"w"};
  m.entryPoints.push_back(e);
  Expected<Manifest> r = Manifest::parse(m.toJSON(), "m.json");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->toJSON(), m.toJSON());

  auto errorOf = [&](const std::string &from, const std::string &to) {
    std::string text = m.toJSON();
    size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    Expected<Manifest> bad = Manifest::parse(text, "m.json");
    return bad.ok() ? std::string("accepted") : bad.error();
  };
  EXPECT_EQ(errorOf("\"dtype\": \"i32\"", "\"dtype\": \"q3\""),
            "m.json: entry_points[0].inputs[0].dtype: unknown dtype 'q3'");
  EXPECT_EQ(errorOf("\"seed\": 5", "\"seed\": -5"),
            "m.json: seed: must be a non-negative integer");
  EXPECT_EQ(errorOf("\"trainable\": true", "\"trainable\": 1"),
            "m.json: parameters[0].trainable: must be true or false");
  EXPECT_EQ(errorOf("\"code\": \"code.so\"", "\"code\": \"/lib/x.so\""),
            "m.json: code: must be a file name inside the package, got "
            "'/lib/x.so'");
  EXPECT_EQ(errorOf("\"index_bound\": 80", "\"index_bound\": 0"),
            "m.json: entry_points[0].inputs[0].index_bound: must be an "
            "integer in [1, 2^48]");

  // Index inputs are checked against their bound, with the element named.
  Tensor x = Tensor::zeros(DType::I32, {4, 3});
  EXPECT_TRUE(checkIndices(e.inputs[0], x, "x.npy").ok());
  x.as<int32_t>()[7] = 80;
  EXPECT_EQ(checkIndices(e.inputs[0], x, "x.npy").error(),
            "x.npy: input 'x': element [2, 1] is 80, outside [0, 80): it "
            "indexes the rows of an embedding table (80)");
  x.as<int32_t>()[7] = -1;
  EXPECT_FALSE(checkIndices(e.inputs[0], x, "x.npy").ok());
  EXPECT_EQ(errorOf("\"symbol\"", "\"sym\""),
            "m.json: entry_points[0]: missing field 'symbol'");
  EXPECT_EQ(Manifest::parse("{", "m.json").error().rfind("m.json: not valid JSON", 0),
            0u);
}

double mean(const Tensor &t) {
  double s = 0;
  for (uint64_t i = 0; i < t.numElements(); ++i)
    s += t.as<float>()[i];
  return s / double(t.numElements());
}

double stddev(const Tensor &t) {
  double m = mean(t), s = 0;
  for (uint64_t i = 0; i < t.numElements(); ++i)
    s += (t.as<float>()[i] - m) * (t.as<float>()[i] - m);
  return std::sqrt(s / double(t.numElements()));
}

TEST(Init, DistributionsMatchTheirSpecs) {
  // 65536 samples: the sample std of a normal is within ~1% (4 sigma).
  auto make = [](const std::string &spec, std::vector<int64_t> shape,
                 uint64_t seed = 1, const std::string &path = "p") {
    Tensor t = Tensor::zeros(DType::F32, shape);
    Status s = initialize(t, spec, seed, path);
    EXPECT_TRUE(s.ok()) << s.error();
    return t;
  };
  Tensor n = make("normal(std=0.02, mean=1)", {256, 256});
  EXPECT_NEAR(mean(n), 1.0, 4 * 0.02 / 256);
  EXPECT_NEAR(stddev(n), 0.02, 0.0002);
  Tensor k = make("kaiming()", {256, 256});
  EXPECT_NEAR(stddev(k), std::sqrt(2.0 / 256), 0.01 * std::sqrt(2.0 / 256));
  Tensor x = make("xavier(gain=2)", {128, 512});
  double a = 2 * std::sqrt(6.0 / (128 + 512));
  EXPECT_NEAR(stddev(x), a / std::sqrt(3.0), 0.01 * a);
  Tensor tn = make("trunc_normal(std=0.5)", {256, 256});
  for (uint64_t i = 0; i < tn.numElements(); ++i)
    ASSERT_LE(std::fabs(tn.as<float>()[i]), 1.0f);
  // N(0,1) truncated at +-2 has std 0.8796.
  EXPECT_NEAR(stddev(tn), 0.5 * 0.8796, 0.005);
  Tensor u = make("uniform(low=-1, high=3)", {256, 256});
  EXPECT_NEAR(mean(u), 1.0, 0.03);
  Tensor c = make("constant(value=2.5)", {3});
  EXPECT_EQ(c.as<float>()[2], 2.5f);
  EXPECT_EQ(make("ones()", {2}).as<float>()[1], 1.0f);

  // Deterministic per (seed, path); different for another seed or path.
  Tensor again = make("normal(std=0.02, mean=1)", {256, 256});
  EXPECT_EQ(std::memcmp(n.data(), again.data(), n.byteSize()), 0);
  EXPECT_NE(make("normal()", {4}, 1, "a").as<float>()[0],
            make("normal()", {4}, 2, "a").as<float>()[0]);
  EXPECT_NE(make("normal()", {4}, 1, "a").as<float>()[0],
            make("normal()", {4}, 1, "b").as<float>()[0]);

  Tensor bad = Tensor::zeros(DType::F32, {4});
  EXPECT_EQ(initialize(bad, "kaiming()", 0, "w").error(),
            "parameter 'w': initializer 'kaiming()': needs a tensor of rank >= "
            "2 with non-zero fans, got f32[4]");
  EXPECT_EQ(initialize(bad, "orthogonal()", 0, "w").error(),
            "parameter 'w': initializer 'orthogonal()': unknown initializer "
            "'orthogonal'");
}

TEST(AtomicFile, UncommittedWritesLeaveTheOldFile) {
  std::string path = tempPath("atomic.txt");
  ASSERT_TRUE(writeFileAtomic(path, "old").ok());
  {
    Expected<AtomicFile> f = AtomicFile::create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write("new contents", 12).ok());
    // Destroyed without commit(), like a crash before the rename.
  }
  EXPECT_EQ(slurp(path), "old");
  ASSERT_TRUE(writeFileAtomic(path, "new").ok());
  EXPECT_EQ(slurp(path), "new");
  unlink(path.c_str());
}

} // namespace
