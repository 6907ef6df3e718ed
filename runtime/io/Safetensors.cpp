//===- Safetensors.cpp - The safetensors weights format -------------------===//

#include "runtime/io/Safetensors.h"

#include "runtime/support/File.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <set>

using json = nlohmann::json;

namespace tessera::rt {

namespace {
/// The reference implementation's limit; a larger header is not a weights
/// file.
constexpr uint64_t maxHeaderSize = 100u << 20;

uint64_t readLE64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

Expected<std::vector<int64_t>> shapeOf(const json &j, const std::string &where) {
  if (!j.is_array())
    return Status::fail(where + ": 'shape' must be an array of integers");
  std::vector<int64_t> shape;
  for (const json &d : j) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > (uint64_t(1) << 48))
      return Status::fail(where + ": 'shape' entries must be integers in "
                                  "[0, 2^48], got " + d.dump());
    shape.push_back(int64_t(d.get<uint64_t>()));
  }
  return shape;
}
} // namespace

const Tensor *SafetensorsFile::find(const std::string &name) const {
  for (const auto &[n, t] : tensors)
    if (n == name)
      return &t;
  return nullptr;
}

Expected<SafetensorsFile> parseSafetensors(const unsigned char *bytes,
                                           size_t size, const std::string &name,
                                           std::shared_ptr<const void> owner) {
  auto fail = [&](const std::string &msg) -> Status {
    return Status::fail(name + ": " + msg);
  };
  if (size < 8)
    return fail("truncated: " + std::to_string(size) +
                " bytes, but a safetensors file starts with an 8-byte header "
                "length");
  uint64_t headerSize = readLE64(bytes);
  if (headerSize > maxHeaderSize)
    return fail("header length " + std::to_string(headerSize) +
                " exceeds the 100 MiB limit (not a safetensors file?)");
  if (headerSize > size - 8)
    return fail("truncated: the header length is " + std::to_string(headerSize) +
                " bytes but only " + std::to_string(size - 8) + " follow");
  const char *text = reinterpret_cast<const char *>(bytes + 8);
  if (headerSize == 0 || text[0] != '{')
    return fail("the header is not a JSON object");

  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t onEvent = [&](int depth, json::parse_event_t event,
                                        json &parsed) {
    if (event == json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json header;
  try {
    header = json::parse(text, text + headerSize, onEvent);
  } catch (const json::exception &e) {
    return fail(std::string("the header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty())
    return fail("tensor '" + duplicate + "' appears twice in the header");
  if (!header.is_object())
    return fail("the header is not a JSON object");

  const unsigned char *data = bytes + 8 + headerSize;
  uint64_t dataSize = size - 8 - headerSize;
  SafetensorsFile file;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &key = it.key();
    if (key == "__metadata__") {
      if (!it->is_object())
        return fail("'__metadata__' must be an object of strings");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return fail("'__metadata__' entry '" + m.key() + "' must be a string");
        file.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    std::string where = "tensor '" + key + "'";
    if (!it->is_object())
      return fail(where + " must be an object with dtype, shape and "
                          "data_offsets");
    for (auto f = it->begin(); f != it->end(); ++f)
      if (f.key() != "dtype" && f.key() != "shape" && f.key() != "data_offsets")
        return fail(where + ": unknown field '" + f.key() + "'");
    if (!it->contains("dtype") || !(*it)["dtype"].is_string())
      return fail(where + ": 'dtype' must be a string");
    std::optional<DType> dtype = parseDTypeName((*it)["dtype"].get<std::string>());
    if (!dtype)
      return fail(where + ": unsupported dtype '" +
                  (*it)["dtype"].get<std::string>() + "'");
    if (!it->contains("shape"))
      return fail(where + ": missing 'shape'");
    Expected<std::vector<int64_t>> shape = shapeOf((*it)["shape"], where);
    if (!shape)
      return std::move(shape).takeStatus().within(name);
    const json *offsets = it->contains("data_offsets") ? &(*it)["data_offsets"]
                                                       : nullptr;
    if (!offsets || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      return fail(where + ": 'data_offsets' must be [begin, end] with "
                          "non-negative integers");
    uint64_t begin = (*offsets)[0].get<uint64_t>();
    uint64_t end = (*offsets)[1].get<uint64_t>();
    std::string range = "[" + std::to_string(begin) + ", " +
                        std::to_string(end) + "]";
    if (begin > end)
      return fail(where + ": data_offsets " + range + " has begin > end");
    if (end > dataSize)
      return fail(where + ": data_offsets " + range + " run past the end of "
                  "the data (" + std::to_string(dataSize) +
                  " bytes): the file is truncated or corrupt");
    std::optional<uint64_t> count = elementCount(*shape);
    if (!count || *count > UINT64_MAX / dtypeSize(*dtype) ||
        *count * dtypeSize(*dtype) != end - begin)
      return fail(where + ": " + dtypeName(*dtype) + shapeString(*shape) +
                  " needs " +
                  (count ? std::to_string(*count * dtypeSize(*dtype))
                         : std::string("too many")) +
                  " bytes but data_offsets " + range + " hold " +
                  std::to_string(end - begin));
    ranges.push_back({begin, end});
    const unsigned char *p = data + begin;
    Tensor t = Tensor::view(*dtype, *shape, p, owner);
    // Compiled code and the runtime read elements in place: keep them
    // aligned.
    if (reinterpret_cast<uintptr_t>(p) % dtypeSize(*dtype) != 0)
      t = t.clone();
    file.tensors.push_back({key, std::move(t)});
  }
  // Like the reference implementation: the tensors tile the data exactly.
  std::sort(ranges.begin(), ranges.end());
  uint64_t next = 0;
  for (auto [b, e] : ranges) {
    if (b != next)
      return fail(b < next ? "two tensors' data_offsets overlap at byte " +
                                 std::to_string(b)
                           : "bytes " + std::to_string(next) + ".." +
                                 std::to_string(b) +
                                 " of the data belong to no tensor");
    next = e;
  }
  if (next != dataSize)
    return fail("the data has " + std::to_string(dataSize - next) +
                " trailing bytes that belong to no tensor");
  return file;
}

Expected<SafetensorsFile> readSafetensors(const std::string &path) {
  Expected<MappedFile> mapped = MappedFile::open(path);
  if (!mapped)
    return std::move(mapped).takeStatus();
  auto shared = std::make_shared<MappedFile>(std::move(*mapped));
  return parseSafetensors(shared->data(), shared->size(), path,
                          std::shared_ptr<const void>(shared, shared->data()));
}

Status writeSafetensors(const std::string &path,
                        const std::vector<std::pair<std::string, Tensor>> &tensors,
                        const std::map<std::string, std::string> &metadata) {
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  // Larger elements first, otherwise in the given order.
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    size_t sa = dtypeSize(tensors[a].second.dtype());
    size_t sb = dtypeSize(tensors[b].second.dtype());
    return sa != sb ? sa > sb : a < b;
  });
  json header = json::object();
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto &[name, t] = tensors[i];
    if (name == "__metadata__" || header.contains(name))
      return Status::fail(path + ": tensor name '" + name +
                          "' is reserved or used twice");
    header[name] = {{"dtype", dtypeName(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.byteSize()}}};
    offset += t.byteSize();
  }
  std::string text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = (uint64_t(text.size()) >> (8 * i)) & 0xff;
  Expected<AtomicFile> out = AtomicFile::create(path);
  if (!out)
    return std::move(out).takeStatus();
  if (Status s = out->write(prefix, 8); !s)
    return s;
  if (Status s = out->write(text.data(), text.size()); !s)
    return s;
  for (size_t i : order)
    if (Status s = out->write(tensors[i].second.data(),
                              tensors[i].second.byteSize());
        !s)
      return s;
  return out->commit();
}

} // namespace tessera::rt
