//===- PtxSim.cpp - A PTX interpreter for the fake CUDA driver ------------===//
//
// The PTX is parsed once into instructions with resolved operands (register
// numbers, immediates as bits, label targets, symbol addresses), then
// interpreted per thread. Registers hold raw bits; each instruction reads
// them at its own type. Fragment layouts of ldmatrix and mma.sync follow
// the PTX ISA ("Matrix fragments for mma.m16n8k16", "ldmatrix"); mbarrier
// phases and transaction counts its "Parallel Synchronization and
// Communication Instructions: mbarrier", and cp.async.bulk.tensor its
// "Tensor copy" with the CUDA programming guide's swizzle patterns.
//
//===----------------------------------------------------------------------===//

#include "PtxSim.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ptxsim {
namespace {

enum class Op : uint8_t {
  Mov, Add, Sub, Mul, MulWide, MulHi, Mad, Fma, Div, Rem, Min, Max, Neg, Abs,
  Sqrt, Rcp, Ex2, Lg2, Shl, Shr, Bfe, And, Or, Xor, Not, Setp, Selp, Cvt, Cvta,
  Ld, St, CpAsync, CpCommit, CpWait, CpWaitAll, Nop, Bar, Ldmatrix, Mma, Shfl,
  Bra, Ret, FenceProxyAsync, WgFence, Wgmma, WgCommit, WgWait, MbarInit,
  MbarInval, MbarArrive, MbarArriveExpectTx, MbarExpectTx, MbarCompleteTx,
  MbarTryWait, BulkTensor, Atom, Red, Fence
};

enum class Ty : uint8_t {
  None, B8, B16, B32, B64, U8, U16, U32, U64, S8, S16, S32, S64, F16, BF16,
  F32, F64, Pred
};

enum class Space : uint8_t { Generic, Global, Shared, Local, Param };

enum class Cmp : uint8_t {
  Eq, Ne, Lt, Le, Gt, Ge, Lo, Ls, Hi, Hs, Equ, Neu, Ltu, Leu, Gtu, Geu, Num,
  Nan
};

enum class Rnd : uint8_t { None, Rn, Rz, Rm, Rp, Rni, Rzi, Rmi, Rpi };

enum class ShflMode : uint8_t { Up, Down, Bfly, Idx };

/// The operation of atom and red.
enum class AtomOp : uint8_t {
  Add, Exch, Cas, And, Or, Xor, Min, Max, Inc, Dec
};

/// What bar.red reduces the threads' predicates to.
enum class Reduce : uint8_t { None, Popc, And, Or };

enum Special : uint8_t {
  TidX, TidY, TidZ, NtidX, NtidY, NtidZ, CtaidX, CtaidY, CtaidZ, NctaidX,
  NctaidY, NctaidZ, LaneId, WarpId
};

struct Operand {
  enum Kind : uint8_t { None, Reg, Imm, Vec, Addr, Spec, Label };
  Kind kind = None;
  bool negate = false; // !%p
  int32_t reg = -1;    // Reg; the base register of Addr (or -1)
  int64_t imm = 0;     // Imm bits; Addr offset; Spec id; Label target
  std::vector<Operand> elems; // Vec; an element with kind None is `_`
  std::string label;   // Label name until resolved
};

struct Inst {
  Op op = Op::Nop;
  Ty type = Ty::None, srcType = Ty::None;
  Space space = Space::Generic;
  Cmp cmp = Cmp::Eq;
  Rnd rnd = Rnd::None;
  uint8_t vec = 1, count = 1;
  /// wgmma.mma_async: N of m64nNk16.
  uint16_t wgN = 0;
  bool ftz = false, sat = false, trans = false, nan = false;
  /// cvt.{f16x2,bf16x2}.f32 d, a, b: a to the upper half, b to the lower.
  bool pack = false;
  ShflMode shfl = ShflMode::Idx;
  AtomOp atom = AtomOp::Add;
  Reduce reduce = Reduce::None;
  Space cvtaSpace = Space::Global;
  bool cvtaTo = false;
  int32_t pred = -1;
  bool predNegated = false;
  std::vector<Operand> ops;
  int line = 0;
};

struct Kernel {
  std::string name;
  std::vector<Inst> code;
  unsigned registers = 0;
  struct Param {
    unsigned offset, size;
  };
  std::vector<Param> params;
  unsigned paramBytes = 0;
  unsigned sharedBytes = 0; // module and kernel shared variables
  unsigned localBytes = 0;
  /// Whether it has wgmma instructions: then the interpreter tracks which
  /// registers in-flight wgmma operations will write, and which shared
  /// bytes were written without a fence.proxy.async since.
  bool wgmma = false;
  /// Whether it has cp.async.bulk.tensor: then the interpreter tracks which
  /// shared bytes in-flight bulk copies will write.
  bool bulk = false;
  /// Whether it has atom or red instructions that may access shared memory:
  /// then the interpreter tracks which shared bytes atomics updated, which
  /// other atomics may update too between the same two barriers.
  bool sharedAtomics = false;
  /// Where dynamic shared memory starts: after the static variables, at
  /// the alignment its `.extern .shared` declaration asks for.
  unsigned dynamicSharedOffset = 0;
};

constexpr uint64_t kSharedWindow = uint64_t(1) << 60;
constexpr uint64_t kLocalWindow = uint64_t(2) << 60;
constexpr uint64_t kWindowSize = uint64_t(1) << 40;

unsigned bits(Ty t) {
  switch (t) {
  case Ty::B8: case Ty::U8: case Ty::S8: return 8;
  case Ty::B16: case Ty::U16: case Ty::S16: case Ty::F16: case Ty::BF16:
    return 16;
  case Ty::B32: case Ty::U32: case Ty::S32: case Ty::F32: return 32;
  case Ty::B64: case Ty::U64: case Ty::S64: case Ty::F64: return 64;
  case Ty::Pred: return 1;
  case Ty::None: return 0;
  }
  return 0;
}
bool isSigned(Ty t) {
  return t == Ty::S8 || t == Ty::S16 || t == Ty::S32 || t == Ty::S64;
}
bool isFloat(Ty t) {
  return t == Ty::F16 || t == Ty::BF16 || t == Ty::F32 || t == Ty::F64;
}

//===----------------------------------------------------------------------===//
// Numbers
//===----------------------------------------------------------------------===//

/// The bits of `from` read as a `To` of the same size.
template <typename To, typename From> To bitCast(From from) {
  static_assert(sizeof(To) == sizeof(From), "sizes differ");
  To to;
  std::memcpy(&to, &from, sizeof(To));
  return to;
}
float f32(uint64_t v) { return bitCast<float>(uint32_t(v)); }
double f64(uint64_t v) { return bitCast<double>(v); }
uint64_t bitsOf(float f) { return bitCast<uint32_t>(f); }
uint64_t bitsOf(double d) { return bitCast<uint64_t>(d); }
float bf16ToF32(uint16_t h) { return f32(uint64_t(h) << 16); }
uint16_t f32ToBf16(float f) {
  uint32_t b = uint32_t(bitsOf(f));
  if (std::isnan(f))
    return 0x7fff;
  return uint16_t((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}
float f16ToF32(uint16_t h) {
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return float(x);
}
uint16_t f32ToF16(float f) {
  _Float16 x = _Float16(f);
  uint16_t h;
  std::memcpy(&h, &x, 2);
  return h;
}

/// The value of `raw` read as `t`, widened: integers to int64 (sign- or
/// zero-extended), floats to double.
int64_t asInt(uint64_t raw, Ty t) {
  unsigned n = bits(t);
  if (n == 64)
    return int64_t(raw);
  uint64_t mask = (uint64_t(1) << n) - 1;
  raw &= mask;
  if (isSigned(t) && (raw >> (n - 1)) & 1)
    raw |= ~mask;
  return int64_t(raw);
}
double asFloat(uint64_t raw, Ty t) {
  switch (t) {
  case Ty::F16: return f16ToF32(uint16_t(raw));
  case Ty::BF16: return bf16ToF32(uint16_t(raw));
  case Ty::F32: return f32(raw);
  default: return f64(raw);
  }
}
float flush(float f) {
  return std::fpclassify(f) == FP_SUBNORMAL ? std::copysign(0.0f, f) : f;
}
/// Bits of `v` rounded to the float type `t`.
uint64_t fromFloat(double v, Ty t) {
  switch (t) {
  case Ty::F16: return f32ToF16(float(v));
  case Ty::BF16: return f32ToBf16(float(v));
  case Ty::F32: return bitsOf(float(v));
  default: return bitsOf(v);
  }
}

//===----------------------------------------------------------------------===//
// Parsing
//===----------------------------------------------------------------------===//

struct Statement {
  std::string text;
  int line;
};

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool isIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '$' ||
         c == '%' || c == '.';
}

/// Splits PTX into statements: instructions and directives ending in `;`,
/// labels (`NAME:`), kernel headers (ending before their `{`) and the
/// braces themselves.
std::vector<Statement> split(const std::string &text) {
  std::vector<Statement> out;
  std::string cur;
  int line = 1, startLine = 1;
  int braces = 0; // inside a vector operand or an initializer
  auto emit = [&](std::string s, int l) {
    s = trim(s);
    if (!s.empty())
      out.push_back({s, l});
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '/') {
      while (i < text.size() && text[i] != '\n')
        ++i;
      --i;
      continue;
    }
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      size_t end = text.find("*/", i + 2);
      for (size_t k = i; k < std::min(end, text.size()); ++k)
        line += text[k] == '\n';
      i = end == std::string::npos ? text.size() : end + 1;
      continue;
    }
    if (c == '\n') {
      // .version, .target and .address_size end at the end of their line.
      std::string t = trim(cur);
      if (t.rfind(".version", 0) == 0 || t.rfind(".target", 0) == 0 ||
          t.rfind(".address_size", 0) == 0) {
        emit(cur, startLine);
        cur.clear();
      }
      ++line;
    }
    if (trim(cur).empty()) {
      startLine = line;
      if (c == '{' || c == '}') {
        out.push_back({std::string(1, c), line});
        cur.clear();
        continue;
      }
    }
    if (c == '{') {
      std::string t = trim(cur);
      if (braces == 0 && (t.find(".entry") != std::string::npos ||
                          t.find(".func") != std::string::npos)) {
        emit(cur, startLine);
        out.push_back({"{", line});
        cur.clear();
        continue;
      }
      ++braces;
    } else if (c == '}') {
      --braces;
    } else if (c == ';' && braces == 0) {
      emit(cur, startLine);
      cur.clear();
      continue;
    } else if (c == ':' && braces == 0 &&
               !(i + 1 < text.size() && text[i + 1] == ':') &&
               !(i > 0 && text[i - 1] == ':')) { // not `shared::cta`
      std::string t = trim(cur);
      if (!t.empty() && std::all_of(t.begin(), t.end(), isIdentChar)) {
        emit(cur + ":", startLine);
        cur.clear();
        continue;
      }
    }
    cur += c;
  }
  emit(cur, startLine);
  return out;
}

/// Splits `s` at top-level commas (outside braces and brackets).
std::vector<std::string> splitOperands(const std::string &s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '{' || c == '[' || c == '(')
      ++depth;
    if (c == '}' || c == ']' || c == ')')
      --depth;
    if (c == ',' && depth == 0) {
      out.push_back(trim(cur));
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!trim(cur).empty())
    out.push_back(trim(cur));
  return out;
}

std::vector<std::string> splitDots(const std::string &s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string p;
  while (std::getline(ss, p, '.'))
    parts.push_back(p);
  return parts;
}

Ty parseType(const std::string &s) {
  static const std::map<std::string, Ty> types = {
      {"b8", Ty::B8},   {"b16", Ty::B16}, {"b32", Ty::B32},
      {"b64", Ty::B64}, {"u8", Ty::U8},   {"u16", Ty::U16},
      {"u32", Ty::U32}, {"u64", Ty::U64}, {"s8", Ty::S8},
      {"s16", Ty::S16}, {"s32", Ty::S32}, {"s64", Ty::S64},
      {"f16", Ty::F16}, {"bf16", Ty::BF16}, {"f32", Ty::F32},
      {"f64", Ty::F64}, {"pred", Ty::Pred}};
  auto it = types.find(s);
  return it == types.end() ? Ty::None : it->second;
}

struct ModuleSymbols {
  std::map<std::string, uint64_t> shared; // offsets in the shared window
  std::map<std::string, uint64_t> global; // host addresses
  std::map<std::string, uint64_t> local;  // the current kernel's, offsets
  unsigned sharedBytes = 0;
  std::string dynamicShared;
  unsigned dynamicAlign = 16;
};

} // namespace

struct Module {
  std::vector<Kernel> kernels;
  std::vector<std::unique_ptr<char[]>> globals;
  struct Range {
    uint64_t base, size;
    char *host;
  };
  std::vector<Range> globalRanges;
  std::vector<std::string> source; // statement text per line
};

namespace {

class Parser {
public:
  Parser(Module &m, std::string &error) : m(m), error(error) {}

  bool run(const std::string &text);

private:
  bool fail(int line, const std::string &msg) {
    if (error.empty())
      error = "line " + std::to_string(line) + ": " + msg;
    return false;
  }
  bool parseVariable(const Statement &s, bool inKernel, Kernel *k);
  bool parseKernel(const std::vector<Statement> &st, size_t &i);
  bool parseInst(const Statement &s, Kernel &k,
                 std::unordered_map<std::string, int> &regs,
                 std::map<std::string, int64_t> &params);
  bool parseOperand(const std::string &s, int line, Operand &o,
                    std::unordered_map<std::string, int> &regs,
                    std::map<std::string, int64_t> &params, Space *space);
  bool parseAsyncProxy(const Statement &s, Kernel &k, const std::string &opcode,
                       const std::string &rest,
                       std::unordered_map<std::string, int> &regs,
                       std::map<std::string, int64_t> &params, Inst &in);
  bool parseTma(const Statement &s, Kernel &k, const std::string &opcode,
                const std::string &rest,
                std::unordered_map<std::string, int> &regs,
                std::map<std::string, int64_t> &params, Inst &in);
  /// Appends `in`, parsed from `s`, to `k`.
  bool append(const Statement &s, Kernel &k, Inst &in);
  /// The address of a shared, local or global symbol, if `name` is one.
  std::optional<uint64_t> symbol(const std::string &name) const;

  /// Dynamic shared memory starts after the kernel's static variables.
  uint64_t dynamicSharedOffset() const {
    unsigned align = std::max(16u, sym.dynamicAlign);
    return (current->sharedBytes + align - 1) / align * align;
  }

  Module &m;
  std::string &error;
  ModuleSymbols sym;
  Kernel *current = nullptr;
};

bool parseInteger(const std::string &s, int64_t &v) {
  if (s.empty())
    return false;
  try {
    size_t used = 0;
    if (s.size() > 2 && (s[0] == '0' || s[1] == '0') &&
        (s.find("0x") != std::string::npos ||
         s.find("0X") != std::string::npos)) {
      bool neg = s[0] == '-';
      v = int64_t(std::stoull(s.substr(neg), &used, 16));
      used += neg;
      if (neg)
        v = -v;
    } else {
      v = std::stoll(s, &used, 10);
    }
    if (used < s.size() && (s[used] == 'U' || s[used] == 'u'))
      ++used;
    return used == s.size();
  } catch (...) {
    return false;
  }
}

/// `0fXXXXXXXX` (f32 bits), `0dXXXXXXXXXXXXXXXX` (f64 bits) or an integer.
bool parseImmediate(const std::string &s, int64_t &v) {
  if (s.size() == 10 && s[0] == '0' && (s[1] == 'f' || s[1] == 'F')) {
    v = int64_t(std::stoull(s.substr(2), nullptr, 16));
    return true;
  }
  if (s.size() == 18 && s[0] == '0' && (s[1] == 'd' || s[1] == 'D')) {
    v = int64_t(std::stoull(s.substr(2), nullptr, 16));
    return true;
  }
  return parseInteger(s, v);
}

bool Parser::parseVariable(const Statement &s, bool inKernel, Kernel *k) {
  // [.extern] .shared|.global|.const|.local [.align N] .TYPE NAME[N] [= {..}]
  std::string text = s.text, init;
  size_t eq = text.find('=');
  if (eq != std::string::npos) {
    init = trim(text.substr(eq + 1));
    text = trim(text.substr(0, eq));
  }
  std::stringstream ss(text);
  std::vector<std::string> words;
  for (std::string w; ss >> w;)
    words.push_back(w);
  bool external = false;
  unsigned align = 1;
  std::string space;
  Ty type = Ty::None;
  std::string name;
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string &w = words[i];
    if (w == ".extern")
      external = true;
    else if (w == ".visible" || w == ".weak")
      continue;
    else if (w == ".shared" || w == ".global" || w == ".const" ||
             w == ".local")
      space = w;
    else if (w == ".align" && i + 1 < words.size())
      align = unsigned(std::stoul(words[++i]));
    else if (w[0] == '.' && parseType(w.substr(1)) != Ty::None)
      type = parseType(w.substr(1));
    else
      name = w;
  }
  unsigned elemBytes = std::max(1u, bits(type) / 8);
  uint64_t count = 1;
  size_t lb = name.find('[');
  bool unsized = false;
  if (lb != std::string::npos) {
    std::string n = name.substr(lb + 1, name.find(']') - lb - 1);
    if (n.empty())
      unsized = true;
    else
      count = std::stoull(n);
    name = name.substr(0, lb);
  }
  uint64_t bytes = count * elemBytes;
  align = std::max(align, elemBytes);
  if (space == ".shared") {
    if (external || unsized) {
      sym.dynamicShared = name;
      sym.dynamicAlign = align;
      return true;
    }
    if (inKernel) {
      unsigned off = (k->sharedBytes + align - 1) / align * align;
      k->sharedBytes = unsigned(off + bytes);
      sym.shared[name] = off;
      return true;
    }
    unsigned off = (sym.sharedBytes + align - 1) / align * align;
    sym.sharedBytes = unsigned(off + bytes);
    sym.shared[name] = off;
    return true;
  }
  if (space == ".local") {
    unsigned off = (k->localBytes + align - 1) / align * align;
    k->localBytes = unsigned(off + bytes);
    sym.local[name] = off;
    return true;
  }
  if (space == ".global" || space == ".const") {
    if (external)
      return fail(s.line, "external global '" + name + "' is not supported");
    m.globals.emplace_back(new char[bytes + 16]());
    char *host = m.globals.back().get();
    if (!init.empty()) {
      std::string body = init;
      body.erase(std::remove(body.begin(), body.end(), '{'), body.end());
      body.erase(std::remove(body.begin(), body.end(), '}'), body.end());
      uint64_t i = 0;
      for (const std::string &e : splitOperands(body)) {
        int64_t v;
        if (!parseImmediate(e, v) || i >= count)
          return fail(s.line, "cannot read the initializer of '" + name + "'");
        if (type == Ty::F32 && e.find("0f") != 0 && e.find("0F") != 0)
          v = int64_t(bitsOf(float(v)));
        std::memcpy(host + i * elemBytes, &v, elemBytes);
        ++i;
      }
    }
    uint64_t base = reinterpret_cast<uint64_t>(host);
    sym.global[name] = base;
    m.globalRanges.push_back({base, bytes, host});
    return true;
  }
  return fail(s.line, "unsupported declaration '" + s.text + "'");
}

