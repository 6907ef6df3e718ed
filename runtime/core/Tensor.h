//===- Tensor.h - Host tensors of the runtime -------------------*- C++ -*-===//
//
// A Tensor is a dense, row-major buffer with a dtype and a shape. Its bytes
// are shared: a tensor read from a mapped weights file keeps the mapping
// alive, one allocated by the runtime owns 64-byte aligned memory.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CORE_TENSOR_H
#define TESSERA_RUNTIME_CORE_TENSOR_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tessera::rt {

enum class DType { F64, F32, F16, BF16, F8E4M3, F8E5M2, I64, I32, I16, I8,
                   U64, U32, U16, U8, Bool };

/// Bytes per element.
size_t dtypeSize(DType t);
/// The spelling of safetensors headers and manifests ("F32", "BF16", ...).
const char *dtypeName(DType t);
std::optional<DType> parseDTypeName(const std::string &name);
/// The spelling of .tsr types ("f32", "bf16", "i32", ...).
const char *dtypeTsrName(DType t);
std::optional<DType> parseTsrDType(const std::string &name);

/// "[2, 3]".
std::string shapeString(const std::vector<int64_t> &shape);
/// The number of elements, or nullopt when a dim is negative or the product
/// overflows (or exceeds `limit`).
std::optional<uint64_t> elementCount(const std::vector<int64_t> &shape,
                                     uint64_t limit = uint64_t(1) << 48);

class Tensor {
public:
  Tensor() = default;
  /// Zero-filled, 64-byte aligned.
  static Tensor zeros(DType dtype, std::vector<int64_t> shape);
  /// Views `data` without copying; `owner` keeps it alive.
  static Tensor view(DType dtype, std::vector<int64_t> shape, const void *data,
                     std::shared_ptr<const void> owner);

  DType dtype() const { return type; }
  const std::vector<int64_t> &shape() const { return dims; }
  int64_t rank() const { return int64_t(dims.size()); }
  uint64_t numElements() const;
  uint64_t byteSize() const { return numElements() * dtypeSize(type); }
  void *data() { return ptr; }
  const void *data() const { return ptr; }
  template <typename T> T *as() { return static_cast<T *>(ptr); }
  template <typename T> const T *as() const { return static_cast<const T *>(ptr); }
  /// "f32[2, 3]".
  std::string typeString() const;
  /// A copy into fresh aligned memory (used when a mapped tensor is not
  /// aligned for its element type, or must be written to).
  Tensor clone() const;

private:
  DType type = DType::F32;
  std::vector<int64_t> dims;
  void *ptr = nullptr;
  std::shared_ptr<const void> owner;
};

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_CORE_TENSOR_H
