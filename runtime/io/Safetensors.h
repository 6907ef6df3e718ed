//===- Safetensors.h - The safetensors weights format -----------*- C++ -*-===//
//
// Layout: an 8-byte little-endian header length N, N bytes of JSON mapping
// tensor names to {dtype, shape, data_offsets: [begin, end]} (plus an
// optional "__metadata__" map of strings), then the data. Reading validates
// every field against the file before any tensor is touched, so a malformed
// or truncated file is an error that names the file and the field, never an
// out-of-bounds read.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_IO_SAFETENSORS_H
#define TESSERA_RUNTIME_IO_SAFETENSORS_H

#include "runtime/core/Tensor.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace tessera::rt {

struct SafetensorsFile {
  /// Sorted by name.
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  const Tensor *find(const std::string &name) const;
};

/// Maps `path` and views its tensors (tensors not aligned for their dtype are
/// copied).
Expected<SafetensorsFile> readSafetensors(const std::string &path);
/// Parses an in-memory image; `name` is used in messages. The tensors view
/// `bytes`, which `owner` keeps alive.
Expected<SafetensorsFile> parseSafetensors(const unsigned char *bytes,
                                           size_t size, const std::string &name,
                                           std::shared_ptr<const void> owner);
/// Writes atomically (see AtomicFile); tensors are laid out by decreasing
/// element size, so every tensor is aligned for its dtype.
Status writeSafetensors(const std::string &path,
                        const std::vector<std::pair<std::string, Tensor>> &tensors,
                        const std::map<std::string, std::string> &metadata = {});

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_IO_SAFETENSORS_H