std::optional<uint64_t> Parser::symbol(const std::string &name) const {
  if (auto it = sym.shared.find(name); it != sym.shared.end())
    return it->second;
  if (!sym.dynamicShared.empty() && name == sym.dynamicShared)
    return dynamicSharedOffset();
  if (auto it = sym.local.find(name); it != sym.local.end())
    return it->second;
  if (auto it = sym.global.find(name); it != sym.global.end())
    return it->second;
  return std::nullopt;
}

bool Parser::parseOperand(const std::string &in, int line, Operand &o,
                          std::unordered_map<std::string, int> &regs,
                          std::map<std::string, int64_t> &params,
                          Space *space) {
  std::string s = trim(in);
  if (s.empty())
    return fail(line, "missing operand");
  if (s == "_") {
    o.kind = Operand::None;
    return true;
  }
  if (s[0] == '!') {
    o.negate = true;
    s = trim(s.substr(1));
  }
  if (s[0] == '{') {
    o.kind = Operand::Vec;
    for (const std::string &e : splitOperands(s.substr(1, s.size() - 2))) {
      o.elems.emplace_back();
      if (!parseOperand(e, line, o.elems.back(), regs, params, nullptr))
        return false;
    }
    return true;
  }
  if (s[0] == '[') {
    o.kind = Operand::Addr;
    std::string e = trim(s.substr(1, s.size() - 2));
    std::string base = e, off;
    size_t plus = e.find('+');
    if (plus != std::string::npos) {
      base = trim(e.substr(0, plus));
      off = trim(e.substr(plus + 1));
    }
    int64_t offset = 0;
    if (!off.empty() && !parseInteger(off, offset))
      return fail(line, "cannot read the address '" + s + "'");
    o.imm = offset;
    if (base[0] == '%') {
      auto it = regs.find(base);
      if (it == regs.end())
        return fail(line, "unknown register " + base);
      o.reg = it->second;
      return true;
    }
    int64_t value;
    if (parseInteger(base, value)) {
      o.imm += value;
      return true;
    }
    if (auto it = params.find(base); it != params.end()) {
      o.imm += it->second;
      if (space)
        *space = Space::Param;
      return true;
    }
    if (std::optional<uint64_t> address = symbol(base)) {
      o.imm += int64_t(*address);
      return true;
    }
    return fail(line, "unknown symbol '" + base + "'");
  }
  if (s[0] == '%') {
    static const std::map<std::string, Special> specials = {
        {"%tid.x", TidX},       {"%tid.y", TidY},       {"%tid.z", TidZ},
        {"%ntid.x", NtidX},     {"%ntid.y", NtidY},     {"%ntid.z", NtidZ},
        {"%ctaid.x", CtaidX},   {"%ctaid.y", CtaidY},   {"%ctaid.z", CtaidZ},
        {"%nctaid.x", NctaidX}, {"%nctaid.y", NctaidY}, {"%nctaid.z", NctaidZ},
        {"%laneid", LaneId},    {"%warpid", WarpId}};
    if (auto it = specials.find(s); it != specials.end()) {
      o.kind = Operand::Spec;
      o.imm = it->second;
      return true;
    }
    auto it = regs.find(s);
    if (it == regs.end())
      return fail(line, "unknown register " + s);
    o.kind = Operand::Reg;
    o.reg = it->second;
    return true;
  }
  if (auto it = regs.find(s); it != regs.end()) { // inline assembly's `p`
    o.kind = Operand::Reg;
    o.reg = it->second;
    return true;
  }
  int64_t v;
  if (parseImmediate(s, v)) {
    o.kind = Operand::Imm;
    o.imm = v;
    return true;
  }
  // A symbol's address, or a label.
  if (std::optional<uint64_t> address = symbol(s)) {
    o.kind = Operand::Imm;
    o.imm = int64_t(*address);
    return true;
  }
  o.kind = Operand::Label;
  o.label = s;
  return true;
}

/// The types that atom.OP and red.OP take (all but the 16-bit and packed
/// floating-point ones, and .b128).
bool atomType(AtomOp op, Ty t) {
  switch (op) {
  case AtomOp::Add:
    return t == Ty::U32 || t == Ty::S32 || t == Ty::U64 || t == Ty::F32 ||
           t == Ty::F64;
  case AtomOp::Exch: case AtomOp::Cas: case AtomOp::And: case AtomOp::Or:
  case AtomOp::Xor:
    return t == Ty::B32 || t == Ty::B64;
  case AtomOp::Min: case AtomOp::Max:
    return t == Ty::U32 || t == Ty::S32 || t == Ty::U64 || t == Ty::S64;
  case AtomOp::Inc: case AtomOp::Dec:
    return t == Ty::U32;
  }
  return false;
}

/// membar.{cta,gl,sys} and fence.{sc,acq_rel,acquire,release}.SCOPE: fences
/// of the generic proxy's memory accesses.
bool isMemoryFence(const std::string &opcode) {
  std::vector<std::string> parts = splitDots(opcode);
  static const std::set<std::string> sems = {"sc", "acq_rel", "acquire",
                                             "release"};
  static const std::set<std::string> scopes = {"cta", "cluster", "gpu",
                                               "sys"};
  if (parts.size() == 2 && parts[0] == "membar")
    return parts[1] == "cta" || parts[1] == "gl" || parts[1] == "sys";
  return parts.size() == 3 && parts[0] == "fence" && sems.count(parts[1]) &&
         scopes.count(parts[2]);
}

bool Parser::parseInst(const Statement &s, Kernel &k,
                       std::unordered_map<std::string, int> &regs,
                       std::map<std::string, int64_t> &params) {
  Inst in;
  in.line = s.line;
  std::string text = s.text;
  if (text[0] == '@') {
    size_t sp = text.find_first_of(" \t\r\n");
    std::string p = text.substr(1, sp - 1);
    if (p[0] == '!') {
      in.predNegated = true;
      p = p.substr(1);
    }
    auto it = regs.find(p);
    if (it == regs.end())
      return fail(s.line, "unknown predicate " + p);
    in.pred = it->second;
    text = trim(text.substr(sp));
  }
  size_t sp = text.find_first_of(" \t\r\n");
  std::string opcode = text.substr(0, sp);
  std::string rest = sp == std::string::npos ? "" : trim(text.substr(sp));
  std::vector<std::string> parts = splitDots(opcode);
  const std::string &base = parts[0];
  if (isMemoryFence(opcode)) {
    if (!rest.empty())
      return fail(s.line, "cannot read '" + s.text + "'");
    in.op = Op::Fence;
    return append(s, k, in);
  }
  if (base == "wgmma" || base == "fence")
    return parseAsyncProxy(s, k, opcode, rest, regs, params, in);
  if (base == "mbarrier" || base == "setmaxnreg" || base == "prefetch" ||
      opcode.rfind("cp.async.bulk.", 0) == 0)
    return parseTma(s, k, opcode, rest, regs, params, in);
  static const std::map<std::string, Op> ops = {
      {"mov", Op::Mov},   {"add", Op::Add},     {"sub", Op::Sub},
      {"mul", Op::Mul},   {"mad", Op::Mad},     {"fma", Op::Fma},
      {"div", Op::Div},   {"rem", Op::Rem},     {"min", Op::Min},
      {"max", Op::Max},   {"neg", Op::Neg},     {"abs", Op::Abs},
      {"sqrt", Op::Sqrt}, {"rcp", Op::Rcp},     {"ex2", Op::Ex2},
      {"lg2", Op::Lg2},   {"shl", Op::Shl},     {"shr", Op::Shr},
      {"bfe", Op::Bfe},
      {"and", Op::And},   {"or", Op::Or},       {"xor", Op::Xor},
      {"not", Op::Not},   {"setp", Op::Setp},   {"selp", Op::Selp},
      {"cvt", Op::Cvt},   {"cvta", Op::Cvta},   {"ld", Op::Ld},
      {"st", Op::St},     {"cp", Op::CpAsync},  {"bar", Op::Bar},
      {"barrier", Op::Bar}, {"ldmatrix", Op::Ldmatrix}, {"mma", Op::Mma},
      {"shfl", Op::Shfl}, {"atom", Op::Atom}, {"red", Op::Red},
      {"bra", Op::Bra},   {"ret", Op::Ret},     {"exit", Op::Ret}};
  auto opIt = ops.find(base);
  if (opIt == ops.end())
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  in.op = opIt->second;
  std::vector<Ty> types;
  static const std::map<std::string, Cmp> cmps = {
      {"eq", Cmp::Eq},   {"ne", Cmp::Ne},   {"lt", Cmp::Lt},
      {"le", Cmp::Le},   {"gt", Cmp::Gt},   {"ge", Cmp::Ge},
      {"lo", Cmp::Lo},   {"ls", Cmp::Ls},   {"hi", Cmp::Hi},
      {"hs", Cmp::Hs},   {"equ", Cmp::Equ}, {"neu", Cmp::Neu},
      {"ltu", Cmp::Ltu}, {"leu", Cmp::Leu}, {"gtu", Cmp::Gtu},
      {"geu", Cmp::Geu}, {"num", Cmp::Num}, {"nan", Cmp::Nan}};
  static const std::map<std::string, ShflMode> shflModes = {
      {"up", ShflMode::Up}, {"down", ShflMode::Down},
      {"bfly", ShflMode::Bfly}, {"idx", ShflMode::Idx}};
  static const std::map<std::string, Rnd> rnds = {
      {"rn", Rnd::Rn},   {"rz", Rnd::Rz},   {"rm", Rnd::Rm},
      {"rp", Rnd::Rp},   {"rni", Rnd::Rni}, {"rzi", Rnd::Rzi},
      {"rmi", Rnd::Rmi}, {"rpi", Rnd::Rpi}};
  static const std::map<std::string, AtomOp> atomOps = {
      {"add", AtomOp::Add}, {"exch", AtomOp::Exch}, {"cas", AtomOp::Cas},
      {"and", AtomOp::And}, {"or", AtomOp::Or},     {"xor", AtomOp::Xor},
      {"min", AtomOp::Min}, {"max", AtomOp::Max},   {"inc", AtomOp::Inc},
      {"dec", AtomOp::Dec}};
  static const std::map<std::string, Reduce> reductions = {
      {"popc", Reduce::Popc}, {"and", Reduce::And}, {"or", Reduce::Or}};
  bool atomic = in.op == Op::Atom || in.op == Op::Red;
  bool wide = false, hi = false, commit = false, wait = false;
  bool atomOp = false, barRed = false;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string &p = parts[i];
    if (Ty t = parseType(p); t != Ty::None) {
      types.push_back(t);
    } else if (in.op == Op::Setp && cmps.count(p)) {
      in.cmp = cmps.at(p);
    } else if (in.op == Op::Cvt && (p == "f16x2" || p == "bf16x2")) {
      in.pack = true;
      types.push_back(p == "f16x2" ? Ty::F16 : Ty::BF16);
    } else if (in.op == Op::Shfl && shflModes.count(p)) {
      in.shfl = shflModes.at(p);
    } else if (atomic && atomOps.count(p) && !atomOp) {
      in.atom = atomOps.at(p);
      atomOp = true;
    } else if (atomic && (p == "acquire" || p == "release" ||
                          p == "acq_rel" || p == "gpu" || p == "sys" ||
                          p == "cluster")) {
      // The interpreter's atomics are sequentially consistent, whatever
      // the semantics and scope asked for.
      continue;
    } else if (in.op == Op::Bar && p == "red") {
      barRed = true;
    } else if (in.op == Op::Bar && reductions.count(p) &&
               in.reduce == Reduce::None) {
      in.reduce = reductions.at(p);
    } else if (rnds.count(p)) {
      in.rnd = rnds.at(p);
    } else if (p == "global" || p == "shared" || p == "shared::cta" ||
               p == "shared::cluster" || p == "local" || p == "param" ||
               p == "const") {
      // A one-CTA cluster: a shared::cluster address of the CTA's own
      // shared memory is its shared::cta address.
      Space sp = p == "global" || p == "const" ? Space::Global
                 : p == "local"                ? Space::Local
                 : p == "param"                ? Space::Param
                                               : Space::Shared;
      if (in.op == Op::Cvta)
        in.cvtaSpace = sp;
      else if (in.op != Op::CpAsync)
        in.space = sp;
    } else if (p == "to") {
      in.cvtaTo = true;
    } else if (p == "v2" || p == "v4") {
      in.vec = uint8_t(p[1] - '0');
    } else if (p == "x1" || p == "x2" || p == "x4") {
      in.count = uint8_t(p[1] - '0');
    } else if (p == "trans") {
      in.trans = true;
    } else if (p == "ftz") {
      in.ftz = true;
    } else if (p == "sat") {
      in.sat = true;
    } else if (p == "NaN") {
      in.nan = true;
    } else if (p == "wide") {
      wide = true;
    } else if (p == "hi") {
      hi = true;
    } else if (p == "commit_group") {
      commit = true;
    } else if (p == "wait_group" || p == "wait_all") {
      wait = true;
    } else if (p == "lo" || p == "uni" || p == "nc" || p == "approx" ||
               p == "full" || p == "sync" || p == "aligned" || p == "async" ||
               p == "ca" || p == "cg" || p == "m8n8" || p == "m16n8k16" ||
               p == "row" || p == "col" || p == "L1" || p == "L2" ||
               p == "weak" || p == "relaxed" || p == "cta") {
      continue;
    } else {
      return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
    }
  }
  if (!types.empty())
    in.type = types.front();
  if (in.op == Op::Cvt) {
    if (types.size() != 2)
      return fail(s.line, "cannot read '" + opcode + "'");
    in.srcType = types[1];
  }
  if (in.op == Op::Mul && wide)
    in.op = Op::MulWide;
  if (in.op == Op::Mul && hi)
    in.op = Op::MulHi;
  if (in.op == Op::Mad && (wide || hi))
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  if (in.op == Op::CpAsync && commit)
    in.op = Op::CpCommit;
  if (in.op == Op::CpAsync && wait)
    in.op = opcode.find("wait_all") != std::string::npos ? Op::CpWaitAll
                                                         : Op::CpWait;
  if (in.op == Op::Mma) {
    // mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32
    if (opcode.find("m16n8k16.row.col.f32") == std::string::npos ||
        types.size() != 4 || types[1] != types[2] ||
        (types[1] != Ty::BF16 && types[1] != Ty::F16) ||
        types[3] != Ty::F32)
      return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
    in.srcType = types[1];
  }
  if (in.op == Op::Ldmatrix) {
    if (opcode.find("m8n8") == std::string::npos || in.type != Ty::B16)
      return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  }
  if (atomic && (!atomOp || types.size() != 1 || !atomType(in.atom, in.type) ||
                 (in.op == Op::Red && (in.atom == AtomOp::Exch ||
                                       in.atom == AtomOp::Cas))))
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  // bar.red.{and,or}.pred and bar.red.popc.u32.
  if (in.op == Op::Bar &&
      (barRed != (in.reduce != Reduce::None) ||
       (barRed && (types.size() != 1 ||
                   types[0] != (in.reduce == Reduce::Popc ? Ty::U32
                                                          : Ty::Pred)))))
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  if (in.op == Op::Setp && (types.size() != 1 ||
                            rest.find('|') != std::string::npos))
    return fail(s.line, "unsupported PTX instruction '" + opcode + " " +
                            rest + "'");
  std::vector<std::string> operands = splitOperands(rest);
  // shfl's `d|p`: the predicate goes last.
  if (in.op == Op::Shfl && !operands.empty()) {
    size_t bar = operands[0].find('|');
    if (bar != std::string::npos) {
      operands.push_back(trim(operands[0].substr(bar + 1)));
      operands[0] = trim(operands[0].substr(0, bar));
    }
    if (operands.size() < 5 || types.size() != 1 || types[0] != Ty::B32)
      return fail(s.line, "unsupported PTX instruction '" + opcode + " " +
                              rest + "'");
  }
  for (const std::string &o : operands) {
    in.ops.emplace_back();
    Space sp = in.space;
    if (!parseOperand(o, s.line, in.ops.back(), regs, params, &sp))
      return false;
    in.space = sp;
  }
  auto isValue = [](const Operand &o) {
    return o.kind == Operand::Reg || o.kind == Operand::Imm;
  };
  if (in.op == Op::Bar) {
    // bar.sync a{, b}: barrier a, with b threads (default: the block);
    // bar.red d, a{, b}, {!}c: the same, reducing the threads' c into d.
    bool red = in.reduce != Reduce::None;
    size_t least = red ? 3 : 1;
    if (in.ops.size() < least || in.ops.size() > least + 1 ||
        (red && in.ops[0].kind != Operand::Reg) ||
        !std::all_of(in.ops.begin() + red, in.ops.end(), isValue))
      return fail(s.line, "cannot read '" + s.text + "'");
  }
  if (atomic) {
    // atom d, [a], b; atom.cas d, [a], b, c; red [a], b.
    size_t dst = in.op == Op::Atom ? 1 : 0;
    size_t count = dst + 2 + (in.atom == AtomOp::Cas);
    if (in.ops.size() != count || (dst && in.ops[0].kind != Operand::Reg) ||
        in.ops[dst].kind != Operand::Addr ||
        !std::all_of(in.ops.begin() + long(dst) + 1, in.ops.end(), isValue))
      return fail(s.line, "cannot read '" + s.text + "'");
    if (in.space != Space::Global && in.space != Space::Shared &&
        in.space != Space::Generic)
      return fail(s.line, "'" + opcode + "' outside the global and shared "
                          "spaces");
    if (in.space != Space::Global)
      k.sharedAtomics = true;
  }
  return append(s, k, in);
}

