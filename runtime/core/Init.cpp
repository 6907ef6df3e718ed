//===- Init.cpp - Parameter initialization from the spec ------------------===//

#include "runtime/core/Init.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <map>

namespace tessera::rt {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t fnv1a(const std::string &s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s)
    h = (h ^ c) * 0x100000001b3ull;
  return h;
}

/// Uniform in (0, 1): 53 random bits, never 0 (Box-Muller takes a log).
class Stream {
public:
  Stream(uint64_t seed, const std::string &path)
      : key(splitmix64(seed ^ splitmix64(fnv1a(path)))) {}
  double uniform(uint64_t counter) const {
    uint64_t bits = splitmix64(key ^ splitmix64(counter)) >> 11;
    return (double(bits) + 0.5) * 0x1.0p-53;
  }
  /// The i-th standard normal; draw `retry` > 0 gives independent redraws.
  double normal(uint64_t i, uint64_t retry = 0) const {
    uint64_t c = (i << 8 | retry) * 2;
    double u1 = uniform(c), u2 = uniform(c + 1);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

private:
  uint64_t key;
};

uint16_t toHalfBits(float f, bool bf16) {
  if (bf16) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    if (std::isnan(f))
      return 0x7fc0;
    b += 0x7fff + ((b >> 16) & 1); // round to nearest even
    return uint16_t(b >> 16);
  }
  // IEEE binary16, round to nearest even.
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx > 0x7f800000)
    return uint16_t(sign | 0x7e00); // NaN
  if (absx >= 0x477ff000)
    return uint16_t(sign | 0x7c00); // overflow to infinity
  if (absx < 0x38800000) {         // subnormal or zero in half
    float a;
    std::memcpy(&a, &absx, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(a * 0x1.0p24f)));
  }
  uint32_t mant = absx & 0x7fffff;
  uint32_t exp = (absx >> 23) - 112;
  uint32_t h = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    ++h;
  return uint16_t(sign | h);
}

/// "normal(std=0.02, mean=0)" → {"normal", {std: 0.02, mean: 0}}.
bool parseSpec(const std::string &spec, std::string &name,
               std::map<std::string, double> &args) {
  size_t open = spec.find('(');
  name = spec.substr(0, open);
  if (open == std::string::npos)
    return !name.empty();
  if (spec.back() != ')')
    return false;
  std::string body = spec.substr(open + 1, spec.size() - open - 2);
  size_t pos = 0;
  while (pos < body.size()) {
    size_t comma = body.find(',', pos);
    std::string item = body.substr(pos, comma == std::string::npos
                                            ? std::string::npos
                                            : comma - pos);
    size_t eq = item.find('=');
    if (eq == std::string::npos)
      return false;
    auto trim = [](std::string s) {
      size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    char *end = nullptr;
    std::string value = trim(item.substr(eq + 1));
    double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end)
      return false;
    args[trim(item.substr(0, eq))] = v;
    if (comma == std::string::npos)
      break;
    pos = comma + 1;
  }
  return true;
}
} // namespace

Status initialize(Tensor &t, const std::string &spec, uint64_t seed,
                  const std::string &path) {
  std::string name;
  std::map<std::string, double> args;
  auto fail = [&](const std::string &msg) {
    return Status::fail("parameter '" + path + "': initializer '" + spec +
                        "': " + msg);
  };
  if (!parseSpec(spec, name, args))
    return fail("cannot parse");
  auto arg = [&](const char *k, double dflt) {
    auto it = args.find(k);
    return it == args.end() ? dflt : it->second;
  };
  const std::vector<int64_t> &s = t.shape();
  double receptive = 1;
  for (size_t i = 2; i < s.size(); ++i)
    receptive *= double(s[i]);
  double fanIn = s.size() >= 2 ? double(s[1]) * receptive : 0;
  double fanOut = s.size() >= 2 ? double(s[0]) * receptive : 0;

  Stream rng(seed, path);
  std::function<double(uint64_t)> value;
  if (name == "zeros") {
    value = [](uint64_t) { return 0.0; };
  } else if (name == "ones") {
    value = [](uint64_t) { return 1.0; };
  } else if (name == "constant") {
    double c = arg("value", 0);
    value = [c](uint64_t) { return c; };
  } else if (name == "normal") {
    double mean = arg("mean", 0), std = arg("std", 1);
    value = [=, &rng](uint64_t i) { return mean + std * rng.normal(i); };
  } else if (name == "trunc_normal") {
    double std = arg("std", 1);
    value = [=, &rng](uint64_t i) {
      for (uint64_t r = 0;; ++r) {
        double z = rng.normal(i, r);
        if (std::fabs(z) <= 2.0 || r == 255)
          return std * std::fmax(-2.0, std::fmin(2.0, z));
      }
    };
  } else if (name == "uniform") {
    double lo = arg("low", 0), hi = arg("high", 1);
    value = [=, &rng](uint64_t i) { return lo + (hi - lo) * rng.uniform(i); };
  } else if (name == "kaiming" || name == "xavier") {
    if (s.size() < 2 || fanIn == 0 || fanOut == 0)
      return fail("needs a tensor of rank >= 2 with non-zero fans, got " +
                  t.typeString());
    if (name == "kaiming") {
      double std = arg("gain", std::sqrt(2.0)) / std::sqrt(fanIn);
      value = [=, &rng](uint64_t i) { return std * rng.normal(i); };
    } else {
      double a = arg("gain", 1.0) * std::sqrt(6.0 / (fanIn + fanOut));
      value = [=, &rng](uint64_t i) { return a * (2 * rng.uniform(i) - 1); };
    }
  } else {
    return fail("unknown initializer '" + name + "'");
  }

  uint64_t n = t.numElements();
  switch (t.dtype()) {
  case DType::F32:
    for (uint64_t i = 0; i < n; ++i)
      t.as<float>()[i] = float(value(i));
    return {};
  case DType::F64:
    for (uint64_t i = 0; i < n; ++i)
      t.as<double>()[i] = value(i);
    return {};
  case DType::BF16:
  case DType::F16:
    for (uint64_t i = 0; i < n; ++i)
      t.as<uint16_t>()[i] = toHalfBits(float(value(i)), t.dtype() == DType::BF16);
    return {};
  default:
    return fail(std::string("cannot initialize a ") + dtypeTsrName(t.dtype()) +
                " tensor");
  }
}

} // namespace tessera::rt
