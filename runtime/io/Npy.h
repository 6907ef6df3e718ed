//===- Npy.h - NumPy .npy files ---------------------------------*- C++ -*-===//
//
// Versions 1.0-3.0 of the format, little-endian (or byte-order free) dtypes,
// C order. Everything else is refused with a message naming the file and the
// header field.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_IO_NPY_H
#define TESSERA_RUNTIME_IO_NPY_H

#include "runtime/core/Tensor.h"

namespace tessera::rt {

Expected<Tensor> readNpy(const std::string &path);
Expected<Tensor> parseNpy(const unsigned char *bytes, size_t size,
                          const std::string &name);
/// Writes a version 1.0 file atomically.
Status writeNpy(const std::string &path, const Tensor &tensor);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_IO_NPY_H