bool Parser::append(const Statement &s, Kernel &k, Inst &in) {
  k.code.push_back(std::move(in));
  m.source.resize(std::max<size_t>(m.source.size(), size_t(s.line) + 1));
  m.source[size_t(s.line)] = s.text;
  return true;
}

/// fence.proxy.tensormap::generic.{acquire,release}.{cta,cluster,gpu,sys}
bool isTensormapFence(const std::string &opcode) {
  std::vector<std::string> parts = splitDots(opcode);
  static const std::set<std::string> scopes = {"cta", "cluster", "gpu",
                                               "sys"};
  return parts.size() == 5 && parts[0] == "fence" && parts[1] == "proxy" &&
         parts[2] == "tensormap::generic" &&
         (parts[3] == "acquire" || parts[3] == "release") &&
         scopes.count(parts[4]);
}

/// fence.proxy.async.shared::cta and the wgmma family (m64nNk16 with f32
/// accumulators, bf16/f16 operands from shared-memory descriptors).
bool Parser::parseAsyncProxy(const Statement &s, Kernel &k,
                             const std::string &opcode,
                             const std::string &rest,
                             std::unordered_map<std::string, int> &regs,
                             std::map<std::string, int64_t> &params,
                             Inst &in) {
  auto unsupported = [&] {
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  };
  if (opcode == "fence.proxy.async.shared::cta" ||
      opcode == "fence.proxy.async")
    in.op = Op::FenceProxyAsync;
  else if (opcode == "fence.mbarrier_init.release.cluster" ||
           isTensormapFence(opcode))
    // The interpreter's tensor maps and mbarriers have no proxies to order.
    in.op = Op::Nop;
  else if (opcode == "wgmma.fence.sync.aligned")
    in.op = Op::WgFence;
  else if (opcode == "wgmma.commit_group.sync.aligned")
    in.op = Op::WgCommit;
  else if (opcode == "wgmma.wait_group.sync.aligned")
    in.op = Op::WgWait;
  else if (opcode.rfind("wgmma.mma_async.sync.aligned.m64n", 0) == 0) {
    in.op = Op::Wgmma;
    std::vector<std::string> parts = splitDots(opcode);
    // wgmma mma_async sync aligned m64nNk16 f32 T T
    if (parts.size() != 8 || parts[5] != "f32" || parts[6] != parts[7] ||
        (parts[6] != "bf16" && parts[6] != "f16"))
      return unsupported();
    const std::string &shape = parts[4];
    size_t kPos = shape.find('k');
    if (kPos == std::string::npos || shape.substr(kPos) != "k16")
      return unsupported();
    int n = std::atoi(shape.substr(4, kPos - 4).c_str());
    if (n < 8 || n > 256 || n % 8)
      return unsupported();
    in.wgN = uint16_t(n);
    in.srcType = parts[6] == "bf16" ? Ty::BF16 : Ty::F16;
  } else {
    return unsupported();
  }
  for (const std::string &o : splitOperands(rest)) {
    in.ops.emplace_back();
    if (!parseOperand(o, s.line, in.ops.back(), regs, params, nullptr))
      return false;
  }
  if (in.op == Op::Wgmma) {
    // {d...}, a-desc, b-desc, scale-d, imm-scale-a, imm-scale-b,
    // imm-trans-a, imm-trans-b
    const std::vector<Operand> &o = in.ops;
    if (o.size() != 8 || o[0].kind != Operand::Vec ||
        o[0].elems.size() != size_t(in.wgN / 2) ||
        o[1].kind != Operand::Reg || o[2].kind != Operand::Reg)
      return fail(s.line, "cannot read the operands of '" + opcode + "'");
    for (const Operand &e : o[0].elems)
      if (e.kind != Operand::Reg)
        return fail(s.line, "cannot read the operands of '" + opcode + "'");
    for (size_t i = 4; i < 8; ++i)
      if (o[i].kind != Operand::Imm)
        return fail(s.line, "'" + opcode + "' with a register source for A "
                            "or non-immediate scales is not supported");
    k.wgmma = true;
  }
  if (in.op == Op::WgWait &&
      (in.ops.size() != 1 || in.ops[0].kind != Operand::Imm))
    return fail(s.line, "cannot read '" + opcode + " " + rest + "'");
  return append(s, k, in);
}

/// The mbarrier family, cp.async.bulk.tensor loads (global to shared, tile
/// mode, completing on an mbarrier), and the hints around them that the
/// interpreter need not act on: setmaxnreg, prefetch.tensormap.
bool Parser::parseTma(const Statement &s, Kernel &k, const std::string &opcode,
                      const std::string &rest,
                      std::unordered_map<std::string, int> &regs,
                      std::map<std::string, int64_t> &params, Inst &in) {
  auto unsupported = [&] {
    return fail(s.line, "unsupported PTX instruction '" + opcode + "'");
  };
  auto cannotRead = [&] {
    return fail(s.line, "cannot read '" + s.text + "'");
  };
  std::vector<std::string> parts = splitDots(opcode);
  std::vector<std::string> operands = splitOperands(rest);
  auto parseAll = [&]() {
    for (const std::string &o : operands) {
      in.ops.emplace_back();
      Space space = Space::Generic;
      if (!parseOperand(o, s.line, in.ops.back(), regs, params, &space))
        return false;
      if (space == Space::Param)
        return fail(s.line, "'" + o + "' is in the parameter space, which "
                            "the interpreter does not take here (pass a "
                            "tensor map by its global address)");
    }
    return true;
  };
  auto isValue = [](const Operand &o) {
    return o.kind == Operand::Reg || o.kind == Operand::Imm;
  };

  if (parts[0] == "setmaxnreg") {
    // setmaxnreg.{inc,dec}.sync.aligned.u32 N: the interpreter's threads
    // have all the registers they declare.
    int64_t n;
    if (parts.size() != 5 || (parts[1] != "inc" && parts[1] != "dec") ||
        parts[2] != "sync" || parts[3] != "aligned" || parts[4] != "u32")
      return unsupported();
    if (!parseInteger(rest, n) || n < 24 || n > 256 || n % 8)
      return fail(s.line, "setmaxnreg takes a multiple of 8 in [24, 256], "
                          "not '" + rest + "'");
    in.op = Op::Nop;
    return append(s, k, in);
  }
  if (parts[0] == "prefetch") {
    if (opcode != "prefetch.tensormap" || operands.size() != 1)
      return unsupported();
    in.op = Op::Nop;
    return append(s, k, in);
  }

  if (parts[0] == "cp") {
    // cp.async.bulk.tensor.Nd.shared::{cluster,cta}.global{.tile}
    //   .mbarrier::complete_tx::bytes [dst], [map, {c0, ...}], [mbar]
    size_t i = 4;
    if (parts.size() < 8 || parts[3] != "tensor" || parts[i].size() != 2 ||
        parts[i][1] != 'd' || parts[i][0] < '1' || parts[i][0] > '5')
      return unsupported();
    in.count = uint8_t(parts[i++][0] - '0');
    if ((parts[i] != "shared::cluster" && parts[i] != "shared::cta") ||
        parts[++i] != "global")
      return unsupported(); // stores (global destinations) among them
    if (parts[++i] == "tile")
      ++i;
    if (i + 1 != parts.size() || parts[i] != "mbarrier::complete_tx::bytes")
      return unsupported(); // multicast, L2 cache hints, im2col
    in.op = Op::BulkTensor;
    in.space = Space::Shared;
    if (operands.size() != 3 || operands[1].size() < 2 ||
        operands[1].front() != '[' || operands[1].back() != ']')
      return cannotRead();
    std::vector<std::string> tensor =
        splitOperands(operands[1].substr(1, operands[1].size() - 2));
    if (tensor.size() != 2)
      return cannotRead();
    operands = {operands[0], "[" + tensor[0] + "]", tensor[1], operands[2]};
    if (!parseAll())
      return false;
    const std::vector<Operand> &o = in.ops;
    if (o[0].kind != Operand::Addr || o[1].kind != Operand::Addr ||
        o[3].kind != Operand::Addr || o[2].kind != Operand::Vec ||
        o[2].elems.size() != in.count ||
        !std::all_of(o[2].elems.begin(), o[2].elems.end(), isValue))
      return cannotRead();
    k.bulk = true;
    return append(s, k, in);
  }

  // mbarrier.VERB{.sem}{.scope}{.space}.b64: the shared::cta,
  // shared::cluster (the CTA's own, in a one-CTA cluster) and plain shared
  // spaces take shared addresses; without a space, generic ones.
  if (parts.size() < 3 || parts.back() != "b64")
    return unsupported();
  size_t i = 2;
  const std::string &verb = parts[1];
  std::set<std::string> sems;
  if (verb == "init" || verb == "inval") {
    in.op = verb == "init" ? Op::MbarInit : Op::MbarInval;
  } else if (verb == "arrive" && parts[2] == "expect_tx") {
    in.op = Op::MbarArriveExpectTx;
    sems = {"release", "relaxed"};
    ++i;
  } else if (verb == "arrive" || verb == "expect_tx" ||
             verb == "complete_tx") {
    in.op = verb == "arrive"      ? Op::MbarArrive
            : verb == "expect_tx" ? Op::MbarExpectTx
                                  : Op::MbarCompleteTx;
    sems = {"release", "relaxed"};
  } else if (verb == "try_wait" && parts[2] == "parity") {
    in.op = Op::MbarTryWait;
    sems = {"acquire", "relaxed"};
    ++i;
  } else {
    return unsupported(); // test_wait, try_wait on a state, pending_count
  }
  in.space = Space::Generic;
  if (i < parts.size() - 1 && sems.count(parts[i]))
    ++i;
  if (i < parts.size() - 1 && !sems.empty() &&
      (parts[i] == "cta" || parts[i] == "cluster"))
    ++i;
  if (i < parts.size() - 1 &&
      (parts[i] == "shared" || parts[i] == "shared::cta" ||
       parts[i] == "shared::cluster")) {
    in.space = Space::Shared;
    ++i;
  }
  if (i != parts.size() - 1)
    return unsupported();
  if (!parseAll())
    return false;
  // The operands: {state or predicate,} [address], values (at least
  // `least` operands, at most `most`).
  const std::vector<Operand> &o = in.ops;
  size_t address = 0, least = 2, most = 2;
  switch (in.op) {
  case Op::MbarInval:
    least = most = 1;
    break;
  case Op::MbarArrive: // state, [a]{, count}
    address = 1, least = 2, most = 3;
    break;
  case Op::MbarArriveExpectTx: // state, [a], tx-count
    address = 1, least = most = 3;
    break;
  case Op::MbarTryWait: // waitComplete, [a], parity{, suspend-time hint}
    address = 1, least = 3, most = 4;
    break;
  default: // init [a], count; expect_tx and complete_tx [a], tx-count
    break;
  }
  if (o.size() < least || o.size() > most ||
      o[address].kind != Operand::Addr ||
      !std::all_of(o.begin() + long(address) + 1, o.end(), isValue))
    return cannotRead();
  if (address == 1 && o[0].kind != Operand::Reg && o[0].kind != Operand::None)
    return cannotRead();
  if (in.op == Op::MbarTryWait && o[0].kind != Operand::Reg)
    return cannotRead();
  return append(s, k, in);
}

bool Parser::parseKernel(const std::vector<Statement> &st, size_t &i) {
  const Statement &header = st[i];
  if (header.text.find(".func") != std::string::npos &&
      header.text.find(".entry") == std::string::npos)
    return fail(header.line, "device functions (.func) are not supported");
  Kernel k;
  current = &k;
  std::string h = header.text;
  size_t open = h.find('(');
  std::string before = h.substr(0, open);
  {
    std::stringstream ss(before);
    std::vector<std::string> words;
    for (std::string w; ss >> w;)
      words.push_back(w);
    k.name = words.back();
  }
  std::map<std::string, int64_t> params;
  if (open != std::string::npos) {
    size_t close = h.find(')', open);
    for (const std::string &p :
         splitOperands(h.substr(open + 1, close - open - 1))) {
      std::stringstream ss(p);
      std::vector<std::string> words;
      for (std::string w; ss >> w;)
        words.push_back(w);
      unsigned align = 1, size = 0;
      std::string name;
      Ty type = Ty::None;
      for (size_t w = 0; w < words.size(); ++w) {
        if (words[w] == ".align" && w + 1 < words.size())
          align = unsigned(std::stoul(words[++w]));
        else if (words[w][0] == '.' && parseType(words[w].substr(1)) != Ty::None)
          type = parseType(words[w].substr(1));
        else if (words[w][0] != '.')
          name = words[w];
      }
      size = std::max(1u, bits(type) / 8);
      if (size_t lb = name.find('['); lb != std::string::npos) {
        size *= unsigned(std::stoul(name.substr(lb + 1)));
        name = name.substr(0, lb);
      }
      align = std::max(align, std::min(size, 8u));
      unsigned off = (k.paramBytes + align - 1) / align * align;
      k.params.push_back({off, size});
      params[name] = off;
      k.paramBytes = off + size;
    }
  }
  ++i;
  if (i >= st.size() || st[i].text != "{")
    return fail(header.line, "expected the body of '" + k.name + "'");
  ++i;
  std::unordered_map<std::string, int> regs;
  // PTX scoping: the labels and registers of a `{ }` block are visible in
  // it only, and hide those of the blocks around it (inline assembly
  // repeats its names in every block it is pasted into).
  struct Scope {
    int parent;
    std::map<std::string, size_t> labels;
  };
  std::vector<Scope> scopes = {{-1, {}}};
  int scope = 0;
  std::vector<int> scopeOf; // per instruction
  std::vector<std::unordered_map<std::string, int>> outerRegs;
  k.sharedBytes = sym.sharedBytes;
  int depth = 1;
  auto moduleShared = sym.shared; // kernel-local names shadow them
  for (; i < st.size(); ++i) {
    const Statement &s = st[i];
    const std::string &t = s.text;
    if (t == "{") {
      ++depth;
      scopes.push_back({scope, {}});
      scope = int(scopes.size() - 1);
      outerRegs.push_back(regs);
      continue;
    }
    if (t == "}") {
      if (--depth == 0)
        break;
      scope = scopes[size_t(scope)].parent;
      regs = std::move(outerRegs.back());
      outerRegs.pop_back();
      continue;
    }
    if (t.back() == ':') {
      std::string name = t.substr(0, t.size() - 1);
      if (!scopes[size_t(scope)].labels.emplace(name, k.code.size()).second)
        return fail(s.line, "label '" + name + "' defined twice in one block");
      continue;
    }
    if (t.rfind(".reg", 0) == 0) {
      // .reg .TYPE %name<N>;  or  .reg .TYPE %a, %b;  (inline assembly
      // declares names without %)
      size_t type = t.find('.', 4);
      size_t first = type == std::string::npos
                         ? std::string::npos
                         : t.find_first_of(" \t", type);
      if (first == std::string::npos)
        return fail(s.line, "cannot read '" + t + "'");
      std::string names = trim(t.substr(first));
      for (const std::string &n : splitOperands(names)) {
        size_t lt = n.find('<');
        if (lt == std::string::npos) {
          regs[n] = int(k.registers++);
          continue;
        }
        std::string prefix = n.substr(0, lt);
        unsigned count = unsigned(std::stoul(n.substr(lt + 1)));
        for (unsigned r = 0; r < count; ++r)
          regs[prefix + std::to_string(r)] = int(k.registers++);
      }
      continue;
    }
    if (t.rfind(".shared", 0) == 0 || t.rfind(".extern", 0) == 0) {
      if (!parseVariable(s, true, &k))
        return false;
      continue;
    }
    if (t.rfind(".local", 0) == 0) {
      if (!parseVariable(s, true, &k))
        return false;
      continue;
    }
    if (t.rfind(".pragma", 0) == 0 || t.rfind(".loc", 0) == 0)
      continue;
    if (t[0] == '.')
      return fail(s.line, "unsupported directive '" + t + "'");
    if (!parseInst(s, k, regs, params))
      return false;
    scopeOf.resize(k.code.size(), scope);
  }
  if (depth != 0)
    return fail(header.line, "unterminated body of '" + k.name + "'");
  // A label is looked up in the branch's block, then in the blocks around it.
  for (size_t c = 0; c < k.code.size(); ++c)
    for (Operand &o : k.code[c].ops) {
      if (o.kind != Operand::Label)
        continue;
      std::optional<size_t> target;
      for (int sc = scopeOf[c]; sc >= 0 && !target;
           sc = scopes[size_t(sc)].parent)
        if (auto it = scopes[size_t(sc)].labels.find(o.label);
            it != scopes[size_t(sc)].labels.end())
          target = it->second;
      if (!target)
        return fail(k.code[c].line,
                    "unknown label or symbol '" + o.label + "'");
      o.imm = int64_t(*target);
    }
  k.dynamicSharedOffset = unsigned(dynamicSharedOffset());
  // A body that runs off its end returns.
  Inst ret;
  ret.op = Op::Ret;
  ret.line = header.line;
  k.code.push_back(ret);
  sym.shared = std::move(moduleShared);
  sym.local.clear();
  m.kernels.push_back(std::move(k));
  return true;
}

