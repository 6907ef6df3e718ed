//===- FuzzRuntime.cpp - libFuzzer target for the runtime's file readers --===//
//
// The first byte picks the reader (safetensors, .npy, manifest.json); the
// rest is the file. Built with AddressSanitizer: any out-of-bounds read,
// leak or crash on hostile input is a failure.
//
//===----------------------------------------------------------------------===//

#include "runtime/io/Npy.h"
#include "runtime/io/Safetensors.h"
#include "runtime/package/Manifest.h"

#include <cstring>
#include <memory>

using namespace tessera::rt;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  // Copy into an exactly-sized heap buffer so ASan sees its end.
  auto bytes = std::shared_ptr<unsigned char[]>(new unsigned char[size - 1]);
  std::memcpy(bytes.get(), data + 1, size - 1);
  switch (data[0] % 3) {
  case 0: {
    Expected<SafetensorsFile> f = parseSafetensors(
        bytes.get(), size - 1, "fuzz", std::shared_ptr<const void>(bytes, bytes.get()));
    if (f.ok())
      for (auto &[name, t] : f->tensors) {
        volatile unsigned char sink = 0;
        for (uint64_t i = 0; i < t.byteSize(); ++i)
          sink ^= static_cast<const unsigned char *>(t.data())[i];
      }
    break;
  }
  case 1:
    (void)parseNpy(bytes.get(), size - 1, "fuzz");
    break;
  case 2:
    (void)Manifest::parse(
        std::string(reinterpret_cast<const char *>(bytes.get()), size - 1), "fuzz");
    break;
  }
  return 0;
}
