//===- File.h - Reading and atomically writing files ------------*- C++ -*-===//

#ifndef TESSERA_RUNTIME_SUPPORT_FILE_H
#define TESSERA_RUNTIME_SUPPORT_FILE_H

#include "runtime/support/Status.h"

#include <cstddef>
#include <string>

namespace tessera::rt {

/// A read-only memory map of a whole file (empty files map to nothing).
class MappedFile {
public:
  static Expected<MappedFile> open(const std::string &path);
  MappedFile(MappedFile &&other) noexcept;
  MappedFile &operator=(MappedFile &&other) noexcept;
  MappedFile(const MappedFile &) = delete;
  MappedFile &operator=(const MappedFile &) = delete;
  ~MappedFile();

  const unsigned char *data() const { return bytes; }
  size_t size() const { return length; }
  const std::string &path() const { return name; }

private:
  MappedFile() = default;
  const unsigned char *bytes = nullptr;
  size_t length = 0;
  std::string name;
};

/// Writes a file so that a crash leaves either the old file or the complete
/// new one: the bytes go to a temporary file in the same directory, which is
/// flushed to disk and then renamed over the target (and the directory
/// flushed). Without commit() the temporary file is removed.
class AtomicFile {
public:
  static Expected<AtomicFile> create(const std::string &path);
  AtomicFile(AtomicFile &&other) noexcept;
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;
  AtomicFile &operator=(AtomicFile &&) = delete;
  ~AtomicFile();

  Status write(const void *data, size_t size);
  Status commit();

private:
  AtomicFile() = default;
  int fd = -1;
  std::string target, temp;
};

/// Reads a whole file.
Expected<std::string> readFile(const std::string &path);
/// AtomicFile in one call.
Status writeFileAtomic(const std::string &path, const std::string &contents);
/// Flushes a directory entry (after a rename into it) to disk.
Status syncDirectory(const std::string &dir);
/// The directory part of a path ("." when there is none).
std::string parentDirectory(const std::string &path);
/// `dir/name`.
std::string joinPath(const std::string &dir, const std::string &name);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_SUPPORT_FILE_H
