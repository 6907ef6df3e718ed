//===- Data.cpp - Training data: token streams, IDX, CSV ------------------===//

#include "runtime/train/Data.h"

#include "runtime/support/File.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

namespace tessera::rt {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

Dataset::~Dataset() = default;

namespace {

/// Reads a whole file through zlib (which passes uncompressed files
/// through unchanged).
Expected<std::string> readMaybeGz(const std::string &path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f)
    return Status::fail(path + ": cannot open: " + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0)
    out.append(buf, size_t(n));
  int err = 0;
  const char *msg = gzerror(f, &err);
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END))
    return Status::fail(path + ": corrupt or truncated gzip data: " + msg);
  return out;
}

uint32_t be32(const std::string &s, size_t at) {
  auto b = [&](size_t i) { return uint32_t(uint8_t(s[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

/// Examples in memory: features f32 [n, f], labels i32 [n].
struct Examples {
  std::vector<float> x;
  std::vector<int32_t> y;
  int64_t features = 0;
  int64_t size() const { return int64_t(y.size()); }
};

Expected<Examples> readIdx(const std::string &images, const std::string &labels,
                           int64_t features, bool normalize) {
  Expected<std::string> im = readMaybeGz(images);
  if (!im)
    return std::move(im).takeStatus();
  Expected<std::string> lb = readMaybeGz(labels);
  if (!lb)
    return std::move(lb).takeStatus();
  if (im->size() < 16 || be32(*im, 0) != 0x803)
    return Status::fail(images + ": not an IDX image file (magic 0x00000803 "
                                 "expected)");
  if (lb->size() < 8 || be32(*lb, 0) != 0x801)
    return Status::fail(labels + ": not an IDX label file (magic 0x00000801 "
                                 "expected)");
  uint64_t n = be32(*im, 4), rows = be32(*im, 8), cols = be32(*im, 12);
  if (int64_t(rows * cols) != features)
    return Status::fail(images + ": images are " + std::to_string(rows) + "x" +
                        std::to_string(cols) + " but the data declaration's "
                        "shape has " + std::to_string(features) + " elements");
  if (im->size() != 16 + n * rows * cols)
    return Status::fail(images + ": header says " + std::to_string(n) +
                        " images, but the file holds " +
                        std::to_string(im->size() - 16) + " bytes of pixels");
  if (be32(*lb, 4) != n || lb->size() != 8 + n)
    return Status::fail(labels + ": " + std::to_string(be32(*lb, 4)) +
                        " labels (" + std::to_string(lb->size() - 8) +
                        " bytes) for " + std::to_string(n) + " images");
  Examples e;
  e.features = features;
  e.x.resize(n * rows * cols);
  for (size_t i = 0; i < e.x.size(); ++i) {
    float v = float(uint8_t((*im)[16 + i]));
    e.x[i] = normalize ? v / 255.0f : v;
  }
  e.y.resize(n);
  for (size_t i = 0; i < n; ++i)
    e.y[i] = int32_t(uint8_t((*lb)[8 + i]));
  return e;
}

Expected<Examples> readCsv(const DataConfig &c) {
  Expected<std::string> text = readMaybeGz(c.path);
  if (!text)
    return std::move(text).takeStatus();
  Examples e;
  e.features = c.features;
  int64_t cols = c.features + 1;
  int64_t labelCol = c.label < 0 ? c.label + cols : c.label;
  std::istringstream in(*text);
  std::string line;
  int64_t lineNo = 0;
  std::vector<double> row;
  while (std::getline(in, line)) {
    ++lineNo;
    if (lineNo == 1 && c.header)
      continue;
    if (line.empty() || line == "\r")
      continue;
    row.clear();
    const char *p = line.c_str();
    while (true) {
      char *end;
      double v = std::strtod(p, &end);
      if (end == p)
        return Status::fail(c.path + ":" + std::to_string(lineNo) +
                            ": column " + std::to_string(row.size() + 1) +
                            " is not a number");
      row.push_back(v);
      p = end;
      while (*p == ' ' || *p == '\t' || *p == '\r')
        ++p;
      if (*p == '\0')
        break;
      if (*p != ',')
        return Status::fail(c.path + ":" + std::to_string(lineNo) +
                            ": expected ',' after column " +
                            std::to_string(row.size()));
      ++p;
    }
    if (int64_t(row.size()) != cols)
      return Status::fail(c.path + ":" + std::to_string(lineNo) + ": " +
                          std::to_string(row.size()) + " columns, expected " +
                          std::to_string(cols) + " (features + label)");
    double label = row[labelCol];
    if (label != std::floor(label) || label < 0 || label >= double(c.classes))
      return Status::fail(c.path + ":" + std::to_string(lineNo) + ": label " +
                          std::to_string(label) + " is not a class in [0, " +
                          std::to_string(c.classes) + ")");
    for (int64_t i = 0; i < cols; ++i)
      if (i != labelCol)
        e.x.push_back(float(row[i]));
    e.y.push_back(int32_t(label));
  }
  if (e.y.empty())
    return Status::fail(c.path + ": no data rows");
  return e;
}

/// Fisher-Yates permutation of [0, n) for one epoch.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i)
    p[i] = i;
  uint64_t key = splitmix64(seed ^ splitmix64(uint64_t(epoch) + 0x5eed));
  for (int64_t i = n - 1; i > 0; --i) {
    uint64_t r = splitmix64(key + uint64_t(i));
    std::swap(p[i], p[int64_t(r % uint64_t(i + 1))]);
  }
  return p;
}

class ExampleDataset : public Dataset {
public:
  ExampleDataset(const DataConfig &c, uint64_t seed, int64_t accumulate,
                 Examples all, Examples test)
      : c(c), seed(seed), accumulate(accumulate), all(std::move(all)),
        test(std::move(test)) {
    valSize = int64_t(double(this->all.size()) * c.val);
    trainSize = this->all.size() - valSize;
  }

  Batch train(int64_t step, int64_t micro) override {
    Batch b = empty();
    for (int64_t i = 0; i < c.batch; ++i) {
      int64_t g = ((step - 1) * accumulate + micro) * c.batch + i;
      int64_t epoch = g / trainSize, pos = g % trainSize;
      if (epoch != permEpoch) {
        perm = permutation(trainSize, seed, epoch);
        permEpoch = epoch;
      }
      copy(b, i, all, perm[pos]);
    }
    return b;
  }

  int64_t numBatches(const std::string &split) const override {
    int64_t n = split == "test" ? test.size() : valSize;
    return n / c.batch;
  }

  Batch eval(const std::string &split, int64_t index) override {
    Batch b = empty();
    for (int64_t i = 0; i < c.batch; ++i) {
      int64_t k = index * c.batch + i;
      if (split == "test")
        copy(b, i, test, k);
      else
        copy(b, i, all, trainSize + k);
    }
    return b;
  }

  std::string describe() const override {
    return std::to_string(trainSize) + " training, " + std::to_string(valSize) +
           " validation" +
           (test.size() ? ", " + std::to_string(test.size()) + " test" : "") +
           " examples";
  }

  int64_t maxLabel() const override {
    int64_t m = 0;
    for (int32_t v : all.y)
      m = std::max<int64_t>(m, v);
    for (int32_t v : test.y)
      m = std::max<int64_t>(m, v);
    return m;
  }

private:
  Batch empty() const {
    return {Tensor::zeros(DType::F32, c.xShape), Tensor::zeros(DType::I32, c.yShape)};
  }
  void copy(Batch &b, int64_t row, const Examples &from, int64_t k) const {
    std::memcpy(b.x.as<float>() + row * from.features,
                from.x.data() + k * from.features, size_t(from.features) * 4);
    b.y.as<int32_t>()[row] = from.y[k];
  }

  DataConfig c;
  uint64_t seed;
  int64_t accumulate;
  Examples all, test;
  int64_t trainSize = 0, valSize = 0;
  std::vector<int64_t> perm;
  int64_t permEpoch = -1;
};

class TokenDataset : public Dataset {
public:
  TokenDataset(const DataConfig &c, uint64_t seed, int64_t accumulate,
               std::vector<uint32_t> tokens)
      : c(c), seed(seed), accumulate(accumulate), tokens(std::move(tokens)) {
    int64_t n = int64_t(this->tokens.size());
    valSize = int64_t(double(n) * c.val);
    trainSize = n - valSize;
  }

  Batch train(int64_t step, int64_t micro) override {
    Batch b = empty();
    int64_t span = trainSize - c.seq; // windows need seq + 1 tokens
    for (int64_t i = 0; i < c.batch; ++i) {
      uint64_t g = uint64_t(((step - 1) * accumulate + micro) * c.batch + i);
      uint64_t r = splitmix64(splitmix64(seed) ^ g);
      fill(b, i, int64_t(r % uint64_t(span)));
    }
    return b;
  }

  int64_t numBatches(const std::string &split) const override {
    if (split != "val" || valSize <= c.seq)
      return 0;
    return std::max<int64_t>(1, (valSize - 1) / (c.seq * c.batch));
  }

  Batch eval(const std::string &, int64_t index) override {
    // Consecutive, non-overlapping windows of the validation tokens.
    Batch b = empty();
    int64_t windows = (valSize - 1) / c.seq;
    for (int64_t i = 0; i < c.batch; ++i) {
      int64_t w = (index * c.batch + i) % windows;
      fill(b, i, trainSize + w * c.seq);
    }
    return b;
  }

  std::string describe() const override {
    return std::to_string(trainSize) + " training and " +
           std::to_string(valSize) + " validation tokens";
  }

  int64_t maxLabel() const override {
    uint32_t m = 0;
    for (uint32_t t : tokens)
      m = std::max(m, t);
    return int64_t(m);
  }

private:
  Batch empty() const {
    return {Tensor::zeros(DType::I32, c.xShape), Tensor::zeros(DType::I32, c.yShape)};
  }
  void fill(Batch &b, int64_t row, int64_t start) const {
    for (int64_t t = 0; t < c.seq; ++t) {
      b.x.as<int32_t>()[row * c.seq + t] = int32_t(tokens[start + t]);
      b.y.as<int32_t>()[row * c.seq + t] = int32_t(tokens[start + t + 1]);
    }
  }

  DataConfig c;
  uint64_t seed;
  int64_t accumulate;
  std::vector<uint32_t> tokens;
  int64_t trainSize = 0, valSize = 0;
};

} // namespace

Expected<std::unique_ptr<Dataset>> Dataset::open(const DataConfig &c,
                                                 uint64_t seed,
                                                 int64_t accumulate) {
  std::unique_ptr<Dataset> d;
  if (c.kind == "tokens") {
    Expected<MappedFile> f = MappedFile::open(c.path);
    if (!f)
      return Status::fail(std::move(f).takeStatus().error() +
                          (c.path.find("kjv") != std::string::npos
                               ? " (scripts/prepare_kjv.sh writes it)"
                               : ""));
    size_t width = c.tokenDType == "u32" ? 4 : 2;
    if (f->size() % width != 0)
      return Status::fail(c.path + ": " + std::to_string(f->size()) +
                          " bytes is not a whole number of " + c.tokenDType +
                          " tokens");
    std::vector<uint32_t> tokens(f->size() / width);
    for (size_t i = 0; i < tokens.size(); ++i) {
      const unsigned char *p = f->data() + i * width;
      tokens[i] = width == 2 ? uint32_t(p[0] | p[1] << 8)
                             : uint32_t(p[0] | p[1] << 8 | p[2] << 16 |
                                        uint32_t(p[3]) << 24);
    }
    int64_t valSize = int64_t(double(tokens.size()) * c.val);
    if (int64_t(tokens.size()) - valSize <= c.seq + 1)
      return Status::fail(c.path + ": " + std::to_string(tokens.size()) +
                          " tokens are too few for windows of " +
                          std::to_string(c.seq + 1));
    d = std::make_unique<TokenDataset>(c, seed, accumulate, std::move(tokens));
  } else {
    int64_t features = 1;
    for (size_t i = 1; i < c.xShape.size(); ++i)
      features *= c.xShape[i];
    Examples all, test;
    if (c.kind == "idx") {
      Expected<Examples> e = readIdx(c.images, c.labels, features, c.normalize);
      if (!e)
        return std::move(e).takeStatus();
      all = std::move(*e);
      if (!c.testImages.empty()) {
        Expected<Examples> t =
            readIdx(c.testImages, c.testLabels, features, c.normalize);
        if (!t)
          return std::move(t).takeStatus();
        test = std::move(*t);
      }
    } else {
      Expected<Examples> e = readCsv(c);
      if (!e)
        return std::move(e).takeStatus();
      all = std::move(*e);
    }
    if (all.size() - int64_t(double(all.size()) * c.val) < 1)
      return Status::fail("data '" + c.name + "' leaves no training examples");
    d = std::make_unique<ExampleDataset>(c, seed, accumulate, std::move(all),
                                         std::move(test));
  }
  return d;
}

} // namespace tessera::rt
