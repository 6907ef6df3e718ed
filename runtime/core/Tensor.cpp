//===- Tensor.cpp - Host tensors of the runtime ---------------------------===//

#include "runtime/core/Tensor.h"

#include <cstdlib>
#include <cstring>

namespace tessera::rt {

namespace {
struct DTypeInfo {
  DType type;
  size_t size;
  const char *name, *tsr;
};
constexpr DTypeInfo dtypes[] = {
    {DType::F64, 8, "F64", "f64"},         {DType::F32, 4, "F32", "f32"},
    {DType::F16, 2, "F16", "f16"},         {DType::BF16, 2, "BF16", "bf16"},
    {DType::F8E4M3, 1, "F8_E4M3", "f8e4m3"}, {DType::F8E5M2, 1, "F8_E5M2", "f8e5m2"},
    {DType::I64, 8, "I64", "i64"},         {DType::I32, 4, "I32", "i32"},
    {DType::I16, 2, "I16", "i16"},         {DType::I8, 1, "I8", "i8"},
    {DType::U64, 8, "U64", "u64"},         {DType::U32, 4, "U32", "u32"},
    {DType::U16, 2, "U16", "u16"},         {DType::U8, 1, "U8", "u8"},
    {DType::Bool, 1, "BOOL", "bool"},
};
const DTypeInfo &info(DType t) { return dtypes[size_t(t)]; }
} // namespace

size_t dtypeSize(DType t) { return info(t).size; }
const char *dtypeName(DType t) { return info(t).name; }
const char *dtypeTsrName(DType t) { return info(t).tsr; }

std::optional<DType> parseDTypeName(const std::string &name) {
  for (const DTypeInfo &d : dtypes)
    if (name == d.name)
      return d.type;
  return std::nullopt;
}

std::optional<DType> parseTsrDType(const std::string &name) {
  for (const DTypeInfo &d : dtypes)
    if (name == d.tsr)
      return d.type;
  return std::nullopt;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::optional<uint64_t> elementCount(const std::vector<int64_t> &shape,
                                     uint64_t limit) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return std::nullopt;
    if (d != 0 && n > limit / uint64_t(d))
      return std::nullopt;
    n *= uint64_t(d);
  }
  return n;
}

uint64_t Tensor::numElements() const {
  uint64_t n = 1;
  for (int64_t d : dims)
    n *= uint64_t(d);
  return n;
}

std::string Tensor::typeString() const {
  return std::string(dtypeTsrName(type)) + shapeString(dims);
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t;
  t.type = dtype;
  t.dims = std::move(shape);
  size_t bytes = t.byteSize();
  // aligned_alloc needs a multiple of the alignment.
  size_t rounded = (bytes + 63) / 64 * 64;
  void *p = std::aligned_alloc(64, rounded ? rounded : 64);
  if (!p)
    throw std::bad_alloc();
  std::memset(p, 0, rounded ? rounded : 64);
  t.ptr = p;
  t.owner = std::shared_ptr<const void>(p, [](const void *q) {
    std::free(const_cast<void *>(q));
  });
  return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, const void *data,
                    std::shared_ptr<const void> owner) {
  Tensor t;
  t.type = dtype;
  t.dims = std::move(shape);
  t.ptr = const_cast<void *>(data);
  t.owner = std::move(owner);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = zeros(type, dims);
  if (byteSize())
    std::memcpy(t.ptr, ptr, byteSize());
  return t;
}

} // namespace tessera::rt