bool Parser::run(const std::string &text) {
  if (text.find(".version") == std::string::npos)
    return fail(1, "not PTX text (no .version directive)");
  std::vector<Statement> st = split(text);
  for (size_t i = 0; i < st.size(); ++i) {
    const std::string &t = st[i].text;
    if (t.rfind(".version", 0) == 0 || t.rfind(".target", 0) == 0 ||
        t.rfind(".address_size", 0) == 0)
      continue;
    if (t.find(".entry") != std::string::npos ||
        t.find(".func") != std::string::npos) {
      if (t.rfind(".extern", 0) == 0 && t.find(".func") != std::string::npos)
        continue; // a declaration; calls are rejected
      if (!parseKernel(st, i))
        return false;
      continue;
    }
    if (t.find(".shared") != std::string::npos ||
        t.find(".global") != std::string::npos ||
        t.find(".const") != std::string::npos) {
      if (!parseVariable(st[i], false, nullptr))
        return false;
      continue;
    }
    return fail(st[i].line, "unsupported statement '" + t + "'");
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Tensor maps
//===----------------------------------------------------------------------===//

constexpr uint64_t kTensorMapMagic = 0x50414d5453534554; // "TESSTMAP"

/// Bytes per element of a CUtensorMapDataType; 0 for the packed types
/// (16U4, 16U6) and unknown values.
unsigned tensorElementBytes(unsigned dataType) {
  static const unsigned sizes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  return dataType < std::size(sizes) ? sizes[dataType] : 0;
}

/// The swizzle span in bytes of a CUtensorMapSwizzle the fake supports
/// (NONE, 32B, 64B, 128B), 0 for none.
constexpr uint32_t kSwizzleSpan[] = {0, 32, 64, 128};

/// A map that encodeTiledTensorMap wrote (see PtxSim.h), decoded.
struct TensorMap {
  unsigned elemBytes = 0, rank = 0;
  uint32_t swizzle = 0; // span in bytes, 0: none
  uint64_t address = 0;
  uint64_t dims[5] = {};
  /// Bytes between consecutive indices of each dimension: the element
  /// size for dimension 0.
  uint64_t strides[5] = {};
  uint32_t box[5] = {};

  /// False if `w` is not such a map.
  bool decode(const uint64_t w[16]) {
    if (w[0] != kTensorMapMagic)
      return false;
    elemBytes = unsigned(w[1] >> 8) & 0xff;
    rank = unsigned(w[1] >> 16) & 0xff;
    unsigned mode = unsigned(w[1] >> 24) & 0xff;
    if (rank < 1 || rank > 5 || mode >= std::size(kSwizzleSpan) ||
        (elemBytes != 1 && elemBytes != 2 && elemBytes != 4 && elemBytes != 8))
      return false;
    swizzle = kSwizzleSpan[mode];
    address = w[2];
    strides[0] = elemBytes;
    for (unsigned d = 0; d < rank; ++d) {
      dims[d] = w[3 + d];
      if (d > 0)
        strides[d] = w[8 + d - 1];
      box[d] = uint32_t(w[12 + d / 4] >> (16 * (d % 4))) & 0xffff;
      if (box[d] < 1 || box[d] > 256 || dims[d] < 1)
        return false;
    }
    return true;
  }
};

//===----------------------------------------------------------------------===//
// Execution
//===----------------------------------------------------------------------===//

/// Ready to run; at a bar.sync; at a warp-wide instruction; asleep in an
/// mbarrier.try_wait until the mbarrier completes a phase; exited.
enum class State : uint8_t { Ready, Barrier, Warp, Sleep, Exited };

/// A cp.async copy not yet visible in shared memory: its source is read
/// when it is issued, and it lands when a wait_group covers its group.
struct PendingCopy {
  char *dst;
  char data[16];
  unsigned size;
  uint32_t group; // 0 until committed
};

/// A register that an in-flight wgmma will write: the value it will hold
/// once a wgmma.wait_group retires the operation's group.
struct PendingResult {
  int32_t reg;
  uint32_t value;
  uint32_t group; // 0 until committed
};

struct Thread {
  uint32_t pc = 0;
  std::vector<PendingCopy> pending;
  uint32_t groups = 0; // committed so far
  std::vector<PendingResult> wgPending; // in issue order
  uint32_t wgGroups = 0;
  /// Shared bytes this thread wrote since its last fence.proxy.async
  /// (offset, size), when the kernel has wgmma.
  mutable std::vector<std::pair<uint32_t, uint32_t>> unfenced;
  State state = State::Ready;
  /// At a bar.sync: its barrier and thread count (0: the whole block); at
  /// a bar.red besides, the reduction and this thread's predicate.
  uint32_t barrier = 0, barrierCount = 0;
  Reduce reduce = Reduce::None;
  bool vote = false;
  /// Asleep: the shared offset of the mbarrier it waits on.
  uint32_t sleepsOn = 0;
  unsigned tid[3] = {0, 0, 0};
  unsigned linear = 0;
  uint64_t *regs = nullptr;
  char *local = nullptr;
};

struct Stop {};

/// The message of an access of `bytes` at `addr` that runs past the end of
/// `allocation`, which holds `addr`.
std::string pastAllocation(uint64_t addr, uint64_t bytes,
                           const Allocation &allocation) {
  std::ostringstream os;
  os << "illegal address 0x" << std::hex << addr << std::dec << ": " << bytes
     << " bytes at offset " << addr - allocation.base
     << " of an allocation of " << allocation.size << " bytes";
  return os.str();
}

/// The check of `launch`'s checkWrites: which block of the launch stored to
/// each byte of global memory, for all its workers. Per 16-byte granule of
/// the device address space one word, in a table per 4 KiB page (of 2 KiB)
/// made when the page is first stored to: the block that stored there
/// (bits 16-63, plus 1) and the bytes it stored (bits 0-15), 0 for none.
/// A granule whose bytes blocks share without overlapping (the edges of
/// their outputs) keeps an owner per byte in `split` instead, and its word
/// says kSplit. Plain stores only; atomics are meant to be shared.
class WriteCheck {
public:
  /// Where a block caches the tables it used last, by page.
  struct Cache {
    struct Entry {
      uint64_t page = ~uint64_t(0);
      uint64_t *table = nullptr;
    };
    std::array<Entry, 256> entries;
  };

  /// Records that block `owner` (a linear id) stores the `bytes` bytes at
  /// `addr`. If another block stored to one of them before, returns false
  /// with the first such byte in `at` and that block in `other`.
  bool store(uint64_t addr, unsigned bytes, uint64_t owner, Cache &cache,
             uint64_t &at, uint64_t &other) {
    uint64_t end = addr + bytes;
    for (uint64_t g = addr / kGranule; g * kGranule < end; ++g) {
      uint64_t lo = std::max(addr, g * kGranule) - g * kGranule;
      uint64_t hi = std::min(end, (g + 1) * kGranule) - g * kGranule;
      auto mask =
          uint16_t(((uint32_t(1) << hi) - 1) & ~((uint32_t(1) << lo) - 1));
      if (!granule(g, mask, owner, cache, at, other))
        return false;
    }
    return true;
  }

private:
  static constexpr uint64_t kGranule = 16, kPage = 4096;
  static constexpr uint64_t kPerPage = kPage / kGranule;
  static constexpr uint64_t kSplit = ~uint64_t(0);
  static constexpr size_t kShards = 64;

  /// The word of granule `g`.
  uint64_t *word(uint64_t g, Cache &cache) {
    uint64_t page = g / kPerPage;
    Cache::Entry &e =
        cache.entries[(page * 0x9E3779B97F4A7C15ull) >> 56];
    if (e.page != page) {
      Shard &s = shards[page % kShards];
      std::lock_guard<std::mutex> lock(s.mutex);
      std::unique_ptr<uint64_t[]> &table = s.pages[page];
      if (!table)
        table = std::make_unique<uint64_t[]>(kPerPage); // zeros
      e = {page, table.get()};
    }
    return e.table + g % kPerPage;
  }

  bool granule(uint64_t g, uint16_t mask, uint64_t owner, Cache &cache,
               uint64_t &at, uint64_t &other) {
    uint64_t *w = word(g, cache);
    uint64_t mine = (owner + 1) << 16;
    uint64_t e = __atomic_load_n(w, __ATOMIC_RELAXED);
    // A block runs on one worker, so only its own stores extend its bytes
    // of a granule; another block's may make the granule split, once.
    while (e != kSplit) {
      if (e == 0 || (e >> 16) == owner + 1) {
        uint64_t want = mine | (e & 0xffff) | mask;
        if (want == e || __atomic_compare_exchange_n(w, &e, want, true,
                                                     __ATOMIC_RELAXED,
                                                     __ATOMIC_RELAXED))
          return true;
        continue;
      }
      if (uint16_t both = uint16_t(e & mask)) {
        at = g * kGranule + unsigned(__builtin_ctz(both));
        other = (e >> 16) - 1;
        return false;
      }
      break; // disjoint bytes of another block's granule
    }
    Shard &s = shards[g % kShards];
    std::lock_guard<std::mutex> lock(s.mutex);
    e = __atomic_load_n(w, __ATOMIC_RELAXED);
    std::array<uint64_t, kGranule> &owners = s.split[g];
    // Only here, under the lock, does a word become kSplit; until it does,
    // its owner may still add bytes.
    while (e != kSplit) {
      for (unsigned i = 0; i < kGranule; ++i)
        owners[i] = (e >> i) & 1 ? e >> 16 : 0;
      if (__atomic_compare_exchange_n(w, &e, kSplit, false, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED))
        break;
    }
    for (unsigned i = 0; i < kGranule; ++i)
      if ((mask >> i) & 1 && owners[i] && owners[i] != owner + 1) {
        at = g * kGranule + i;
        other = owners[i] - 1;
        return false;
      }
    for (unsigned i = 0; i < kGranule; ++i)
      if ((mask >> i) & 1)
        owners[i] = owner + 1;
    return true;
  }

  struct Shard {
    std::mutex mutex;
    std::unordered_map<uint64_t, std::unique_ptr<uint64_t[]>> pages;
    std::unordered_map<uint64_t, std::array<uint64_t, kGranule>> split;
  };
  std::array<Shard, kShards> shards;
};

class Block {
public:
  Block(const Module &m, const Kernel &k, Dim3 grid, Dim3 block,
        unsigned sharedBytes, const char *params, const Resolver &resolve,
        WriteCheck *writes = nullptr)
      : m(m), k(k), grid(grid), dims(block), params(params),
        resolve(resolve), writes(writes) {
    if (writes)
      writeCache = std::make_unique<WriteCheck::Cache>();
    unsigned n = block.x * block.y * block.z;
    threads.resize(n);
    regs.resize(size_t(n) * std::max(1u, k.registers));
    local.resize(size_t(n) * k.localBytes);
    shared.resize(sharedBytes);
    for (auto *v : {&writeEpoch, &writer, &readEpoch, &reader})
      v->resize(sharedBytes);
    if (k.bulk)
      bulkDst.resize(sharedBytes);
    if (k.sharedAtomics) {
      atomicEpoch.resize(sharedBytes);
      atomicBy.resize(sharedBytes);
    }
    if (k.bulk && k.wgmma)
      wgmmaReads.resize(sharedBytes);
    if (k.wgmma) {
      unfencedBy.resize(sharedBytes);
      awaiting.resize(size_t(n) * std::max(1u, k.registers));
      snapshots.resize((n + 127) / 128);
    }
    for (unsigned t = 0; t < n; ++t) {
      Thread &th = threads[t];
      th.linear = t;
      th.tid[0] = t % block.x;
      th.tid[1] = (t / block.x) % block.y;
      th.tid[2] = t / (block.x * block.y);
      th.regs = regs.data() + size_t(t) * std::max(1u, k.registers);
      th.local = local.data() + size_t(t) * k.localBytes;
    }
  }

  /// Runs block `id`; false with `result` set on a failure.
  bool run(const unsigned id[3], LaunchResult &result);
  uint64_t executed = 0;

private:
  bool runThread(Thread &t);
  bool warpStep(unsigned warp);
  bool failWith(Failure f, const Thread &t, const Inst &in,
                const std::string &what);
  uint64_t get(const Thread &t, const Operand &o) const;
  void set(Thread &t, const Operand &o, uint64_t v) {
    if (o.kind == Operand::Reg)
      t.regs[o.reg] = v;
  }
  char *address(const Thread &t, const Inst &in, Space space, uint64_t addr,
                unsigned bytes);
  /// Checks an access of shared memory (anything else passes) for races,
  /// and records it. An atomic access writes; it races with the other
  /// threads' plain accesses since the last barrier, not with their
  /// atomic ones.
  bool sharedAccess(const Thread &t, const Inst &in, const char *p,
                    unsigned bytes, bool write, bool atomic = false);
  /// Runs atom or red `in`.
  bool atomicUpdate(Thread &t, const Inst &in);
  /// With checkWrites, records that this block stores the `bytes` bytes at
  /// global address `addr`, failing if another block stored to one of
  /// them.
  bool globalStore(const Thread &t, const Inst &in, uint64_t addr,
                   unsigned bytes);
  bool ldmatrix(unsigned warp, const Inst &in);
  bool shfl(unsigned warp, const Inst &in);
  void mma(unsigned warp, const Inst &in);
  bool wgmma(unsigned group, const Inst &in);
  bool wgCommitWait(Thread &t, const Inst &in);
  bool touchesPending(const Thread &t, const Inst &in) const;

  /// An mbarrier object (PTX ISA, "Parallel Synchronization and
  /// Communication Instructions: mbarrier").
  struct MBarrier {
    uint32_t count = 0;   // arrivals each phase expects
    uint32_t pending = 0; // arrivals the current phase still expects
    int64_t tx = 0;       // transaction bytes the current phase expects
    uint32_t phase = 0;   // phases completed
  };
  /// The mbarrier at the address operand `o` of `in`, which must have been
  /// initialized unless `init`; null (the launch failed) if there is none.
  MBarrier *mbarrierAt(const Thread &t, const Inst &in, const Operand &o,
                       uint32_t &at, bool init = false);
  bool mbarrierOp(Thread &t, const Inst &in);
  /// Completes the current phase of `b` (at `at`) if it expects nothing
  /// more, waking the threads asleep on it.
  void settle(uint32_t at, MBarrier &b);
  bool issueBulk(Thread &t, const Inst &in);
  bool landBulk();
  /// The `bytes` bytes of global memory at `addr`, which must lie in one
  /// allocation.
  const char *globalBytes(const Thread &t, const Inst &in, uint64_t addr,
                          uint64_t bytes);
  /// Releases the threads of each barrier that all its threads reached.
  bool releaseBarriers(bool &released);
  /// Fails the launch, naming a thread that waits for ever.
  bool deadlock();

  const Module &m;
  const Kernel &k;
  Dim3 grid, dims;
  const char *params;
  const Resolver &resolve;
  unsigned ctaid[3] = {0, 0, 0};
  std::vector<Thread> threads;
  std::vector<uint64_t> regs;
  std::vector<char> local, shared;
  /// Race detection on shared memory: per byte, the barrier interval
  /// (epoch) and thread of its last write and of its last reads.
  std::vector<uint32_t> writeEpoch, writer, readEpoch, reader;
  /// With shared atomics: per byte, the epoch and thread (UINT32_MAX:
  /// several) of its last atomic updates.
  std::vector<uint32_t> atomicEpoch, atomicBy;
  uint32_t epoch = 1;
  /// With wgmma: per shared byte, 1 + the thread that wrote it and has not
  /// executed fence.proxy.async since (0: none); per register of each
  /// thread, how many in-flight wgmma results it awaits.
  std::vector<uint32_t> unfencedBy;
  std::vector<uint16_t> awaiting;
  /// The shared bytes each in-flight wgmma of a warpgroup read, as they
  /// were at its issue: they must not change until it completes.
  struct Snapshot {
    uint32_t group; // the leader thread's group; 0 until committed
    int line;
    std::vector<std::pair<uint32_t, uint8_t>> bytes;
  };
  std::vector<std::vector<Snapshot>> snapshots; // per warpgroup
  /// By shared offset.
  std::map<uint32_t, MBarrier> mbarriers;
  /// A cp.async.bulk.tensor copy in flight: the bytes it will write from
  /// shared offset `dst` on (read from global memory when it was issued),
  /// and the mbarrier it completes.
  struct BulkCopy {
    uint32_t dst, mbarrier, thread;
    const Inst *in;
    std::vector<char> data;
  };
  /// In issue order; they land together, when nothing else can run.
  std::vector<BulkCopy> bulk;
  /// Per shared byte, 1 + the index in `bulk` of the copy that writes it
  /// (0: none), when the kernel has bulk copies.
  std::vector<uint32_t> bulkDst;
  /// Per shared byte, while bulk copies land: the PTX line of an in-flight
  /// wgmma that reads it (0: none), when the kernel has both.
  std::vector<int> wgmmaReads;
  Allocation cached;
  LaunchResult *result = nullptr;
  /// With checkWrites: the check, this worker's cache of its tables, and
  /// the linear id of the block that runs.
  WriteCheck *writes;
  std::unique_ptr<WriteCheck::Cache> writeCache;
  uint64_t linearId = 0;
};

bool Block::failWith(Failure f, const Thread &t, const Inst &in,
                     const std::string &what) {
  std::ostringstream os;
  os << "kernel " << k.name << ", thread (" << t.tid[0] << "," << t.tid[1]
     << "," << t.tid[2] << ") of block (" << ctaid[0] << "," << ctaid[1]
     << "," << ctaid[2] << "), PTX line " << in.line;
  if (size_t(in.line) < m.source.size() && !m.source[size_t(in.line)].empty())
    os << " `" << m.source[size_t(in.line)] << "`";
  os << ": " << what;
  result->failure = f;
  result->message = os.str();
  return false;
}

bool Block::sharedAccess(const Thread &t, const Inst &in, const char *p,
                         unsigned bytes, bool write, bool atomic) {
  if (p < shared.data() || p >= shared.data() + shared.size())
    return true;
  constexpr uint32_t many = UINT32_MAX;
  size_t at = size_t(p - shared.data());
  if (!bulk.empty())
    for (size_t i = at; i < at + bytes; ++i)
      if (uint32_t c = bulkDst[i]) {
        const BulkCopy &copy = bulk[c - 1];
        std::ostringstream os;
        os << (write ? "writes" : "reads")
           << " shared memory that a cp.async.bulk.tensor still in flight "
              "writes (byte "
           << i << ", of the copy at PTX line " << copy.in->line
           << ", which completes the mbarrier at shared offset "
           << copy.mbarrier << ": wait on that mbarrier first)";
        return failWith(Failure::LaunchFailed, t, in, os.str());
      }
  write |= atomic;
  for (size_t i = at; i < at + bytes; ++i) {
    const char *did = nullptr; // what the other thread did
    uint32_t other = 0;
    if (writeEpoch[i] == epoch && writer[i] != t.linear) {
      did = "wrote it";
      other = writer[i];
    } else if (write && readEpoch[i] == epoch && reader[i] != t.linear) {
      did = "read it";
      other = reader[i];
    } else if (!atomic && !atomicEpoch.empty() && atomicEpoch[i] == epoch &&
               atomicBy[i] != t.linear) {
      did = "updated it atomically";
      other = atomicBy[i];
    }
    if (did) {
      std::ostringstream os;
      os << "race on shared memory: byte " << i << " "
         << (atomic ? "updated atomically" : write ? "written" : "read")
         << " here without a barrier since thread "
         << (other == many ? std::string("(several)") : std::to_string(other))
         << " " << did;
      return failWith(Failure::LaunchFailed, t, in, os.str());
    }
    if (atomic) {
      atomicBy[i] = atomicEpoch[i] != epoch || atomicBy[i] == t.linear
                        ? t.linear
                        : many;
      atomicEpoch[i] = epoch;
      if (!unfencedBy.empty())
        unfencedBy[i] = t.linear + 1;
    } else if (write) {
      writeEpoch[i] = epoch;
      writer[i] = t.linear;
      if (!unfencedBy.empty())
        unfencedBy[i] = t.linear + 1;
    } else if (readEpoch[i] != epoch) {
      readEpoch[i] = epoch;
      reader[i] = t.linear;
    } else if (reader[i] != t.linear) {
      reader[i] = many;
    }
  }
  if (write && !unfencedBy.empty())
    t.unfenced.emplace_back(uint32_t(at), bytes);
  return true;
}

uint64_t Block::get(const Thread &t, const Operand &o) const {
  uint64_t v = 0;
  switch (o.kind) {
  case Operand::Reg: v = t.regs[o.reg]; break;
  case Operand::Imm: v = uint64_t(o.imm); break;
  case Operand::Spec:
    switch (Special(o.imm)) {
    case TidX: v = t.tid[0]; break;
    case TidY: v = t.tid[1]; break;
    case TidZ: v = t.tid[2]; break;
    case NtidX: v = dims.x; break;
    case NtidY: v = dims.y; break;
    case NtidZ: v = dims.z; break;
    case CtaidX: v = ctaid[0]; break;
    case CtaidY: v = ctaid[1]; break;
    case CtaidZ: v = ctaid[2]; break;
    case NctaidX: v = grid.x; break;
    case NctaidY: v = grid.y; break;
    case NctaidZ: v = grid.z; break;
    case LaneId: v = t.linear % 32; break;
    case WarpId: v = t.linear / 32; break;
    }
    break;
  default: break;
  }
  return o.negate ? (~v & 1) : v;
}

char *Block::address(const Thread &t, const Inst &in, Space space,
                     uint64_t addr, unsigned bytes) {
  auto misaligned = [&](uint64_t a) {
    if (a % bytes == 0)
      return false;
    std::ostringstream os;
    os << "misaligned address 0x" << std::hex << a << std::dec << " for "
       << bytes << " bytes";
    failWith(Failure::MisalignedAddress, t, in, os.str());
    return true;
  };
  if (space == Space::Generic) {
    if (addr >= kSharedWindow && addr < kSharedWindow + kWindowSize) {
      space = Space::Shared;
      addr -= kSharedWindow;
    } else if (addr >= kLocalWindow && addr < kLocalWindow + kWindowSize) {
      space = Space::Local;
      addr -= kLocalWindow;
    } else {
      space = Space::Global;
    }
  }
  auto outside = [&](const char *what, uint64_t size) {
    std::ostringstream os;
    os << "illegal address: " << bytes << " bytes at " << what << " offset "
       << int64_t(addr) << ", outside its " << size << " bytes";
    failWith(Failure::IllegalAddress, t, in, os.str());
    return nullptr;
  };
  switch (space) {
  case Space::Param:
    if (addr + bytes > k.paramBytes)
      return outside("parameter", k.paramBytes);
    return const_cast<char *>(params) + addr;
  case Space::Shared:
    if (addr + bytes > shared.size())
      return outside("shared", shared.size());
    if (misaligned(addr))
      return nullptr;
    return shared.data() + addr;
  case Space::Local:
    if (addr + bytes > k.localBytes)
      return outside("local", k.localBytes);
    if (misaligned(addr))
      return nullptr;
    return t.local + addr;
  default:
    break;
  }
  if (misaligned(addr))
    return nullptr;
  if (!(addr >= cached.base && addr + bytes <= cached.base + cached.size)) {
    bool found = false;
    for (const Module::Range &r : m.globalRanges)
      if (addr >= r.base && addr < r.base + r.size) {
        cached = {r.base, r.size, r.host};
        found = true;
      }
    if (!found && !resolve(addr, cached)) {
      std::ostringstream os;
      os << "illegal address 0x" << std::hex << addr << std::dec
         << ": in no allocation";
      failWith(Failure::IllegalAddress, t, in, os.str());
      return nullptr;
    }
    if (addr + bytes > cached.base + cached.size) {
      failWith(Failure::IllegalAddress, t, in,
               pastAllocation(addr, bytes, cached));
      return nullptr;
    }
  }
  return cached.host + (addr - cached.base);
}

bool compare(Cmp c, uint64_t a, uint64_t b, Ty t) {
  if (isFloat(t)) {
    double x = asFloat(a, t), y = asFloat(b, t);
    bool unordered = std::isnan(x) || std::isnan(y);
    switch (c) {
    case Cmp::Eq: return !unordered && x == y;
    case Cmp::Ne: return !unordered && x != y;
    case Cmp::Lt: return !unordered && x < y;
    case Cmp::Le: return !unordered && x <= y;
    case Cmp::Gt: return !unordered && x > y;
    case Cmp::Ge: return !unordered && x >= y;
    case Cmp::Equ: return unordered || x == y;
    case Cmp::Neu: return unordered || x != y;
    case Cmp::Ltu: return unordered || x < y;
    case Cmp::Leu: return unordered || x <= y;
    case Cmp::Gtu: return unordered || x > y;
    case Cmp::Geu: return unordered || x >= y;
    case Cmp::Num: return !unordered;
    case Cmp::Nan: return unordered;
    default: return false;
    }
  }
  int64_t x = asInt(a, t), y = asInt(b, t);
  uint64_t ux = uint64_t(x), uy = uint64_t(y);
  if (!isSigned(t) && bits(t) < 64) {
    ux &= (uint64_t(1) << bits(t)) - 1;
    uy &= (uint64_t(1) << bits(t)) - 1;
  }
  bool sgn = isSigned(t);
  switch (c) {
  case Cmp::Eq: return ux == uy;
  case Cmp::Ne: return ux != uy;
  case Cmp::Lt: return sgn ? x < y : ux < uy;
  case Cmp::Le: return sgn ? x <= y : ux <= uy;
  case Cmp::Gt: return sgn ? x > y : ux > uy;
  case Cmp::Ge: return sgn ? x >= y : ux >= uy;
  case Cmp::Lo: return ux < uy;
  case Cmp::Ls: return ux <= uy;
  case Cmp::Hi: return ux > uy;
  case Cmp::Hs: return ux >= uy;
  default: return false;
  }
}

uint64_t mask(uint64_t v, Ty t) {
  unsigned n = bits(t);
  return n >= 64 || n == 0 ? v : v & ((uint64_t(1) << n) - 1);
}

double roundInt(double v, Rnd r) {
  switch (r) {
  case Rnd::Rni: return std::nearbyint(v);
  case Rnd::Rmi: return std::floor(v);
  case Rnd::Rpi: return std::ceil(v);
  default: return std::trunc(v);
  }
}

/// cvt: `raw` of type `from` to bits of type `to`.
uint64_t convert(uint64_t raw, Ty from, Ty to, Rnd r, bool ftz, bool sat) {
  if (isFloat(from)) {
    double v = asFloat(raw, from);
    if (ftz && from == Ty::F32)
      v = flush(float(v));
    if (!isFloat(to)) {
      if (std::isnan(v))
        return 0;
      v = roundInt(v, r);
      unsigned n = bits(to);
      if (isSigned(to)) {
        double lo = -std::ldexp(1.0, int(n) - 1), hi = -lo - 1;
        int64_t i = v <= lo ? int64_t(lo) : v >= hi ? int64_t(hi) : int64_t(v);
        return mask(uint64_t(i), to);
      }
      double hi = std::ldexp(1.0, int(n)) - 1;
      uint64_t u = v <= 0 ? 0 : v >= hi ? uint64_t(hi) : uint64_t(v);
      return u;
    }
    if (from == to || r == Rnd::Rni || r == Rnd::Rzi || r == Rnd::Rmi ||
        r == Rnd::Rpi) {
      if (r != Rnd::None && r != Rnd::Rn)
        v = roundInt(v, r);
    }
    if (sat)
      v = std::isnan(v) ? 0.0 : std::clamp(v, 0.0, 1.0);
    uint64_t out = fromFloat(v, to);
    if (ftz && to == Ty::F32)
      out = bitsOf(flush(f32(out)));
    return out;
  }
  int64_t i = asInt(raw, from);
  if (isFloat(to)) {
    double v = isSigned(from) ? double(i) : double(uint64_t(mask(raw, from)));
    return fromFloat(v, to);
  }
  return mask(uint64_t(i), to);
}

/// add/sub/mul/div/min/max of two floats; min and max with `.NaN`
/// propagate a NaN operand, without it they return the other operand.
template <typename T> T floatBinary(Op op, bool nan, T x, T y) {
  if ((op == Op::Min || op == Op::Max) && nan &&
      (std::isnan(x) || std::isnan(y)))
    return std::numeric_limits<T>::quiet_NaN();
  switch (op) {
  case Op::Add: return x + y;
  case Op::Sub: return x - y;
  case Op::Mul: return x * y;
  case Op::Div: return x / y;
  case Op::Min: return std::fmin(x, y);
  default: return std::fmax(x, y);
  }
}

/// The value that atom.OP.TYPE leaves in memory that held `old`, with the
/// operand b and cas's c.
uint64_t atomicResult(AtomOp op, Ty t, uint64_t old, uint64_t b, uint64_t c) {
  switch (op) {
  case AtomOp::Add:
    // atom.add.f32 flushes subnormal inputs and results to zero.
    if (t == Ty::F32)
      return bitsOf(flush(flush(f32(old)) + flush(f32(b))));
    if (t == Ty::F64)
      return bitsOf(f64(old) + f64(b));
    return old + b;
  case AtomOp::Exch: return b;
  case AtomOp::Cas: return old == mask(b, t) ? c : old;
  case AtomOp::And: return old & b;
  case AtomOp::Or: return old | b;
  case AtomOp::Xor: return old ^ b;
  case AtomOp::Min: case AtomOp::Max: {
    bool less = isSigned(t) ? asInt(b, t) < asInt(old, t)
                            : mask(b, t) < mask(old, t);
    return less == (op == AtomOp::Min) ? b : old;
  }
  case AtomOp::Inc: return mask(old, t) >= mask(b, t) ? 0 : old + 1;
  case AtomOp::Dec:
    return old == 0 || mask(old, t) > mask(b, t) ? b : old - 1;
  }
  return old;
}

/// atom.OP on the `T` at `p`, atomically for all host threads (the blocks
/// on other workers): returns the old value. A compare-and-swap loop serves
/// every operation and type, f32 additions among them.
template <typename T>
uint64_t atomicAt(char *p, AtomOp op, Ty t, uint64_t b, uint64_t c) {
  T *at = reinterpret_cast<T *>(p);
  T old = __atomic_load_n(at, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(at, &old,
                                      T(atomicResult(op, t, old, b, c)),
                                      /*weak=*/true, __ATOMIC_SEQ_CST,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
}

bool Block::atomicUpdate(Thread &t, const Inst &in) {
  // atom d, [a], b{, c}; red [a], b.
  const std::vector<Operand> &o = in.ops;
  size_t a = in.op == Op::Atom;
  unsigned bytes = bits(in.type) / 8;
  uint64_t addr = uint64_t(o[a].imm) + (o[a].reg >= 0 ? t.regs[o[a].reg] : 0);
  char *p = address(t, in, in.space, addr, bytes);
  if (!p)
    return false;
  if (p >= t.local && p < t.local + k.localBytes)
    return failWith(Failure::IllegalAddress, t, in,
                    "an atomic access of local memory (a generic address "
                    "in the local window): atomics take global and shared "
                    "memory only");
  if (!sharedAccess(t, in, p, bytes, /*write=*/true, /*atomic=*/true))
    return false;
  uint64_t b = get(t, o[a + 1]), c = o.size() > a + 2 ? get(t, o[a + 2]) : 0;
  uint64_t old = bytes == 4 ? atomicAt<uint32_t>(p, in.atom, in.type, b, c)
                            : atomicAt<uint64_t>(p, in.atom, in.type, b, c);
  if (in.op == Op::Atom)
    set(t, o[0], isSigned(in.type) ? uint64_t(asInt(old, in.type)) : old);
  return true;
}

bool Block::globalStore(const Thread &t, const Inst &in, uint64_t addr,
                        unsigned bytes) {
  uint64_t at, other;
  if (writes->store(addr, bytes, linearId, *writeCache, at, other))
    return true;
  uint64_t plane = uint64_t(grid.x) * grid.y;
  std::ostringstream os;
  os << "blocks (" << ctaid[0] << "," << ctaid[1] << "," << ctaid[2]
     << ") and (" << other % grid.x << "," << other / grid.x % grid.y << ","
     << other / plane << ") both store to global address 0x" << std::hex
     << at << std::dec
     << ": the blocks of a launch run in any order on a GPU, so which "
        "store lands last is undefined";
  return failWith(Failure::LaunchFailed, t, in, os.str());
}

bool Block::runThread(Thread &t) {
  const Inst *code = k.code.data();
  uint64_t count = 0;
  for (;;) {
    const Inst &in = code[t.pc];
    ++count;
    if (in.pred >= 0 && bool(t.regs[in.pred] & 1) == in.predNegated) {
      ++t.pc;
      continue;
    }
    const std::vector<Operand> &o = in.ops;
    if (!t.wgPending.empty() && touchesPending(t, in))
      return failWith(Failure::LaunchFailed, t, in,
                      "a register that an in-flight wgmma.mma_async writes is "
                      "accessed before the wgmma.wait_group that completes it");
    Ty ty = in.type;
    bool fl = isFloat(ty);
    switch (in.op) {
    case Op::Nop: case Op::WgFence:
      break;
    case Op::Fence:
      // The blocks on other workers (host threads) see this thread's
      // memory accesses in order: its plain stores before, say, the atom
      // that tells them the stores are done.
      std::atomic_thread_fence(std::memory_order_seq_cst);
      break;
    case Op::Atom: case Op::Red:
      if (!atomicUpdate(t, in))
        return false;
      break;
    case Op::FenceProxyAsync:
      // This thread's shared-memory writes become visible to the async
      // proxy (wgmma's operand reads).
      for (auto [at, size] : t.unfenced)
        for (uint32_t i = at; i < at + size; ++i)
          if (unfencedBy[i] == t.linear + 1)
            unfencedBy[i] = 0;
      t.unfenced.clear();
      break;
    case Op::WgCommit: case Op::WgWait:
      if (!wgCommitWait(t, in))
        return false;
      break;
    case Op::Mov: {
      if (o[0].kind == Operand::Vec) { // unpack
        uint64_t v = get(t, o[1]);
        unsigned w = bits(ty) / unsigned(o[0].elems.size());
        for (size_t e = 0; e < o[0].elems.size(); ++e)
          set(t, o[0].elems[e], mask(v >> (w * e), w == 16   ? Ty::B16
                                                    : w == 32 ? Ty::B32
                                                              : Ty::B8));
      } else if (o[1].kind == Operand::Vec) { // pack
        unsigned w = bits(ty) / unsigned(o[1].elems.size());
        uint64_t v = 0;
        for (size_t e = 0; e < o[1].elems.size(); ++e)
          v |= mask(get(t, o[1].elems[e]), w == 16   ? Ty::B16
                                           : w == 32 ? Ty::B32
                                                     : Ty::B8)
               << (w * e);
        set(t, o[0], v);
      } else {
        set(t, o[0], get(t, o[1]));
      }
      break;
    }
    case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Rem:
    case Op::Min: case Op::Max: {
      uint64_t a = get(t, o[1]), b = get(t, o[2]);
      if (fl) {
        double x = asFloat(a, ty), y = asFloat(b, ty), r = 0;
        if (ty == Ty::F32) {
          float fx = float(x), fy = float(y), fr = 0;
          if (in.ftz) {
            fx = flush(fx);
            fy = flush(fy);
          }
          fr = floatBinary(in.op, in.nan, fx, fy);
          if (in.ftz)
            fr = flush(fr);
          if (in.sat)
            fr = std::isnan(fr) ? 0.0f : std::clamp(fr, 0.0f, 1.0f);
          set(t, o[0], bitsOf(fr));
          break;
        }
        r = floatBinary(in.op, in.nan, x, y);
        set(t, o[0], fromFloat(r, ty));
        break;
      }
      int64_t x = asInt(a, ty), y = asInt(b, ty);
      uint64_t ux = mask(uint64_t(x), ty), uy = mask(uint64_t(y), ty), r = 0;
      bool sgn = isSigned(ty);
      switch (in.op) {
      case Op::Add: r = ux + uy; break;
      case Op::Sub: r = ux - uy; break;
      case Op::Mul: r = ux * uy; break;
      case Op::Div:
        r = uy == 0 ? ~uint64_t(0)
            : sgn   ? uint64_t(x / y)
                    : ux / uy;
        break;
      case Op::Rem:
        r = uy == 0 ? ux : sgn ? uint64_t(x % y) : ux % uy;
        break;
      case Op::Min: r = sgn ? uint64_t(std::min(x, y)) : std::min(ux, uy); break;
      case Op::Max: r = sgn ? uint64_t(std::max(x, y)) : std::max(ux, uy); break;
      default: break;
      }
      set(t, o[0], mask(r, ty));
      break;
    }
    case Op::MulWide: {
      int64_t x = asInt(get(t, o[1]), ty), y = asInt(get(t, o[2]), ty);
      uint64_t r = isSigned(ty) ? uint64_t(x * y)
                                : mask(uint64_t(x), ty) * mask(uint64_t(y), ty);
      set(t, o[0], r);
      break;
    }
    case Op::MulHi: {
      int64_t x = asInt(get(t, o[1]), ty), y = asInt(get(t, o[2]), ty);
      unsigned n = bits(ty);
      uint64_t r;
      if (isSigned(ty))
        r = uint64_t((__int128(x) * __int128(y)) >> n);
      else
        r = uint64_t((unsigned __int128)(mask(uint64_t(x), ty)) *
                     mask(uint64_t(y), ty) >> n);
      set(t, o[0], mask(r, ty));
      break;
    }
    case Op::Mad: case Op::Fma: {
      uint64_t a = get(t, o[1]), b = get(t, o[2]), c = get(t, o[3]);
      if (fl) {
        if (ty == Ty::F32) {
          float r = std::fma(f32(a), f32(b), f32(c));
          set(t, o[0], bitsOf(in.ftz ? flush(r) : r));
        } else {
          // f64, and fma.rn.{f16,bf16} (LLVM's add and mul of halves on
          // sm_80, which has no add.bf16: a + b is fma(a, 1.0, b)) as the
          // other float ops take them: the product of two halves is exact
          // in a double, the sum rounds once to double and then (through
          // float) to the half format.
          set(t, o[0], fromFloat(std::fma(asFloat(a, ty), asFloat(b, ty),
                                          asFloat(c, ty)),
                                 ty));
        }
        break;
      }
      set(t, o[0], mask(a * b + c, ty));
      break;
    }
    case Op::Neg: case Op::Abs: case Op::Sqrt: case Op::Rcp: case Op::Ex2:
    case Op::Lg2: {
      uint64_t a = get(t, o[1]);
      if (!fl) {
        int64_t x = asInt(a, ty);
        uint64_t r = in.op == Op::Neg ? uint64_t(-x)
                                      : uint64_t(x < 0 ? -x : x);
        set(t, o[0], mask(r, ty));
        break;
      }
      if (ty == Ty::F32) {
        float x = f32(a), r = 0;
        if (in.ftz)
          x = flush(x);
        switch (in.op) {
        case Op::Neg: r = -x; break;
        case Op::Abs: r = std::fabs(x); break;
        case Op::Sqrt: r = std::sqrt(x); break;
        case Op::Rcp: r = 1.0f / x; break;
        case Op::Ex2: r = std::exp2(x); break;
        default: r = std::log2(x); break;
        }
        set(t, o[0], bitsOf(in.ftz ? flush(r) : r));
        break;
      }
      double x = asFloat(a, ty), r = 0;
      switch (in.op) {
      case Op::Neg: r = -x; break;
      case Op::Abs: r = std::fabs(x); break;
      case Op::Sqrt: r = std::sqrt(x); break;
      case Op::Rcp: r = 1.0 / x; break;
      case Op::Ex2: r = std::exp2(x); break;
      default: r = std::log2(x); break;
      }
      set(t, o[0], fromFloat(r, ty));
      break;
    }
    case Op::Shl: case Op::Shr: {
      uint64_t a = mask(get(t, o[1]), ty);
      uint64_t s = uint32_t(get(t, o[2]));
      unsigned n = bits(ty);
      uint64_t r;
      if (in.op == Op::Shl)
        r = s >= n ? 0 : a << s;
      else if (isSigned(ty))
        r = uint64_t(asInt(a, ty) >> std::min<uint64_t>(s, n - 1));
      else
        r = s >= n ? 0 : a >> s;
      set(t, o[0], mask(r, ty));
      break;
    }
    case Op::Bfe: {
      // PTX ISA, bfe: bit i of d is bit pos + i of a for i < len and
      // pos + i within the type, else the sign bit: 0 for unsigned types,
      // else a's bit min(pos + len - 1, msb) (0 when len is 0). pos and
      // len are the low 8 bits of their operands.
      uint64_t a = mask(get(t, o[1]), ty);
      uint64_t msb = bits(ty) - 1;
      uint64_t pos = get(t, o[2]) & 0xff, len = get(t, o[3]) & 0xff;
      uint64_t sbit = isSigned(ty) && len != 0
                          ? (a >> std::min(pos + len - 1, msb)) & 1
                          : 0;
      uint64_t r = 0;
      for (uint64_t i = 0; i <= msb; ++i) {
        uint64_t bit = i < len && pos + i <= msb ? (a >> (pos + i)) & 1 : sbit;
        r |= bit << i;
      }
      set(t, o[0], r);
      break;
    }
    case Op::And: case Op::Or: case Op::Xor: {
      uint64_t a = get(t, o[1]), b = get(t, o[2]);
      uint64_t r = in.op == Op::And ? a & b : in.op == Op::Or ? a | b : a ^ b;
      set(t, o[0], mask(r, ty));
      break;
    }
    case Op::Not:
      set(t, o[0], mask(~get(t, o[1]), ty));
      break;
    case Op::Setp:
      set(t, o[0], compare(in.cmp, get(t, o[1]), get(t, o[2]), ty) ? 1 : 0);
      break;
    case Op::Selp:
      set(t, o[0], (get(t, o[3]) & 1) ? get(t, o[1]) : get(t, o[2]));
      break;
    case Op::Cvt: {
      auto cvt = [&](const Operand &x) {
        return convert(get(t, x), in.srcType, ty, in.rnd, in.ftz, in.sat);
      };
      set(t, o[0],
          in.pack ? (cvt(o[1]) & 0xffff) << 16 | (cvt(o[2]) & 0xffff)
                  : cvt(o[1]));
      break;
    }
    case Op::Cvta: {
      uint64_t a = get(t, o[1]);
      uint64_t window = in.cvtaSpace == Space::Shared  ? kSharedWindow
                        : in.cvtaSpace == Space::Local ? kLocalWindow
                                                       : 0;
      set(t, o[0], in.cvtaTo ? a - window : a + window);
      break;
    }
    case Op::Ld: case Op::St: {
      const Operand &addrOp = in.op == Op::Ld ? o[1] : o[0];
      const Operand &val = in.op == Op::Ld ? o[0] : o[1];
      unsigned elem = std::max(1u, bits(ty) / 8);
      uint64_t addr = uint64_t(addrOp.imm) +
                      (addrOp.reg >= 0 ? t.regs[addrOp.reg] : 0);
      char *p = address(t, in, in.space, addr, elem * in.vec);
      if (!p || !sharedAccess(t, in, p, elem * in.vec, in.op == Op::St))
        return false;
      if (writes && in.op == Op::St &&
          (in.space == Space::Global ||
           (in.space == Space::Generic &&
            !(addr >= kSharedWindow && addr < kSharedWindow + kWindowSize) &&
            !(addr >= kLocalWindow && addr < kLocalWindow + kWindowSize))))
        for (unsigned e = 0; e < in.vec; ++e) {
          // The elements a vector store writes (not its `_`), in runs.
          unsigned first = e;
          while (e < in.vec &&
                 (in.vec == 1 || val.elems[e].kind != Operand::None))
            ++e;
          if (e > first &&
              !globalStore(t, in, addr + first * elem, (e - first) * elem))
            return false;
        }
      for (unsigned e = 0; e < in.vec; ++e) {
        const Operand &v = in.vec > 1 ? val.elems[e] : val;
        if (in.op == Op::Ld) {
          uint64_t x = 0;
          std::memcpy(&x, p + e * elem, elem);
          set(t, v, isSigned(ty) ? uint64_t(asInt(x, ty)) : x);
        } else if (v.kind != Operand::None) {
          uint64_t x = get(t, v);
          std::memcpy(p + e * elem, &x, elem);
        }
      }
      break;
    }
    case Op::CpAsync: {
      // cp.async.{ca,cg}.shared.global [dst], [src], size[, src-size]
      unsigned size = unsigned(get(t, o[2]));
      unsigned srcSize = o.size() > 3 ? unsigned(get(t, o[3])) : size;
      uint64_t dst = uint64_t(o[0].imm) + (o[0].reg >= 0 ? t.regs[o[0].reg] : 0);
      uint64_t src = uint64_t(o[1].imm) + (o[1].reg >= 0 ? t.regs[o[1].reg] : 0);
      char *d = address(t, in, Space::Shared, dst, size);
      if (!d)
        return false;
      if (size > 16)
        return failWith(Failure::LaunchFailed, t, in, "cp.async of more than 16 bytes");
      PendingCopy copy{d, {}, size, 0};
      if (srcSize > 0) {
        char *s = address(t, in, Space::Global, src, size);
        if (!s)
          return false;
        std::memcpy(copy.data, s, std::min(size, srcSize));
      }
      t.pending.push_back(copy);
      break;
    }
    case Op::CpCommit:
      ++t.groups;
      for (PendingCopy &c : t.pending)
        if (c.group == 0)
          c.group = t.groups;
      break;
    case Op::CpWait: case Op::CpWaitAll: {
      // wait_group N: all but the N most recent committed groups land.
      uint64_t keep = in.op == Op::CpWait ? get(t, o[0]) : 0;
      uint32_t upTo = keep >= t.groups ? 0 : t.groups - uint32_t(keep);
      size_t kept = 0;
      for (PendingCopy &c : t.pending) {
        if (in.op == Op::CpWaitAll || (c.group != 0 && c.group <= upTo)) {
          if (!sharedAccess(t, in, c.dst, c.size, /*write=*/true))
            return false;
          std::memcpy(c.dst, c.data, c.size);
        } else
          t.pending[kept++] = c;
      }
      t.pending.resize(kept);
      break;
    }
    case Op::Bar: {
      // bar.sync a{, b}; bar.red d, a{, b}, {!}c.
      bool red = in.reduce != Reduce::None;
      bool counted = o.size() > (red ? 3u : 1u);
      uint64_t id = get(t, o[red]);
      uint64_t threadCount = counted ? uint32_t(get(t, o[red + 1])) : 0;
      if (id >= 16)
        return failWith(Failure::LaunchFailed, t, in,
                        "barrier " + std::to_string(id) +
                            " is not one of the 16 barriers (0-15)");
      size_t warpThreads = (threads.size() + 31) / 32 * 32;
      if (counted && (threadCount == 0 || threadCount % 32 ||
                      threadCount > warpThreads))
        return failWith(Failure::LaunchFailed, t, in,
                        std::string(red ? "bar.red" : "bar.sync") + " with " +
                            std::to_string(threadCount) +
                            " threads: not a multiple of 32 in [32, " +
                            std::to_string(warpThreads) + "]");
      t.barrier = uint32_t(id);
      t.barrierCount = uint32_t(threadCount);
      t.reduce = in.reduce;
      t.vote = red && (get(t, o.back()) & 1);
      t.state = State::Barrier;
      executed += count;
      return true;
    }
    case Op::MbarInit: case Op::MbarInval: case Op::MbarArrive:
    case Op::MbarArriveExpectTx: case Op::MbarExpectTx:
    case Op::MbarCompleteTx:
      if (!mbarrierOp(t, in))
        return false;
      break;
    case Op::MbarTryWait: {
      uint32_t at;
      MBarrier *b = mbarrierAt(t, in, o[1], at);
      if (!b)
        return false;
      // The phase of the asked parity has completed unless it is the
      // current one (a new mbarrier's phase 0 follows a complete "phase
      // -1" of parity 1). If it is, sleep until it completes and then run
      // this try_wait again, rather than spin.
      if ((b->phase & 1) == (get(t, o[2]) & 1)) {
        t.state = State::Sleep;
        t.sleepsOn = at;
        executed += count;
        return true;
      }
      set(t, o[0], 1);
      break;
    }
    case Op::BulkTensor:
      if (!issueBulk(t, in))
        return false;
      break;
    case Op::Ldmatrix: case Op::Mma: case Op::Shfl: case Op::Wgmma:
      t.state = State::Warp;
      executed += count;
      return true;
    case Op::Bra:
      t.pc = uint32_t(o[0].imm);
      continue;
    case Op::Ret:
      t.state = State::Exited;
      executed += count;
      return true;
    }
    ++t.pc;
  }
}

bool Block::ldmatrix(unsigned warp, const Inst &in) {
  // Lanes 8m..8m+7 give the addresses of the 8 rows (16 bytes each) of
  // matrix m. Lane l receives, of each matrix, row l/4 and columns
  // 2(l%4), 2(l%4)+1 (transposed: rows 2(l%4), 2(l%4)+1 of column l/4).
  uint16_t mat[4][8][8];
  for (unsigned m = 0; m < in.count; ++m)
    for (unsigned r = 0; r < 8; ++r) {
      Thread &src = threads[warp * 32 + m * 8 + r];
      uint64_t addr = uint64_t(in.ops[1].imm) +
                      (in.ops[1].reg >= 0 ? src.regs[in.ops[1].reg] : 0);
      char *p = address(src, in, in.space, addr, 16);
      if (!p || !sharedAccess(src, in, p, 16, /*write=*/false))
        return false;
      std::memcpy(mat[m][r], p, 16);
    }
  for (unsigned l = 0; l < 32; ++l) {
    Thread &t = threads[warp * 32 + l];
    unsigned row = l / 4, col = 2 * (l % 4);
    for (unsigned m = 0; m < in.count; ++m) {
      uint16_t lo = in.trans ? mat[m][col][row] : mat[m][row][col];
      uint16_t hi = in.trans ? mat[m][col + 1][row] : mat[m][row][col + 1];
      set(t, in.ops[0].elems[m], uint64_t(lo) | uint64_t(hi) << 16);
    }
  }
  return true;
}

bool Block::shfl(unsigned warp, const Inst &in) {
  // PTX ISA, shfl.sync: c packs the clamp value (bits 0-4) and the segment
  // mask (bits 8-12); a source lane outside the segment reads its own value.
  uint64_t a[32];
  for (unsigned l = 0; l < 32; ++l)
    a[l] = get(threads[warp * 32 + l], in.ops[1]);
  for (unsigned l = 0; l < 32; ++l) {
    Thread &t = threads[warp * 32 + l];
    if (uint32_t(get(t, in.ops[4])) != 0xffffffffu)
      return failWith(Failure::LaunchFailed, t, in,
                      "shfl.sync with a partial member mask");
    uint32_t b = uint32_t(get(t, in.ops[2])) & 31;
    uint32_t c = uint32_t(get(t, in.ops[3]));
    uint32_t clamp = c & 31, segmask = (c >> 8) & 31;
    uint32_t maxLane = (l & segmask) | (clamp & ~segmask);
    uint32_t minLane = l & segmask;
    int64_t j = 0;
    bool valid = false;
    switch (in.shfl) {
    case ShflMode::Up: j = int64_t(l) - b; valid = j >= int64_t(maxLane); break;
    case ShflMode::Down: j = l + b; valid = j <= int64_t(maxLane); break;
    case ShflMode::Bfly: j = l ^ b; valid = j <= int64_t(maxLane); break;
    case ShflMode::Idx:
      j = minLane | (b & ~segmask);
      valid = j <= int64_t(maxLane);
      break;
    }
    if (!valid)
      j = l;
    set(t, in.ops[0], a[j] & 0xffffffffu);
    if (in.ops.size() > 5)
      set(t, in.ops[5], valid);
  }
  return true;
}

void Block::mma(unsigned warp, const Inst &in) {
  // m16n8k16, A row-major 16x16, B column-major 16x8, C/D 16x8 f32.
  // Lane l: g = l/4, c = l%4. A reg j holds a[2j], a[2j+1]; element i is at
  // row g + 8*((i/2)%2), column 2c + i%2 + 8*(i/4). B reg j holds b[2j],
  // b[2j+1]: k = 2c + i%2 + 8*(i/2), n = g. C element i: row g + 8*(i/2),
  // column 2c + i%2.
  double A[16][16], B[16][8], C[16][8];
  auto half = [&](uint64_t reg, unsigned h) {
    uint16_t v = uint16_t(reg >> (16 * h));
    return in.srcType == Ty::BF16 ? double(bf16ToF32(v)) : double(f16ToF32(v));
  };
  const std::vector<Operand> &o = in.ops;
  for (unsigned l = 0; l < 32; ++l) {
    const Thread &t = threads[warp * 32 + l];
    unsigned g = l / 4, c = l % 4;
    for (unsigned i = 0; i < 8; ++i)
      A[g + 8 * ((i / 2) % 2)][2 * c + i % 2 + 8 * (i / 4)] =
          half(get(t, o[1].elems[i / 2]), i % 2);
    for (unsigned i = 0; i < 4; ++i)
      B[2 * c + i % 2 + 8 * (i / 2)][g] = half(get(t, o[2].elems[i / 2]), i % 2);
    for (unsigned i = 0; i < 4; ++i)
      C[g + 8 * (i / 2)][2 * c + i % 2] = f32(get(t, o[3].elems[i]));
  }
  for (unsigned l = 0; l < 32; ++l) {
    Thread &t = threads[warp * 32 + l];
    unsigned g = l / 4, c = l % 4;
    for (unsigned i = 0; i < 4; ++i) {
      unsigned r = g + 8 * (i / 2), n = 2 * c + i % 2;
      double sum = 0;
      for (unsigned kk = 0; kk < 16; ++kk)
        sum += A[r][kk] * B[kk][n];
      set(t, o[0].elems[i], bitsOf(float(sum + C[r][n])));
    }
  }
}

bool Block::touchesPending(const Thread &t, const Inst &in) const {
  if (in.op == Op::Wgmma || in.op == Op::WgWait || in.op == Op::WgCommit ||
      in.op == Op::WgFence)
    return false;
  const uint16_t *waits = awaiting.data() + (t.regs - regs.data());
  auto touches = [&](const Operand &o) {
    if (o.kind == Operand::Vec) {
      for (const Operand &e : o.elems)
        if (e.reg >= 0 && waits[e.reg])
          return true;
      return false;
    }
    return o.reg >= 0 && waits[o.reg] != 0;
  };
  if (in.pred >= 0 && waits[in.pred])
    return true;
  return std::any_of(in.ops.begin(), in.ops.end(), touches);
}

bool Block::wgCommitWait(Thread &t, const Inst &in) {
  std::vector<Snapshot> *group =
      t.linear % 128 == 0 ? &snapshots[t.linear / 128] : nullptr;
  if (in.op == Op::WgCommit) {
    ++t.wgGroups;
    for (PendingResult &r : t.wgPending)
      if (r.group == 0)
        r.group = t.wgGroups;
    if (group)
      for (Snapshot &sn : *group)
        if (sn.group == 0)
          sn.group = t.wgGroups;
    return true;
  }
  // wait_group N: all but the N most recent committed groups complete, in
  // issue order (a register written by several takes the last value).
  uint64_t keep = uint64_t(in.ops[0].imm);
  uint32_t upTo = keep >= t.wgGroups ? 0 : t.wgGroups - uint32_t(keep);
  uint16_t *waits = awaiting.data() + (t.regs - regs.data());
  size_t kept = 0;
  for (PendingResult &r : t.wgPending) {
    if (r.group != 0 && r.group <= upTo) {
      t.regs[r.reg] = r.value;
      --waits[r.reg];
    } else {
      t.wgPending[kept++] = r;
    }
  }
  t.wgPending.resize(kept);
  if (!group)
    return true;
  // The operands it read must not have changed while it was in flight
  // (the hardware may read them at any time until it completes).
  size_t left = 0;
  for (Snapshot &sn : *group) {
    if (sn.group == 0 || sn.group > upTo) {
      (*group)[left++] = std::move(sn);
      continue;
    }
    for (auto [at, byte] : sn.bytes)
      if (uint8_t(shared[at]) != byte) {
        std::ostringstream os;
        os << "shared byte " << at << ", an operand of the wgmma.mma_async "
           << "at PTX line " << sn.line
           << ", changed before the wgmma.wait_group that completes it";
        return failWith(Failure::LaunchFailed, t, in, os.str());
      }
  }
  group->resize(left);
  return true;
}

namespace {
/// A shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format").
struct Descriptor {
  uint32_t start, leading, stride, baseOffset;
  /// Swizzle width in bytes (128, 64, 32), or 0 for none (interleave).
  uint32_t swizzle;
  explicit Descriptor(uint64_t d)
      : start(uint32_t(d & 0x3FFF) << 4),
        leading(uint32_t((d >> 16) & 0x3FFF) << 4),
        stride(uint32_t((d >> 32) & 0x3FFF) << 4),
        baseOffset(uint32_t(d >> 49) & 7),
        swizzle(std::array<uint32_t, 4>{0, 128, 64, 32}[d >> 62]) {}

  /// The shared-memory byte of element (x, k) of a 16-bit matrix whose
  /// other dimension (M or N) is x: the canonical layouts of the PTX ISA's
  /// "Shared Memory Matrix Layout", in units of 16-byte chunks T = W / 16
  /// per swizzled row (CUTLASS writes them the same way):
  ///   K-major,  swizzled:   ((8, m), (T, 2)) : ((W, SBO), (2, 16)) bytes
  ///   K-major,  interleave: ((8, m), 2) chunks: ((16, SBO), LBO)
  ///   MN-major, swizzled:   chunk q = x / 8: ((T, n), (8, k)) :
  ///                         ((16, LBO), (W, SBO))
  ///   MN-major, interleave: (q, (8, k)) : (SBO, (16, LBO))
  /// then, swizzled, address bits [4, 4 + log2 T) ^= bits [7, 7 + log2 T).
  uint32_t element(bool mnMajor, uint32_t x, uint32_t k) const {
    uint32_t at;
    if (!mnMajor) {
      uint32_t chunk = k / 8, within = (k % 8) * 2;
      at = swizzle ? start + (x / 8) * stride + (x % 8) * swizzle +
                         chunk * 16 + within
                   : start + (x / 8) * stride + (x % 8) * 16 +
                         chunk * leading + within;
    } else {
      uint32_t q = x / 8, within = (x % 8) * 2;
      if (swizzle) {
        uint32_t t = swizzle / 16;
        at = start + (q % t) * 16 + (q / t) * leading + (k % 8) * swizzle +
             (k / 8) * stride + within;
      } else {
        at = start + q * stride + (k % 8) * 16 + (k / 8) * leading + within;
      }
    }
    if (swizzle) {
      uint32_t mask = swizzle / 16 - 1;
      at ^= ((at >> 7) & mask) << 4;
    }
    return at;
  }
};
} // namespace

bool Block::wgmma(unsigned group, const Inst &in) {
  // D (64 x N, f32) = A (64 x 16) B (16 x N) + D, A and B from shared
  // memory. Thread t of the warpgroup (warp w = t / 32, lane l) holds in
  // register i: row 16 w + l / 4 + 8 ((i / 2) % 2), column 8 (i / 4) +
  // 2 (l % 4) + i % 2 - the m16n8 accumulator layout, N / 8 times.
  const std::vector<Operand> &o = in.ops;
  Thread &lead = threads[group * 128];
  uint64_t da = get(lead, o[1]), db = get(lead, o[2]);
  for (unsigned i = 1; i < 128; ++i) {
    const Thread &t = threads[group * 128 + i];
    if (get(t, o[1]) != da || get(t, o[2]) != db)
      return failWith(Failure::LaunchFailed, t, in,
                      "wgmma.mma_async descriptors differ across the "
                      "warpgroup");
  }
  Descriptor descA(da), descB(db);
  if (descA.baseOffset || descB.baseOffset)
    return failWith(Failure::LaunchFailed, lead, in,
                    "a matrix descriptor with a base offset is not supported");
  bool scaleD = get(lead, o[3]) & 1;
  double scaleA = int32_t(o[4].imm) < 0 ? -1 : 1;
  double scaleB = int32_t(o[5].imm) < 0 ? -1 : 1;
  bool transA = o[6].imm != 0, transB = o[7].imm != 0;
  unsigned n = in.wgN;
  Snapshot snap{0, in.line, {}};
  auto load = [&](uint32_t at, double &value) {
    if (at + 2 > shared.size() || at % 2) {
      std::ostringstream os;
      os << "wgmma.mma_async operand at shared offset " << at
         << " lies outside the " << shared.size() << " bytes of the block";
      return failWith(Failure::IllegalAddress, lead, in, os.str());
    }
    for (uint32_t b = at; b < at + 2; ++b)
      if (uint32_t w = unfencedBy[b]) {
        std::ostringstream os;
        os << "wgmma.mma_async reads shared byte " << b << ", written by "
           << "thread " << w - 1 << " without a fence.proxy.async since";
        return failWith(Failure::LaunchFailed, lead, in, os.str());
      }
    if (!sharedAccess(lead, in, shared.data() + at, 2, /*write=*/false))
      return false;
    uint16_t h;
    std::memcpy(&h, shared.data() + at, 2);
    snap.bytes.emplace_back(at, uint8_t(h));
    snap.bytes.emplace_back(at + 1, uint8_t(h >> 8));
    value = in.srcType == Ty::BF16 ? double(bf16ToF32(h)) : double(f16ToF32(h));
    return true;
  };
  std::vector<double> A(64 * 16), B(16 * size_t(n));
  for (uint32_t m = 0; m < 64; ++m)
    for (uint32_t k = 0; k < 16; ++k)
      if (!load(descA.element(transA, m, k), A[m * 16 + k]))
        return false;
  for (uint32_t k = 0; k < 16; ++k)
    for (uint32_t c = 0; c < n; ++c)
      if (!load(descB.element(transB, c, k), B[k * n + c]))
        return false;
  snapshots[group].push_back(std::move(snap));
  for (unsigned i = 0; i < 128; ++i) {
    Thread &t = threads[group * 128 + i];
    uint16_t *waits = awaiting.data() + (t.regs - regs.data());
    unsigned w = i / 32, l = i % 32;
    for (unsigned r = 0; r < n / 2; ++r) {
      unsigned row = 16 * w + l / 4 + 8 * ((r / 2) % 2);
      unsigned col = 8 * (r / 4) + 2 * (l % 4) + r % 2;
      int32_t reg = o[0].elems[r].reg;
      // The input is the latest value this register will have: that of
      // an in-flight wgmma's result, when there is one.
      uint64_t in = t.regs[reg];
      for (const PendingResult &p : t.wgPending)
        if (p.reg == reg)
          in = p.value;
      double sum = 0;
      for (unsigned k = 0; k < 16; ++k)
        sum += A[row * 16 + k] * B[k * n + col];
      sum *= scaleA * scaleB;
      if (scaleD)
        sum += double(f32(in));
      t.wgPending.push_back({reg, uint32_t(bitsOf(float(sum))), 0});
      ++waits[reg];
    }
  }
  return true;
}

Block::MBarrier *Block::mbarrierAt(const Thread &t, const Inst &in,
                                   const Operand &o, uint32_t &at,
                                   bool init) {
  uint64_t addr = uint64_t(o.imm) + (o.reg >= 0 ? t.regs[o.reg] : 0);
  if (in.space == Space::Generic) {
    if (addr < kSharedWindow || addr >= kSharedWindow + kWindowSize) {
      std::ostringstream os;
      os << "an mbarrier at generic address 0x" << std::hex << addr
         << ", outside shared memory";
      failWith(Failure::IllegalAddress, t, in, os.str());
      return nullptr;
    }
    addr -= kSharedWindow;
  }
  if (!address(t, in, Space::Shared, addr, 8))
    return nullptr;
  at = uint32_t(addr);
  if (init)
    return &mbarriers[at];
  auto it = mbarriers.find(at);
  if (it == mbarriers.end()) {
    failWith(Failure::LaunchFailed, t, in,
             "no mbarrier.init initialized an mbarrier at shared offset " +
                 std::to_string(at));
    return nullptr;
  }
  return &it->second;
}

void Block::settle(uint32_t at, MBarrier &b) {
  if (b.pending != 0 || b.tx != 0)
    return;
  ++b.phase;
  b.pending = b.count;
  for (Thread &t : threads)
    if (t.state == State::Sleep && t.sleepsOn == at)
      t.state = State::Ready;
}

bool Block::mbarrierOp(Thread &t, const Inst &in) {
  const std::vector<Operand> &o = in.ops;
  bool arrive = in.op == Op::MbarArrive || in.op == Op::MbarArriveExpectTx;
  uint32_t at;
  MBarrier *b = mbarrierAt(t, in, o[arrive ? 1 : 0], at,
                           /*init=*/in.op == Op::MbarInit);
  if (!b)
    return false;
  switch (in.op) {
  case Op::MbarInit: {
    uint32_t count = uint32_t(get(t, o[1]));
    if (count == 0 || count >= (1u << 20))
      return failWith(Failure::LaunchFailed, t, in,
                      "mbarrier.init expects " + std::to_string(count) +
                          " arrivals, not in [1, 2^20 - 1]");
    *b = {count, count, 0, 0};
    return true;
  }
  case Op::MbarInval:
    mbarriers.erase(at);
    return true;
  case Op::MbarExpectTx:
    b->tx += uint32_t(get(t, o[1]));
    return true;
  case Op::MbarCompleteTx:
    b->tx -= uint32_t(get(t, o[1]));
    settle(at, *b);
    return true;
  default:
    break;
  }
  uint32_t arrivals = in.op == Op::MbarArrive && o.size() > 2
                          ? uint32_t(get(t, o[2]))
                          : 1;
  if (arrivals == 0 || arrivals > b->pending) {
    std::ostringstream os;
    os << "an arrival count of " << arrivals
       << " on the mbarrier at shared offset " << at << ", whose phase "
       << b->phase << " expects " << b->pending << " more arrivals ("
       << b->count << " a phase)";
    return failWith(Failure::LaunchFailed, t, in, os.str());
  }
  if (in.op == Op::MbarArriveExpectTx)
    b->tx += uint32_t(get(t, o[2]));
  // The state it returns is opaque; the phase arrived at will do.
  set(t, o[0], b->phase);
  b->pending -= arrivals;
  settle(at, *b);
  return true;
}

const char *Block::globalBytes(const Thread &t, const Inst &in,
                               uint64_t addr, uint64_t bytes) {
  char *p = address(t, in, Space::Global, addr, 1);
  if (!p)
    return nullptr;
  if (addr + bytes > cached.base + cached.size) {
    failWith(Failure::IllegalAddress, t, in,
             pastAllocation(addr, bytes, cached));
    return nullptr;
  }
  return p;
}

bool Block::issueBulk(Thread &t, const Inst &in) {
  // cp.async.bulk.tensor.Nd [dst], [map, {c0, ...}], [mbar] (PTX ISA,
  // "Tensor copy"; the CUDA programming guide's TMA swizzle patterns).
  const std::vector<Operand> &o = in.ops;
  auto fail = [&](Failure f, const std::string &what) {
    return failWith(f, t, in, what);
  };
  uint64_t mapAt = uint64_t(o[1].imm) + (o[1].reg >= 0 ? t.regs[o[1].reg] : 0);
  std::ostringstream os;
  if (mapAt % 64) {
    os << "the tensor map at 0x" << std::hex << mapAt
       << " is not 64-byte aligned";
    return fail(Failure::MisalignedAddress, os.str());
  }
  uint64_t words[16];
  for (unsigned half = 0; half < 2; ++half) {
    char *p = address(t, in, Space::Global, mapAt + 64 * half, 64);
    if (!p)
      return false;
    std::memcpy(words + 8 * half, p, 64);
  }
  TensorMap map;
  if (!map.decode(words)) {
    os << "the 128 bytes at 0x" << std::hex << mapAt
       << " are not a tensor map that cuTensorMapEncodeTiled wrote";
    return fail(Failure::LaunchFailed, os.str());
  }
  if (map.rank != in.count) {
    os << "a " << unsigned(in.count) << "d copy through a tensor map of rank "
       << map.rank;
    return fail(Failure::LaunchFailed, os.str());
  }
  int64_t coord[5];
  for (unsigned d = 0; d < map.rank; ++d)
    coord[d] = int32_t(get(t, o[2].elems[d]));
  uint64_t rowBytes = uint64_t(map.box[0]) * map.elemBytes, rows = 1;
  for (unsigned d = 1; d < map.rank; ++d)
    rows *= map.box[d];
  uint64_t bytes = rowBytes * rows;
  uint64_t dst = uint64_t(o[0].imm) + (o[0].reg >= 0 ? t.regs[o[0].reg] : 0);
  if (dst + bytes > shared.size()) {
    os << "the box's " << bytes << " bytes at shared offset " << int64_t(dst)
       << " lie outside the " << shared.size() << " bytes of the block";
    return fail(Failure::IllegalAddress, os.str());
  }
  // A swizzle permutes the 16-byte chunks of each row by the row's shared
  // address, so its pattern (8 rows) must start on a boundary.
  uint64_t alignment = map.swizzle ? 8 * map.swizzle : 128;
  if (dst % alignment) {
    os << "the destination, shared offset " << dst << ", is not "
       << alignment << "-byte aligned, as "
       << (map.swizzle ? "a box swizzled by " + std::to_string(map.swizzle) +
                             " bytes"
                       : std::string("a box"))
       << " must be";
    return fail(Failure::MisalignedAddress, os.str());
  }
  if (map.swizzle && rowBytes != map.swizzle) {
    os << "rows of " << rowBytes << " bytes under a " << map.swizzle
       << "-byte swizzle: the interpreter emulates swizzled rows of exactly "
          "the swizzle's width only";
    return fail(Failure::LaunchFailed, os.str());
  }
  uint32_t bar;
  if (!mbarrierAt(t, in, o[3], bar))
    return false;
  for (uint64_t i = dst; i < dst + bytes; ++i)
    if (uint32_t c = bulkDst[i]) {
      os << "writes shared byte " << i << ", which the cp.async.bulk.tensor "
         << "at PTX line " << bulk[c - 1].in->line
         << " still in flight writes too";
      return fail(Failure::LaunchFailed, os.str());
    }
  BulkCopy copy{uint32_t(dst), bar, t.linear, &in,
                std::vector<char>(bytes, 0)};
  // Row r of the box (dimensions 1.. flattened, 1 fastest) holds elements
  // coord[0] .. coord[0] + box[0] - 1 of dimension 0; those outside the
  // tensor are zero.
  for (uint64_t r = 0; r < rows; ++r) {
    uint64_t offset = 0, rest = r;
    bool inside = true;
    for (unsigned d = 1; d < map.rank; ++d) {
      int64_t c = coord[d] + int64_t(rest % map.box[d]);
      rest /= map.box[d];
      if (c < 0 || uint64_t(c) >= map.dims[d])
        inside = false;
      else
        offset += uint64_t(c) * map.strides[d];
    }
    int64_t lo = std::max<int64_t>(coord[0], 0);
    int64_t hi = std::min<int64_t>(coord[0] + map.box[0],
                                   int64_t(map.dims[0]));
    if (!inside || lo >= hi)
      continue;
    uint64_t n = uint64_t(hi - lo) * map.elemBytes;
    const char *src = globalBytes(
        t, in, map.address + offset + uint64_t(lo) * map.elemBytes, n);
    if (!src)
      return false;
    uint64_t first = dst + r * rowBytes + uint64_t(lo - coord[0]) * map.elemBytes;
    for (uint64_t b = 0; b < n; ++b) {
      // Swizzled: address bits [4, 4 + log2(W / 16)) ^= bits [7, ...).
      uint64_t at = first + b;
      if (map.swizzle)
        at ^= ((at >> 7) & (map.swizzle / 16 - 1)) << 4;
      copy.data[at - dst] = src[b];
    }
  }
  for (uint64_t i = dst; i < dst + bytes; ++i)
    bulkDst[i] = uint32_t(bulk.size() + 1);
  bulk.push_back(std::move(copy));
  return true;
}

bool Block::landBulk() {
  // The bytes that in-flight wgmmas read must not change under them.
  bool reading = false;
  for (const std::vector<Snapshot> &group : snapshots)
    for (const Snapshot &sn : group)
      for (auto [at, byte] : sn.bytes) {
        wgmmaReads[at] = sn.line;
        reading = true;
      }
  for (const BulkCopy &c : bulk) {
    const Thread &t = threads[c.thread];
    uint32_t end = c.dst + uint32_t(c.data.size());
    for (uint32_t i = c.dst; reading && i < end; ++i)
      if (int line = wgmmaReads[i]) {
        std::ostringstream os;
        os << "lands on shared byte " << i << ", which the "
           << "wgmma.mma_async at PTX line " << line
           << " still in flight reads: retire it with wgmma.wait_group "
              "before releasing its buffer";
        return failWith(Failure::LaunchFailed, t, *c.in, os.str());
      }
    auto it = mbarriers.lower_bound(c.dst >= 7 ? c.dst - 7 : 0);
    if (it != mbarriers.end() && it->first < end)
      return failWith(Failure::LaunchFailed, t, *c.in,
                      "lands on the mbarrier at shared offset " +
                          std::to_string(it->first));
    auto bar = mbarriers.find(c.mbarrier);
    if (bar == mbarriers.end())
      return failWith(Failure::LaunchFailed, t, *c.in,
                      "the mbarrier at shared offset " +
                          std::to_string(c.mbarrier) +
                          " that it completes was invalidated while it was "
                          "in flight");
    std::memcpy(shared.data() + c.dst, c.data.data(), c.data.size());
    for (uint32_t i = c.dst; i < end; ++i) {
      bulkDst[i] = 0;
      // Written by the async proxy, ordered by the mbarrier: neither a
      // thread's write for the race check nor one that wants a
      // fence.proxy.async.
      writeEpoch[i] = 0;
      if (!unfencedBy.empty())
        unfencedBy[i] = 0;
    }
    bar->second.tx -= int64_t(c.data.size());
    settle(c.mbarrier, bar->second);
  }
  bulk.clear();
  for (const std::vector<Snapshot> &group : snapshots)
    for (const Snapshot &sn : group)
      for (auto [at, byte] : sn.bytes)
        wgmmaReads[at] = 0;
  return true;
}

/// The instruction that waits at a barrier with reduction `r`.
const char *barrierName(Reduce r) {
  switch (r) {
  case Reduce::None: return "bar.sync";
  case Reduce::Popc: return "bar.red.popc";
  case Reduce::And: return "bar.red.and";
  case Reduce::Or: return "bar.red.or";
  }
  return "";
}

bool Block::releaseBarriers(bool &released) {
  unsigned live = 0, arrived[16] = {}, votes[16] = {};
  const Thread *first[16] = {};
  for (const Thread &t : threads) {
    live += t.state != State::Exited;
    if (t.state != State::Barrier)
      continue;
    if (!first[t.barrier]) {
      first[t.barrier] = &t;
    } else if (first[t.barrier]->reduce != t.reduce) {
      // The PTX ISA leaves it unpredictable.
      std::ostringstream os;
      os << barrierName(t.reduce) << " at barrier " << t.barrier
         << ", while thread " << first[t.barrier]->linear << " waits there at "
         << barrierName(first[t.barrier]->reduce)
         << ": the threads of a barrier must all reduce alike, or none";
      return failWith(Failure::LaunchFailed, t, k.code[t.pc], os.str());
    } else if (first[t.barrier]->barrierCount != t.barrierCount) {
      std::ostringstream os;
      os << barrierName(t.reduce) << " " << t.barrier << " for "
         << (t.barrierCount ? std::to_string(t.barrierCount) : "all")
         << " threads, while thread " << first[t.barrier]->linear
         << " waits there for "
         << (first[t.barrier]->barrierCount
                 ? std::to_string(first[t.barrier]->barrierCount)
                 : "all");
      return failWith(Failure::LaunchFailed, t, k.code[t.pc], os.str());
    }
    ++arrived[t.barrier];
    votes[t.barrier] += t.vote;
  }
  for (unsigned id = 0; id < 16; ++id) {
    if (!first[id])
      continue;
    unsigned expected = first[id]->barrierCount ? first[id]->barrierCount
                                                : live;
    if (arrived[id] > expected)
      return failWith(Failure::LaunchFailed, *first[id], k.code[first[id]->pc],
                      std::to_string(arrived[id]) + " threads at barrier " +
                          std::to_string(id) + ", which expects " +
                          std::to_string(expected));
    if (arrived[id] < expected)
      continue;
    Reduce reduce = first[id]->reduce;
    uint64_t value = reduce == Reduce::Popc ? votes[id]
                     : reduce == Reduce::Or ? votes[id] > 0
                                            : votes[id] == arrived[id];
    for (Thread &t : threads)
      if (t.state == State::Barrier && t.barrier == id) {
        if (reduce != Reduce::None)
          set(t, k.code[t.pc].ops[0], value);
        t.state = State::Ready;
        ++t.pc;
      }
    released = true;
  }
  return true;
}

bool Block::deadlock() {
  for (const Thread &t : threads) {
    if (t.state != State::Sleep)
      continue;
    const Inst &in = k.code[t.pc];
    const MBarrier &b = mbarriers[t.sleepsOn];
    std::ostringstream os;
    os << "deadlock: mbarrier.try_wait.parity waits for phase "
       << b.phase << " (parity " << (get(t, in.ops[2]) & 1)
       << ") of the mbarrier at shared offset " << t.sleepsOn
       << " to complete, and nothing can complete it: it awaits "
       << b.pending << " of " << b.count << " arrivals and " << b.tx
       << " transaction bytes";
    return failWith(Failure::LaunchFailed, t, in, os.str());
  }
  for (const Thread &t : threads)
    if (t.state == State::Warp)
      return failWith(Failure::LaunchFailed, t, k.code[t.pc],
                      "deadlock: the threads of its warp are not all at "
                      "this instruction");
  unsigned live = 0, arrived[16] = {};
  for (const Thread &t : threads) {
    live += t.state != State::Exited;
    arrived[t.barrier] += t.state == State::Barrier;
  }
  for (const Thread &t : threads)
    if (t.state == State::Barrier) {
      std::ostringstream os;
      os << "deadlock: barrier " << t.barrier << " waits for "
         << (t.barrierCount ? t.barrierCount : live) << " threads, and "
         << arrived[t.barrier] << " arrived";
      return failWith(Failure::LaunchFailed, t, k.code[t.pc], os.str());
    }
  return failWith(Failure::LaunchFailed, threads[0], k.code[threads[0].pc],
                  "deadlock");
}

bool Block::warpStep(unsigned warp) {
  unsigned first = warp * 32, last = std::min<unsigned>(first + 32,
                                                        unsigned(threads.size()));
  uint32_t pc = UINT32_MAX;
  for (unsigned l = first; l < last; ++l) {
    const Thread &t = threads[l];
    if (t.state != State::Warp)
      return false;
    if (pc != UINT32_MAX && t.pc != pc)
      return false;
    pc = t.pc;
  }
  const Inst &in = k.code[pc];
  if (last - first != 32) {
    failWith(Failure::LaunchFailed, threads[first], in,
             "a warp-wide instruction in a warp of fewer than 32 threads");
    return false;
  }
  if (in.op == Op::Wgmma) {
    // Warpgroup-wide: the first warp of the group runs it once all four
    // are there.
    if (warp % 4)
      return false;
    if (threads.size() < size_t(first) + 128) {
      failWith(Failure::LaunchFailed, threads[first], in,
               "wgmma.mma_async in a block without whole warpgroups");
      return false;
    }
    for (unsigned l = first + 32; l < first + 128; ++l)
      if (threads[l].state != State::Warp || threads[l].pc != pc)
        return false;
    if (!wgmma(warp / 4, in))
      return false;
    for (unsigned l = first; l < first + 128; ++l) {
      threads[l].state = State::Ready;
      ++threads[l].pc;
    }
    return true;
  }
  if (in.op == Op::Ldmatrix) {
    if (!ldmatrix(warp, in))
      return false;
  } else if (in.op == Op::Shfl) {
    if (!shfl(warp, in))
      return false;
  } else {
    mma(warp, in);
  }
  for (unsigned l = first; l < last; ++l) {
    threads[l].state = State::Ready;
    ++threads[l].pc;
  }
  return true;
}

bool Block::run(const unsigned id[3], LaunchResult &res) {
  result = &res;
  std::copy(id, id + 3, ctaid);
  linearId = id[0] + uint64_t(grid.x) * (id[1] + uint64_t(grid.y) * id[2]);
  std::fill(regs.begin(), regs.end(), 0);
  std::fill(shared.begin(), shared.end(), 0);
  for (auto *v : {&writeEpoch, &readEpoch, &atomicEpoch})
    std::fill(v->begin(), v->end(), 0);
  epoch = 1;
  mbarriers.clear();
  bulk.clear();
  std::fill(bulkDst.begin(), bulkDst.end(), 0);
  std::fill(wgmmaReads.begin(), wgmmaReads.end(), 0);
  for (Thread &t : threads) {
    t.pc = 0;
    t.state = State::Ready;
    t.barrier = t.barrierCount = 0;
    t.pending.clear();
    t.groups = 0;
    t.wgPending.clear();
    t.wgGroups = 0;
    t.unfenced.clear();
  }
  std::fill(unfencedBy.begin(), unfencedBy.end(), 0);
  std::fill(awaiting.begin(), awaiting.end(), 0);
  for (std::vector<Snapshot> &sn : snapshots)
    sn.clear();
  unsigned warps = unsigned(threads.size() + 31) / 32;
  for (;;) {
    for (Thread &t : threads)
      if (t.state == State::Ready && !runThread(t))
        return false;
    bool done = true, progress = false;
    for (unsigned w = 0; w < warps; ++w) {
      if (warpStep(w))
        progress = true;
      else if (res.failure != Failure::None)
        return false;
    }
    // An arrival on an mbarrier may have woken a thread that the loop
    // above had passed.
    for (Thread &t : threads) {
      done &= t.state == State::Exited;
      progress |= t.state == State::Ready;
    }
    if (done)
      return true;
    if (progress)
      continue;
    // No thread runs: release the barriers that all their threads reached;
    // failing that, land the bulk copies in flight, as late as they may.
    bool released = false;
    if (!releaseBarriers(released))
      return false;
    if (released) {
      ++epoch;
      continue;
    }
    if (bulk.empty())
      return deadlock();
    if (!landBulk())
      return false;
  }
}

} // namespace

Module *parse(const std::string &text, std::string &error) {
  auto m = std::make_unique<Module>();
  Parser p(*m, error);
  if (!p.run(text))
    return nullptr;
  return m.release();
}

void destroy(Module *module) { delete module; }

bool hasKernel(const Module &module, const std::string &name) {
  for (const Kernel &k : module.kernels)
    if (k.name == name)
      return true;
  return false;
}

std::string encodeTiledTensorMap(void *tensorMap, unsigned dataType,
                                 unsigned rank, const void *globalAddress,
                                 const uint64_t *globalDim,
                                 const uint64_t *globalStrides,
                                 const uint32_t *boxDim,
                                 const uint32_t *elementStrides,
                                 unsigned interleave, unsigned swizzle,
                                 unsigned l2Promotion, unsigned oobFill) {
  std::ostringstream why;
  auto fake = [](const std::string &what) {
    return what + ": not supported by the fake driver";
  };
  auto address = reinterpret_cast<uintptr_t>(globalAddress);
  unsigned elem = tensorElementBytes(dataType);
  if (!tensorMap || reinterpret_cast<uintptr_t>(tensorMap) % 64)
    return "tensorMap is not a 64-byte aligned pointer";
  if (dataType > 15)
    return "unknown tensorDataType " + std::to_string(dataType);
  if (!elem)
    return fake("packed tensorDataType " + std::to_string(dataType));
  if (rank < 1 || rank > 5)
    return "tensorRank " + std::to_string(rank) + " is not in [1, 5]";
  if (!globalAddress || !globalDim || (rank > 1 && !globalStrides) ||
      !boxDim || !elementStrides)
    return "a null globalAddress, globalDim, globalStrides, boxDim or "
           "elementStrides";
  if (interleave > 2)
    return "unknown interleave " + std::to_string(interleave);
  if (interleave)
    return fake("an interleaved layout");
  if (address % 16) {
    why << "globalAddress 0x" << std::hex << address
        << " is not 16-byte aligned";
    return why.str();
  }
  for (unsigned d = 0; d < rank; ++d)
    if (globalDim[d] == 0 || globalDim[d] > (uint64_t(1) << 32))
      return "globalDim[" + std::to_string(d) + "] = " +
             std::to_string(globalDim[d]) + " is not in [1, 2^32]";
  for (unsigned d = 0; d + 1 < rank; ++d)
    if (globalStrides[d] % 16 || globalStrides[d] >= (uint64_t(1) << 40))
      return "globalStrides[" + std::to_string(d) + "] = " +
             std::to_string(globalStrides[d]) +
             " bytes is not a multiple of 16 below 2^40";
  for (unsigned d = 0; d < rank; ++d)
    if (boxDim[d] == 0 || boxDim[d] > 256)
      return "boxDim[" + std::to_string(d) + "] = " +
             std::to_string(boxDim[d]) + " is not in [1, 256]";
  uint64_t innerBytes = uint64_t(boxDim[0]) * elem;
  if (innerBytes % 16)
    return "the box's inner dimension, " + std::to_string(innerBytes) +
           " bytes, is not a multiple of 16";
  for (unsigned d = 0; d < rank; ++d) {
    if (elementStrides[d] == 0 || elementStrides[d] > 8)
      return "elementStrides[" + std::to_string(d) + "] = " +
             std::to_string(elementStrides[d]) + " is not in [1, 8]";
    // Dimension 0's is ignored without interleave.
    if (d > 0 && elementStrides[d] != 1)
      return fake("elementStrides[" + std::to_string(d) + "] = " +
                  std::to_string(elementStrides[d]));
  }
  if (swizzle > 6)
    return "unknown swizzle " + std::to_string(swizzle);
  if (swizzle >= std::size(kSwizzleSpan))
    return fake("a 128-byte swizzle of 32- or 64-byte atoms");
  if (uint32_t span = kSwizzleSpan[swizzle]; span && innerBytes > span)
    return "the box's inner dimension, " + std::to_string(innerBytes) +
           " bytes, is wider than the " + std::to_string(span) +
           "-byte swizzle";
  if (l2Promotion > 3)
    return "unknown l2Promotion " + std::to_string(l2Promotion);
  if (oobFill > 1)
    return "unknown oobFill " + std::to_string(oobFill);
  if (oobFill)
    return fake("the NaN out-of-bounds fill");
  uint64_t w[16] = {};
  w[0] = kTensorMapMagic;
  w[1] = dataType | elem << 8 | rank << 16 | swizzle << 24 |
         uint64_t(l2Promotion) << 32;
  w[2] = address;
  for (unsigned d = 0; d < rank; ++d) {
    w[3 + d] = globalDim[d];
    if (d + 1 < rank)
      w[8 + d] = globalStrides[d];
    w[12 + d / 4] |= uint64_t(boxDim[d]) << (16 * (d % 4));
  }
  std::memcpy(tensorMap, w, sizeof(w));
  return "";
}

LaunchResult launch(const Module &module, const std::string &name, Dim3 grid,
                    Dim3 block, unsigned dynamicShared, void **params,
                    const Resolver &resolve, unsigned workers,
                    bool checkWrites) {
  LaunchResult result;
  const Kernel *k = nullptr;
  for (const Kernel &c : module.kernels)
    if (c.name == name)
      k = &c;
  if (!k) {
    result.failure = Failure::LaunchFailed;
    result.message = "no kernel " + name;
    return result;
  }
  std::vector<char> paramBuf(k->paramBytes + 16);
  for (size_t i = 0; i < k->params.size(); ++i)
    std::memcpy(paramBuf.data() + k->params[i].offset, params[i],
                k->params[i].size);
  unsigned sharedBytes = k->dynamicSharedOffset + dynamicShared;
  uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  if (checkWrites && blocks >= uint64_t(1) << 47) {
    result.failure = Failure::LaunchFailed;
    result.message = "kernel " + name + ": " + std::to_string(blocks) +
                     " blocks, more than the check of stores tells apart";
    return result;
  }
  workers = unsigned(std::max<uint64_t>(1, std::min<uint64_t>(workers, blocks)));
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mutex;
  std::atomic<uint64_t> executed{0};
  // Cleared with each launch: only the blocks of one launch race.
  std::unique_ptr<WriteCheck> writes;
  if (checkWrites)
    writes = std::make_unique<WriteCheck>();
  auto work = [&] {
    Block b(module, *k, grid, block, sharedBytes, paramBuf.data(), resolve,
            writes.get());
    LaunchResult local;
    for (uint64_t id; !failed && (id = next++) < blocks;) {
      unsigned ids[3] = {unsigned(id % grid.x), unsigned(id / grid.x % grid.y),
                         unsigned(id / (uint64_t(grid.x) * grid.y))};
      if (!b.run(ids, local)) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!failed.exchange(true))
          result = local;
        break;
      }
    }
    executed += b.executed;
  };
  std::vector<std::thread> pool;
  for (unsigned w = 1; w < workers; ++w)
    pool.emplace_back(work);
  work();
  for (std::thread &t : pool)
    t.join();
  result.instructions = executed;
  return result;
}

} // namespace ptxsim
