//===- Shape.cpp - Symbolic tensor dimensions and dtypes ------------------===//

#include "lang/Shape.h"

#include "llvm/ADT/StringSwitch.h"

#include <algorithm>

using namespace llvm;

namespace tessera {

DimExpr DimExpr::constant(int64_t value) {
  DimExpr e;
  if (value != 0)
    e.terms.push_back({{}, value});
  return e;
}

DimExpr DimExpr::symbol(StringRef name) {
  DimExpr e;
  e.terms.push_back({{name.str()}, 1});
  return e;
}

DimExpr DimExpr::poisoned() {
  DimExpr e;
  e.valid = false;
  return e;
}

bool DimExpr::isConstant() const {
  return valid && (terms.empty() ||
                   (terms.size() == 1 && terms[0].symbols.empty()));
}

std::optional<int64_t> DimExpr::getConstant() const {
  if (!isConstant())
    return std::nullopt;
  return terms.empty() ? 0 : terms[0].coeff;
}

std::optional<std::string> DimExpr::getSymbol() const {
  if (valid && terms.size() == 1 && terms[0].coeff == 1 &&
      terms[0].symbols.size() == 1)
    return terms[0].symbols[0];
  return std::nullopt;
}

// Terms are ordered by decreasing degree, then lexicographically, so that
// `2*T + 1` prints with the constant last.
static bool termLess(const DimExpr::Term &a, const DimExpr::Term &b) {
  if (a.symbols.size() != b.symbols.size())
    return a.symbols.size() > b.symbols.size();
  return a.symbols < b.symbols;
}

void DimExpr::normalize() {
  if (!valid) {
    terms.clear();
    return;
  }
  for (Term &t : terms)
    std::sort(t.symbols.begin(), t.symbols.end());
  std::sort(terms.begin(), terms.end(), termLess);
  std::vector<Term> merged;
  for (Term &t : terms) {
    if (!merged.empty() && merged.back().symbols == t.symbols) {
      if (__builtin_add_overflow(merged.back().coeff, t.coeff,
                                 &merged.back().coeff)) {
        *this = poisoned();
        return;
      }
    } else {
      merged.push_back(std::move(t));
    }
  }
  merged.erase(std::remove_if(merged.begin(), merged.end(),
                              [](const Term &t) { return t.coeff == 0; }),
               merged.end());
  terms = std::move(merged);
}

DimExpr DimExpr::operator+(const DimExpr &rhs) const {
  if (!valid || !rhs.valid)
    return poisoned();
  DimExpr r = *this;
  r.terms.insert(r.terms.end(), rhs.terms.begin(), rhs.terms.end());
  r.normalize();
  return r;
}

DimExpr DimExpr::operator-() const {
  if (!valid)
    return poisoned();
  DimExpr r = *this;
  for (Term &t : r.terms) {
    if (t.coeff == INT64_MIN)
      return poisoned();
    t.coeff = -t.coeff;
  }
  return r;
}

DimExpr DimExpr::operator-(const DimExpr &rhs) const { return *this + (-rhs); }

DimExpr DimExpr::operator*(const DimExpr &rhs) const {
  if (!valid || !rhs.valid)
    return poisoned();
  DimExpr r;
  for (const Term &a : terms) {
    for (const Term &b : rhs.terms) {
      Term t;
      if (__builtin_mul_overflow(a.coeff, b.coeff, &t.coeff))
        return poisoned();
      t.symbols = a.symbols;
      t.symbols.insert(t.symbols.end(), b.symbols.begin(), b.symbols.end());
      r.terms.push_back(std::move(t));
    }
  }
  r.normalize();
  return r;
}

std::optional<DimExpr> DimExpr::divExact(const DimExpr &divisor) const {
  if (!valid || !divisor.valid || divisor.terms.size() != 1)
    return std::nullopt;
  const Term &d = divisor.terms[0];
  if (d.coeff == 0)
    return std::nullopt;
  DimExpr r;
  for (const Term &t : terms) {
    if (t.coeff % d.coeff != 0)
      return std::nullopt;
    if (d.coeff == -1 && t.coeff == INT64_MIN)
      return std::nullopt;
    Term q;
    q.coeff = t.coeff / d.coeff;
    // Remove each divisor symbol once from the (sorted) monomial.
    q.symbols = t.symbols;
    for (const std::string &s : d.symbols) {
      auto it = std::find(q.symbols.begin(), q.symbols.end(), s);
      if (it == q.symbols.end())
        return std::nullopt;
      q.symbols.erase(it);
    }
    r.terms.push_back(std::move(q));
  }
  r.normalize();
  return r;
}

DimExpr DimExpr::substitute(const StringMap<DimExpr> &bindings) const {
  if (!valid)
    return poisoned();
  DimExpr result;
  for (const Term &t : terms) {
    DimExpr term = constant(t.coeff);
    for (const std::string &s : t.symbols) {
      auto it = bindings.find(s);
      term = term * (it == bindings.end() ? symbol(s) : it->second);
    }
    result = result + term;
  }
  return result;
}

void DimExpr::collectSymbols(std::vector<std::string> &out) const {
  for (const Term &t : terms)
    for (const std::string &s : t.symbols)
      if (std::find(out.begin(), out.end(), s) == out.end())
        out.push_back(s);
}

std::string DimExpr::str() const {
  if (!valid)
    return "<overflow>";
  if (terms.empty())
    return "0";
  std::string out;
  bool first = true;
  for (const Term &t : terms) {
    int64_t c = t.coeff;
    if (first) {
      if (c < 0) {
        out += "-";
      }
    } else {
      out += c < 0 ? " - " : " + ";
    }
    uint64_t mag = c < 0 ? uint64_t(0) - uint64_t(c) : uint64_t(c);
    std::string factors;
    for (const std::string &s : t.symbols) {
      if (!factors.empty())
        factors += "*";
      factors += s;
    }
    if (factors.empty())
      out += std::to_string(mag);
    else if (mag == 1)
      out += factors;
    else
      out += factors + "*" + std::to_string(mag);
    first = false;
  }
  return out;
}

std::optional<DType> parseDType(StringRef name) {
  return StringSwitch<std::optional<DType>>(name)
      .Case("f64", DType::F64)
      .Case("f32", DType::F32)
      .Case("f16", DType::F16)
      .Case("bf16", DType::BF16)
      .Case("f8e4m3", DType::F8E4M3)
      .Case("f8e5m2", DType::F8E5M2)
      .Case("i64", DType::I64)
      .Case("i32", DType::I32)
      .Case("i16", DType::I16)
      .Case("i8", DType::I8)
      .Case("i4", DType::I4)
      .Case("u8", DType::U8)
      .Case("u16", DType::U16)
      .Case("u32", DType::U32)
      .Case("bool", DType::Bool)
      .Default(std::nullopt);
}

StringRef dtypeName(DType t) {
  switch (t) {
  case DType::F64: return "f64";
  case DType::F32: return "f32";
  case DType::F16: return "f16";
  case DType::BF16: return "bf16";
  case DType::F8E4M3: return "f8e4m3";
  case DType::F8E5M2: return "f8e5m2";
  case DType::I64: return "i64";
  case DType::I32: return "i32";
  case DType::I16: return "i16";
  case DType::I8: return "i8";
  case DType::I4: return "i4";
  case DType::U8: return "u8";
  case DType::U16: return "u16";
  case DType::U32: return "u32";
  case DType::Bool: return "bool";
  }
  return "?";
}

bool isFloatDType(DType t) {
  switch (t) {
  case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
  case DType::F8E4M3: case DType::F8E5M2:
    return true;
  default:
    return false;
  }
}

bool isIntegerDType(DType t) { return !isFloatDType(t) && t != DType::Bool; }

unsigned dtypeBits(DType t) {
  switch (t) {
  case DType::F64: case DType::I64: return 64;
  case DType::F32: case DType::I32: case DType::U32: return 32;
  case DType::F16: case DType::BF16: case DType::I16: case DType::U16:
    return 16;
  case DType::F8E4M3: case DType::F8E5M2: case DType::I8: case DType::U8:
  case DType::Bool:
    return 8;
  case DType::I4: return 4;
  }
  return 0;
}

DimExpr TensorType::numElements() const {
  DimExpr n = DimExpr::constant(1);
  for (const DimExpr &d : shape)
    n = n * d;
  return n;
}

std::string TensorType::str() const {
  std::string out = dtypeName(dtype).str() + "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      out += ", ";
    out += shape[i].str();
  }
  return out + "]";
}

std::optional<std::vector<DimExpr>> broadcastShapes(ArrayRef<DimExpr> a,
                                                    ArrayRef<DimExpr> b) {
  size_t n = std::max(a.size(), b.size());
  std::vector<DimExpr> out(n);
  DimExpr one = DimExpr::constant(1);
  for (size_t i = 0; i < n; ++i) {
    // Align from the right.
    const DimExpr *da = i < n - a.size() ? nullptr : &a[i - (n - a.size())];
    const DimExpr *db = i < n - b.size() ? nullptr : &b[i - (n - b.size())];
    if (!da || *da == one)
      out[i] = db ? *db : *da;
    else if (!db || *db == one || *da == *db)
      out[i] = *da;
    else
      return std::nullopt;
  }
  return out;
}

} // namespace tessera
