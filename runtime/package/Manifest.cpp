//===- Manifest.cpp - manifest.json of a .tsrpkg --------------------------===//

#include "runtime/package/Manifest.h"

#include <nlohmann/json.hpp>

#include <set>

using json = nlohmann::json;

namespace tessera::rt {

namespace {
/// Thrown inside parse() only; carries "field: message".
struct FieldError {
  std::string message;
};

[[noreturn]] void fieldError(const std::string &where, const std::string &msg) {
  throw FieldError{where + ": " + msg};
}

const json &field(const json &obj, const std::string &key,
                  const std::string &where) {
  if (!obj.is_object())
    fieldError(where, "must be an object");
  auto it = obj.find(key);
  if (it == obj.end())
    fieldError(where, "missing field '" + key + "'");
  return *it;
}

std::string str(const json &obj, const std::string &key, const std::string &where) {
  const json &v = field(obj, key, where);
  if (!v.is_string())
    fieldError(where + "." + key, "must be a string");
  return v.get<std::string>();
}

const json &array(const json &obj, const std::string &key, const std::string &where) {
  const json &v = field(obj, key, where);
  if (!v.is_array())
    fieldError(where + "." + key, "must be an array");
  return v;
}

TensorSpec tensorSpec(const json &j, const std::string &where) {
  TensorSpec t;
  t.name = str(j, "name", where);
  std::string dtype = str(j, "dtype", where);
  std::optional<DType> d = parseTsrDType(dtype);
  if (!d)
    fieldError(where + ".dtype", "unknown dtype '" + dtype + "'");
  t.dtype = *d;
  for (const json &dim : array(j, "shape", where)) {
    if (!dim.is_number_unsigned() || dim.get<uint64_t>() > (uint64_t(1) << 48))
      fieldError(where + ".shape", "dims must be integers in [0, 2^48]");
    t.shape.push_back(int64_t(dim.get<uint64_t>()));
  }
  if (!elementCount(t.shape))
    fieldError(where + ".shape", "too many elements");
  if (auto b = j.find("index_bound"); b != j.end()) {
    if (!b->is_number_unsigned() || b->get<uint64_t>() == 0 ||
        b->get<uint64_t>() > (uint64_t(1) << 48))
      fieldError(where + ".index_bound", "must be an integer in [1, 2^48]");
    if (t.dtype != DType::I32 && t.dtype != DType::I64)
      fieldError(where + ".index_bound", "only i32 and i64 tensors have one");
    t.indexBound = int64_t(b->get<uint64_t>());
    t.indexes = str(j, "indexes", where);
  }
  return t;
}

json tensorJSON(const TensorSpec &t) {
  json j = {{"name", t.name}, {"dtype", dtypeTsrName(t.dtype)},
            {"shape", t.shape}};
  if (t.indexBound > 0) {
    j["index_bound"] = t.indexBound;
    j["indexes"] = t.indexes;
  }
  return j;
}
} // namespace

Status checkIndices(const TensorSpec &spec, const Tensor &t,
                    const std::string &source) {
  if (spec.indexBound <= 0)
    return {};
  auto at = [&](auto *values) -> Status {
    for (uint64_t i = 0, n = t.numElements(); i < n; ++i) {
      int64_t v = int64_t(values[i]);
      if (v >= 0 && v < spec.indexBound)
        continue;
      // The element's multi-index, for the message.
      std::vector<int64_t> index(t.shape().size());
      uint64_t rest = i;
      for (size_t d = index.size(); d-- > 0;) {
        index[d] = int64_t(rest % uint64_t(t.shape()[d]));
        rest /= uint64_t(t.shape()[d]);
      }
      return Status::fail(source + ": input '" + spec.name + "': element " +
                          shapeString(index) + " is " + std::to_string(v) +
                          ", outside [0, " + std::to_string(spec.indexBound) +
                          "): it indexes the " + spec.indexes);
    }
    return {};
  };
  if (t.dtype() == DType::I32)
    return at(t.as<int32_t>());
  if (t.dtype() == DType::I64)
    return at(t.as<int64_t>());
  return {};
}

const EntryPoint *Manifest::findEntry(const std::string &name) const {
  for (const EntryPoint &e : entryPoints)
    if (e.name == name)
      return &e;
  return nullptr;
}

const ParameterSpec *Manifest::findParameter(const std::string &name) const {
  for (const ParameterSpec &p : parameters)
    if (p.name == name)
      return &p;
  return nullptr;
}

std::string Manifest::toJSON() const {
  json j;
  j["format"] = "tessera-package";
  j["format_version"] = formatVersion;
  j["compiler"] = {{"name", "tessera"}, {"version", compilerVersion}};
  j["source"] = {{"file", sourceFile}, {"sha256", sourceSha256},
                 {"train", trainName}};
  j["target"] = {{"kind", targetKind}, {"triple", targetTriple},
                 {"cpu", targetCpu}};
  if (!targetChip.empty())
    j["target"]["chip"] = targetChip;
  if (!targetBinary.empty())
    j["target"]["binary"] = targetBinary;
  j["code"] = code;
  j["weights"] = weights;
  j["seed"] = seed;
  json entries = json::array();
  for (const EntryPoint &e : entryPoints) {
    json ins = json::array(), outs = json::array();
    for (const TensorSpec &t : e.inputs)
      ins.push_back(tensorJSON(t));
    for (const TensorSpec &t : e.outputs)
      outs.push_back(tensorJSON(t));
    entries.push_back({{"name", e.name}, {"symbol", e.symbol}, {"inputs", ins},
                       {"parameters", e.parameters}, {"outputs", outs}});
  }
  j["entry_points"] = entries;
  json params = json::array();
  for (const ParameterSpec &p : parameters) {
    json pj = tensorJSON(p);
    pj["init"] = p.init;
    pj["trainable"] = p.trainable;
    pj["offset"] = p.offset;
    pj["weight_decay"] = p.decay;
    params.push_back(pj);
  }
  j["parameters"] = params;
  if (!train.empty())
    j["train"] = json::parse(train);
  return j.dump(2) + "\n";
}

Expected<Manifest> Manifest::parse(const std::string &text,
                                   const std::string &path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception &e) {
    return Status::fail(path + ": not valid JSON: " + e.what());
  }
  try {
    Manifest m;
    if (str(j, "format", "manifest") != "tessera-package")
      fieldError("format", "expected \"tessera-package\"");
    const json &version = field(j, "format_version", "manifest");
    if (!version.is_number_integer() || version.get<int64_t>() != formatVersion)
      fieldError("format_version",
                 "this runtime reads version " + std::to_string(formatVersion) +
                     ", the package has " + version.dump() +
                     " (recompile it with this Tessera)");
    m.compilerVersion = str(field(j, "compiler", "manifest"), "version", "compiler");
    const json &source = field(j, "source", "manifest");
    m.sourceFile = str(source, "file", "source");
    m.sourceSha256 = str(source, "sha256", "source");
    m.trainName = str(source, "train", "source");
    const json &target = field(j, "target", "manifest");
    m.targetKind = str(target, "kind", "target");
    m.targetTriple = str(target, "triple", "target");
    m.targetCpu = str(target, "cpu", "target");
    if (m.targetKind == "cuda") {
      m.targetChip = str(target, "chip", "target");
      m.targetBinary = target.contains("binary") ? str(target, "binary", "target")
                                                 : "ptx";
      if (m.targetBinary != "ptx" && m.targetBinary != "fatbin")
        fieldError("target.binary", "must be \"ptx\" or \"fatbin\", got '" +
                                        m.targetBinary + "'");
    }
    m.code = str(j, "code", "manifest");
    m.weights = str(j, "weights", "manifest");
    for (const std::string *file : {&m.code, &m.weights})
      if (file->empty() || file->find('/') != std::string::npos || *file == "..")
        fieldError(file == &m.code ? "code" : "weights",
                   "must be a file name inside the package, got '" + *file + "'");
    const json &seed = field(j, "seed", "manifest");
    if (!seed.is_number_unsigned())
      fieldError("seed", "must be a non-negative integer");
    m.seed = seed.get<uint64_t>();

    std::set<std::string> names;
    const json &params = array(j, "parameters", "manifest");
    for (size_t i = 0; i < params.size(); ++i) {
      std::string where = "parameters[" + std::to_string(i) + "]";
      ParameterSpec p;
      static_cast<TensorSpec &>(p) = tensorSpec(params[i], where);
      p.init = str(params[i], "init", where);
      const json &trainable = field(params[i], "trainable", where);
      if (!trainable.is_boolean())
        fieldError(where + ".trainable", "must be true or false");
      p.trainable = trainable.get<bool>();
      const json &offset = field(params[i], "offset", where);
      if (!offset.is_number_unsigned())
        fieldError(where + ".offset", "must be a non-negative integer");
      p.offset = int64_t(offset.get<uint64_t>());
      const json &decay = field(params[i], "weight_decay", where);
      if (!decay.is_boolean())
        fieldError(where + ".weight_decay", "must be true or false");
      p.decay = decay.get<bool>();
      if (!names.insert(p.name).second)
        fieldError(where, "parameter '" + p.name + "' is listed twice");
      m.parameters.push_back(std::move(p));
    }
    if (auto t = j.find("train"); t != j.end()) {
      if (!t->is_object())
        fieldError("train", "must be an object");
      m.train = t->dump();
    }
    const json &entries = array(j, "entry_points", "manifest");
    for (size_t i = 0; i < entries.size(); ++i) {
      std::string where = "entry_points[" + std::to_string(i) + "]";
      EntryPoint e;
      e.name = str(entries[i], "name", where);
      e.symbol = str(entries[i], "symbol", where);
      const json &ins = array(entries[i], "inputs", where);
      for (size_t k = 0; k < ins.size(); ++k)
        e.inputs.push_back(
            tensorSpec(ins[k], where + ".inputs[" + std::to_string(k) + "]"));
      const json &outs = array(entries[i], "outputs", where);
      for (size_t k = 0; k < outs.size(); ++k)
        e.outputs.push_back(
            tensorSpec(outs[k], where + ".outputs[" + std::to_string(k) + "]"));
      for (const json &p : array(entries[i], "parameters", where)) {
        if (!p.is_string() || !m.findParameter(p.get<std::string>()))
          fieldError(where + ".parameters",
                     "names a parameter the package does not have: " + p.dump());
        e.parameters.push_back(p.get<std::string>());
      }
      if (m.findEntry(e.name))
        fieldError(where, "entry point '" + e.name + "' is listed twice");
      m.entryPoints.push_back(std::move(e));
    }
    return m;
  } catch (const FieldError &e) {
    return Status::fail(path + ": " + e.message);
  }
}

} // namespace tessera::rt
