//===- Npy.cpp - NumPy .npy files -----------------------------------------===//

#include "runtime/io/Npy.h"

#include "runtime/support/File.h"

#include <cctype>
#include <cstring>

namespace tessera::rt {

namespace {
struct Descr {
  const char *code; // without the byte-order character
  DType type;
};
constexpr Descr descrs[] = {
    {"f8", DType::F64}, {"f4", DType::F32}, {"f2", DType::F16},
    {"i8", DType::I64}, {"i4", DType::I32}, {"i2", DType::I16},
    {"i1", DType::I8},  {"u8", DType::U64}, {"u4", DType::U32},
    {"u2", DType::U16}, {"u1", DType::U8},  {"b1", DType::Bool},
};

/// A reader for the Python dict literal of the header:
/// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
class HeaderParser {
public:
  explicit HeaderParser(const std::string &s) : s(s) {}

  Status parse(std::string &descr, bool &fortran, std::vector<int64_t> &shape) {
    bool haveDescr = false, haveOrder = false, haveShape = false;
    if (!eat('{'))
      return Status::fail("the header is not a Python dict");
    while (!eat('}')) {
      std::string key;
      if (!string(key) || !eat(':'))
        return Status::fail("malformed header near offset " + std::to_string(i));
      if (key == "descr") {
        if (!string(descr))
          return Status::fail("'descr' must be a string such as '<f4'");
        haveDescr = true;
      } else if (key == "fortran_order") {
        if (word("True"))
          fortran = true;
        else if (word("False"))
          fortran = false;
        else
          return Status::fail("'fortran_order' must be True or False");
        haveOrder = true;
      } else if (key == "shape") {
        if (!eat('('))
          return Status::fail("'shape' must be a tuple of integers");
        while (!eat(')')) {
          int64_t d;
          if (!integer(d))
            return Status::fail("'shape' must be a tuple of non-negative "
                                "integers below 2^48");
          shape.push_back(d);
          if (!eat(',') && !peek(')'))
            return Status::fail("'shape' must be a tuple of integers");
        }
        haveShape = true;
      } else {
        return Status::fail("unknown header key '" + key + "'");
      }
      if (!eat(',') && !peek('}'))
        return Status::fail("malformed header near offset " + std::to_string(i));
    }
    if (!haveDescr || !haveOrder || !haveShape)
      return Status::fail(std::string("the header lacks '") +
                          (!haveDescr ? "descr" : !haveOrder ? "fortran_order"
                                                             : "shape") + "'");
    skipSpace();
    if (i != s.size())
      return Status::fail("unexpected text after the header dict");
    return {};
  }

private:
  void skipSpace() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
      ++i;
  }
  bool peek(char c) {
    skipSpace();
    return i < s.size() && s[i] == c;
  }
  bool eat(char c) {
    if (!peek(c))
      return false;
    ++i;
    return true;
  }
  bool word(const char *w) {
    skipSpace();
    size_t n = std::strlen(w);
    if (s.compare(i, n, w) != 0)
      return false;
    i += n;
    return true;
  }
  bool string(std::string &out) {
    skipSpace();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"'))
      return false;
    char q = s[i++];
    size_t end = s.find(q, i);
    if (end == std::string::npos)
      return false;
    out = s.substr(i, end - i);
    i = end + 1;
    return true;
  }
  bool integer(int64_t &out) {
    skipSpace();
    size_t start = i;
    uint64_t v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      v = v * 10 + uint64_t(s[i++] - '0');
      if (v > (uint64_t(1) << 48))
        return false;
    }
    if (i < s.size() && (s[i] == 'L')) // Python 2 longs
      ++i;
    out = int64_t(v);
    return i > start;
  }

  const std::string &s;
  size_t i = 0;
};
} // namespace

Expected<Tensor> parseNpy(const unsigned char *bytes, size_t size,
                          const std::string &name) {
  auto fail = [&](const std::string &msg) -> Status {
    return Status::fail(name + ": " + msg);
  };
  if (size < 10 || std::memcmp(bytes, "\x93NUMPY", 6) != 0)
    return fail("not a .npy file (no \\x93NUMPY magic)");
  unsigned major = bytes[6];
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = bytes[8] | size_t(bytes[9]) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12)
      return fail("truncated header");
    headerLen = bytes[8] | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 |
                size_t(bytes[11]) << 24;
    offset = 12;
  } else {
    return fail("unsupported .npy version " + std::to_string(major) + "." +
                std::to_string(bytes[7]));
  }
  if (headerLen > size - offset)
    return fail("truncated: the header needs " + std::to_string(headerLen) +
                " bytes but the file has " + std::to_string(size - offset));
  std::string header(reinterpret_cast<const char *>(bytes + offset), headerLen);
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  if (Status s = HeaderParser(header).parse(descr, fortran, shape); !s)
    return std::move(s).within(name);
  if (fortran)
    return fail("fortran_order=True is not supported; save a C-ordered array "
                "(numpy.ascontiguousarray)");
  if (descr.size() < 2 || (descr[0] != '<' && descr[0] != '|' && descr[0] != '='))
    return fail("descr '" + descr + "': only little-endian arrays are "
                "supported");
  std::optional<DType> type;
  for (const Descr &d : descrs)
    if (descr.compare(1, std::string::npos, d.code) == 0)
      type = d.type;
  if (!type)
    return fail("unsupported descr '" + descr + "' (supported: f8 f4 f2 i8 i4 "
                "i2 i1 u8 u4 u2 u1 b1)");
  std::optional<uint64_t> count = elementCount(shape);
  if (!count)
    return fail("shape " + shapeString(shape) + " is too large");
  uint64_t need = *count * dtypeSize(*type);
  uint64_t have = size - offset - headerLen;
  if (need != have)
    return fail("the data of " + std::string(dtypeTsrName(*type)) +
                shapeString(shape) + " is " + std::to_string(need) +
                " bytes but the file holds " + std::to_string(have) +
                (need > have ? " (truncated)" : ""));
  Tensor t = Tensor::zeros(*type, shape);
  if (need)
    std::memcpy(t.data(), bytes + offset + headerLen, need);
  return t;
}

Expected<Tensor> readNpy(const std::string &path) {
  Expected<MappedFile> file = MappedFile::open(path);
  if (!file)
    return std::move(file).takeStatus();
  return parseNpy(file->data(), file->size(), path);
}

Status writeNpy(const std::string &path, const Tensor &t) {
  const char *code = nullptr;
  for (const Descr &d : descrs)
    if (d.type == t.dtype())
      code = d.code;
  if (!code)
    return Status::fail(path + ": " + dtypeTsrName(t.dtype()) +
                        " has no NumPy dtype");
  // Python tuple syntax: (), (5,), (2, 3).
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i)
    shape += (i ? ", " : "") + std::to_string(t.shape()[i]);
  shape += t.rank() == 1 ? ",)" : ")";
  std::string header = std::string("{'descr': '") +
                       (dtypeSize(t.dtype()) == 1 ? "|" : "<") + code +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Magic (6) + version (2) + length (2) + header + '\n', 64-byte aligned.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  out += header;
  out.append(static_cast<const char *>(t.data()), t.byteSize());
  return writeFileAtomic(path, out);
}

} // namespace tessera::rt
