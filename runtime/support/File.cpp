//===- File.cpp - Reading and atomically writing files --------------------===//

#include "runtime/support/File.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tessera::rt {

static Status errnoStatus(const std::string &path, const char *what) {
  return Status::fail(path + ": " + what + ": " + std::strerror(errno));
}

Expected<MappedFile> MappedFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errnoStatus(path, "cannot open");
  struct stat st;
  if (fstat(fd, &st) != 0) {
    Status s = errnoStatus(path, "cannot stat");
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::fail(path + ": not a regular file");
  }
  MappedFile file;
  file.name = path;
  file.length = size_t(st.st_size);
  if (file.length > 0) {
    void *p = mmap(nullptr, file.length, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      Status s = errnoStatus(path, "cannot map");
      ::close(fd);
      return s;
    }
    file.bytes = static_cast<const unsigned char *>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::MappedFile(MappedFile &&other) noexcept { *this = std::move(other); }

MappedFile &MappedFile::operator=(MappedFile &&other) noexcept {
  if (this != &other) {
    if (bytes)
      munmap(const_cast<unsigned char *>(bytes), length);
    bytes = other.bytes;
    length = other.length;
    name = std::move(other.name);
    other.bytes = nullptr;
    other.length = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (bytes)
    munmap(const_cast<unsigned char *>(bytes), length);
}

std::string parentDirectory(const std::string &path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string joinPath(const std::string &dir, const std::string &name) {
  if (dir.empty() || dir == ".")
    return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

Expected<AtomicFile> AtomicFile::create(const std::string &path) {
  AtomicFile f;
  f.target = path;
  f.temp = path + ".tmp-XXXXXX";
  f.fd = mkostemp(f.temp.data(), O_CLOEXEC);
  if (f.fd < 0)
    return errnoStatus(f.temp, "cannot create");
  return f;
}

AtomicFile::AtomicFile(AtomicFile &&other) noexcept
    : fd(other.fd), target(std::move(other.target)), temp(std::move(other.temp)) {
  other.fd = -1;
  other.temp.clear();
}

AtomicFile::~AtomicFile() {
  if (fd >= 0)
    ::close(fd);
  if (!temp.empty())
    ::unlink(temp.c_str());
}

Status AtomicFile::write(const void *data, size_t size) {
  const char *p = static_cast<const char *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errnoStatus(target, "cannot write");
    p += n;
    size -= size_t(n);
  }
  return {};
}

Status AtomicFile::commit() {
  // Readable like any file the user writes (mkstemp makes it 0600).
  mode_t mask = umask(0);
  umask(mask);
  if (fchmod(fd, 0666 & ~mask) != 0)
    return errnoStatus(temp, "cannot set permissions");
  if (fsync(fd) != 0)
    return errnoStatus(target, "cannot flush");
  ::close(fd);
  fd = -1;
  if (::rename(temp.c_str(), target.c_str()) != 0)
    return errnoStatus(target, "cannot rename the temporary file into place");
  temp.clear();
  return syncDirectory(parentDirectory(target));
}

Status syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return errnoStatus(dir, "cannot open directory");
  int rc = fsync(fd);
  ::close(fd);
  if (rc != 0)
    return errnoStatus(dir, "cannot flush directory");
  return {};
}

Expected<std::string> readFile(const std::string &path) {
  Expected<MappedFile> file = MappedFile::open(path);
  if (!file)
    return std::move(file).takeStatus();
  return std::string(reinterpret_cast<const char *>(file->data()), file->size());
}

Status writeFileAtomic(const std::string &path, const std::string &contents) {
  Expected<AtomicFile> file = AtomicFile::create(path);
  if (!file)
    return std::move(file).takeStatus();
  if (Status s = file->write(contents.data(), contents.size()); !s)
    return s;
  return file->commit();
}

} // namespace tessera::rt
