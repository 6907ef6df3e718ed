//===- Status.h - Errors of the runtime -------------------------*- C++ -*-===//
//
// The runtime reports every failure as a message that names the file and the
// field at fault ("weights.safetensors: tensor 'w': data_offsets [0, 12] ...").
// It builds without LLVM, so it has its own small Expected: a value or an
// error message, checked before use.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_SUPPORT_STATUS_H
#define TESSERA_RUNTIME_SUPPORT_STATUS_H

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace tessera::rt {

/// A failure message. Constructed only through `fail`, so a default-built
/// Status is always success.
class [[nodiscard]] Status {
public:
  Status() = default;
  static Status fail(std::string message) {
    Status s;
    s.message = std::move(message);
    return s;
  }
  bool ok() const { return !message; }
  explicit operator bool() const { return ok(); }
  const std::string &error() const {
    assert(message && "error() of a successful Status");
    return *message;
  }
  /// Prefixes the message with where it happened ("FILE: ").
  Status within(const std::string &where) && {
    if (message)
      *message = where + ": " + *message;
    return std::move(*this);
  }

private:
  std::optional<std::string> message;
};

/// A value of type T, or the Status explaining why there is none.
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : value(std::move(value)) {}
  Expected(Status status) : status(std::move(status)) {
    assert(!this->status.ok() && "Expected built from a successful Status");
  }
  bool ok() const { return value.has_value(); }
  explicit operator bool() const { return ok(); }
  T &operator*() { return *value; }
  const T &operator*() const { return *value; }
  T *operator->() { return &*value; }
  const T *operator->() const { return &*value; }
  const std::string &error() const { return status.error(); }
  Status takeStatus() && { return std::move(status); }

private:
  std::optional<T> value;
  Status status;
};

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_SUPPORT_STATUS_H
