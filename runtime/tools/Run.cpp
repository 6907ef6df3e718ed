//===- Run.cpp - `run`: inference with a compiled package -----------------===//

#include "runtime/tools/Run.h"

#include "runtime/io/Npy.h"
#include "runtime/package/Package.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

namespace tessera::rt {

namespace {
int error(const std::string &msg) {
  std::fprintf(stderr, "tessera run: error: %s\n", msg.c_str());
  return 1;
}

/// Splits "name=path"; a bare path has an empty name.
std::pair<std::string, std::string> splitBinding(const std::string &s) {
  size_t eq = s.find('=');
  if (eq == std::string::npos)
    return {"", s};
  return {s.substr(0, eq), s.substr(eq + 1)};
}

bool isFloat(DType t) {
  return t == DType::F64 || t == DType::F32;
}
bool isInt(DType t) {
  return t == DType::I64 || t == DType::I32 || t == DType::I16 ||
         t == DType::I8 || t == DType::U64 || t == DType::U32 ||
         t == DType::U16 || t == DType::U8;
}

template <typename From> double load(const Tensor &t, uint64_t i) {
  return double(t.as<From>()[i]);
}

double element(const Tensor &t, uint64_t i) {
  switch (t.dtype()) {
  case DType::F64: return load<double>(t, i);
  case DType::F32: return load<float>(t, i);
  case DType::I64: return load<int64_t>(t, i);
  case DType::I32: return load<int32_t>(t, i);
  case DType::I16: return load<int16_t>(t, i);
  case DType::I8: return load<int8_t>(t, i);
  case DType::U64: return load<uint64_t>(t, i);
  case DType::U32: return load<uint32_t>(t, i);
  case DType::U16: return load<uint16_t>(t, i);
  case DType::U8: return load<uint8_t>(t, i);
  default: return 0;
  }
}

/// NumPy's defaults are f64 and i64: convert float to float and integer to
/// integer (checking the range), so `np.save` output works as is.
Expected<Tensor> convert(const Tensor &t, DType to, const std::string &what) {
  if (t.dtype() == to)
    return t;
  bool ok = (isFloat(t.dtype()) && isFloat(to)) || (isInt(t.dtype()) && isInt(to));
  if (!ok)
    return Status::fail(what + " is " + t.typeString() + " but the entry takes " +
                        dtypeTsrName(to) + " (only float->float and "
                        "int->int conversions are done)");
  Tensor out = Tensor::zeros(to, t.shape());
  for (uint64_t i = 0, n = t.numElements(); i < n; ++i) {
    double v = element(t, i);
    switch (to) {
    case DType::F64: out.as<double>()[i] = v; break;
    case DType::F32: out.as<float>()[i] = float(v); break;
    case DType::I32:
      if (v < std::numeric_limits<int32_t>::min() ||
          v > std::numeric_limits<int32_t>::max())
        return Status::fail(what + ": element " + std::to_string(i) + " (" +
                            std::to_string(int64_t(v)) + ") does not fit in i32");
      out.as<int32_t>()[i] = int32_t(v);
      break;
    case DType::I64: out.as<int64_t>()[i] = int64_t(v); break;
    default:
      return Status::fail(what + ": cannot convert to " + dtypeTsrName(to));
    }
  }
  return out;
}

void printSummary(const std::string &name, const Tensor &t) {
  std::printf("%s: %s", name.c_str(), t.typeString().c_str());
  if (t.dtype() != DType::F32 || t.numElements() == 0) {
    std::printf("\n");
    return;
  }
  // Statistics of the finite values; NaNs and infinities are counted.
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  uint64_t n = t.numElements(), nans = 0, infs = 0;
  for (uint64_t i = 0; i < n; ++i) {
    double v = t.as<float>()[i];
    if (!std::isfinite(v)) {
      ++(std::isnan(v) ? nans : infs);
      continue;
    }
    lo = std::fmin(lo, v);
    hi = std::fmax(hi, v);
    sum += v;
  }
  if (nans + infs < n)
    std::printf("  min %.6g  max %.6g  mean %.6g", lo, hi,
                sum / double(n - nans - infs));
  if (nans)
    std::printf("  NaN: %llu of %llu", (unsigned long long)nans,
                (unsigned long long)n);
  if (infs)
    std::printf("  inf: %llu of %llu", (unsigned long long)infs,
                (unsigned long long)n);
  std::printf("\n  first values:");
  for (uint64_t i = 0; i < std::min<uint64_t>(n, 6); ++i)
    std::printf(" %.6g", t.as<float>()[i]);
  std::printf("\n");
}
} // namespace

int runCommand(const RunOptions &options) {
  Expected<Package> pkg = Package::load(options.package, options.weights);
  if (!pkg)
    return error(pkg.error());
  const EntryPoint *entry = pkg->manifest().findEntry(options.entry);
  if (!entry)
    return error(options.package + ": no entry point '" + options.entry + "'");

  std::map<std::string, Tensor> inputs;
  for (const std::string &binding : options.inputs) {
    auto [name, path] = splitBinding(binding);
    if (name.empty()) {
      if (entry->inputs.size() != 1)
        return error("--input " + binding + ": '" + entry->name + "' takes " +
                     std::to_string(entry->inputs.size()) +
                     " inputs; name them (--input NAME=FILE.npy)");
      name = entry->inputs[0].name;
    }
    const TensorSpec *spec = nullptr;
    for (const TensorSpec &s : entry->inputs)
      if (s.name == name)
        spec = &s;
    if (!spec)
      return error("--input " + binding + ": '" + entry->name +
                   "' has no input '" + name + "'");
    if (inputs.count(name))
      return error("--input " + binding + ": input '" + name +
                   "' is given twice");
    Expected<Tensor> t = readNpy(path);
    if (!t)
      return error(t.error());
    Expected<Tensor> c = convert(*t, spec->dtype, path);
    if (!c)
      return error(c.error());
    if (Status st = checkIndices(*spec, *c, path); !st)
      return error(st.error());
    inputs[name] = std::move(*c);
  }

  Expected<std::vector<Tensor>> outputs = pkg->run(options.entry, inputs);
  if (!outputs)
    return error(outputs.error());
  if (options.repeat > 0) {
    // The timed calls write into scratch outputs. On a GPU, inputs,
    // parameters and outputs stay on the device across them, so the time is
    // the kernels' and the launches', not the copies'.
    std::map<std::string, const Tensor *> in;
    std::map<std::string, Tensor *> out;
    std::vector<Tensor> scratch;
    scratch.reserve(entry->outputs.size());
    for (const auto &[name, t] : inputs)
      in[name] = &t;
    for (const TensorSpec &spec : entry->outputs) {
      scratch.push_back(Tensor::zeros(spec.dtype, spec.shape));
      out[spec.name] = &scratch.back();
    }
    std::vector<const Tensor *> resident;
    for (const auto &[name, t] : in)
      resident.push_back(t);
    for (const std::string &p : entry->parameters)
      resident.push_back(&pkg->parameters().at(p));
    for (const Tensor &t : scratch)
      resident.push_back(&t);
    for (const Tensor *t : resident)
      if (Status st = pkg->keepOnDevice(*t); !st)
        return error(st.error());
    std::vector<double> ms;
    for (unsigned i = 0; i < options.repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      Status again = pkg->invoke(options.entry, in, out);
      std::chrono::duration<double, std::milli> dt =
          std::chrono::steady_clock::now() - start;
      if (!again)
        return error(again.error());
      ms.push_back(dt.count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s: median %.3f ms, best %.3f ms over %u runs\n",
                options.entry.c_str(), ms[ms.size() / 2], ms.front(),
                options.repeat);
  }

  std::map<std::string, std::string> files;
  for (const std::string &binding : options.outputs) {
    auto [name, path] = splitBinding(binding);
    if (name.empty()) {
      if (entry->outputs.size() != 1)
        return error("--output " + binding + ": name the output "
                     "(--output NAME=FILE.npy)");
      name = entry->outputs[0].name;
    }
    files[name] = path;
  }
  for (size_t i = 0; i < entry->outputs.size(); ++i) {
    const std::string &name = entry->outputs[i].name;
    auto it = files.find(name);
    if (it == files.end()) {
      printSummary(name, (*outputs)[i]);
      continue;
    }
    if (Status s = writeNpy(it->second, (*outputs)[i]); !s)
      return error(s.error());
    files.erase(it);
  }
  if (!files.empty())
    return error("--output: '" + entry->name + "' has no output '" +
                 files.begin()->first + "'");
  return 0;
}

} // namespace tessera::rt
