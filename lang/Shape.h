//===- Shape.h - Symbolic tensor dimensions and dtypes ----------*- C++ -*-===//
//
// Tensor dimensions in Tessera are integer polynomials over named symbols:
// `B`, `T*384`, `T*2 + 1`. Polynomials have a canonical form, so two shapes
// are equal exactly when their printed forms are (`T*2 + 1`), and `reshape` can check that
// the element count is preserved (`B*T*384 == B*T*6*64`) without knowing B or
// T. Division is exact or refused: `T/2` is only allowed when every
// coefficient divides.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_SHAPE_H
#define TESSERA_LANG_SHAPE_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

/// An integer polynomial over named symbols in canonical form: terms sorted by
/// monomial, no zero coefficients, each monomial a sorted list of symbols.
/// Arithmetic that overflows int64 yields a poisoned value (`isValid()`
/// false) instead of wrapping around silently.
class DimExpr {
public:
  using Monomial = std::vector<std::string>;
  struct Term {
    Monomial symbols;
    int64_t coeff;
    bool operator==(const Term &o) const {
      return coeff == o.coeff && symbols == o.symbols;
    }
  };

  DimExpr() = default; // the constant 0
  static DimExpr constant(int64_t value);
  static DimExpr symbol(llvm::StringRef name);
  static DimExpr poisoned();

  bool isValid() const { return valid; }
  bool isConstant() const;
  std::optional<int64_t> getConstant() const;
  /// True if the polynomial is a single symbol with coefficient 1.
  std::optional<std::string> getSymbol() const;
  const std::vector<Term> &getTerms() const { return terms; }

  DimExpr operator+(const DimExpr &rhs) const;
  DimExpr operator-(const DimExpr &rhs) const;
  DimExpr operator*(const DimExpr &rhs) const;
  DimExpr operator-() const;
  /// Exact division by a constant or by a monomial; std::nullopt when the
  /// quotient is not a polynomial with integer coefficients.
  std::optional<DimExpr> divExact(const DimExpr &divisor) const;

  bool operator==(const DimExpr &rhs) const {
    return valid == rhs.valid && terms == rhs.terms;
  }
  bool operator!=(const DimExpr &rhs) const { return !(*this == rhs); }

  /// Replaces bound symbols by their values.
  DimExpr substitute(const llvm::StringMap<DimExpr> &bindings) const;
  /// Appends every symbol that occurs in the polynomial.
  void collectSymbols(std::vector<std::string> &out) const;

  /// Canonical text, e.g. `B*T*384`, `T*2 + 1`, `T - 1`.
  std::string str() const;

private:
  void normalize();
  std::vector<Term> terms;
  bool valid = true;
};

/// Element types of tensors.
enum class DType { F64, F32, F16, BF16, F8E4M3, F8E5M2, I64, I32, I16, I8, I4,
                   U8, U16, U32, Bool };

std::optional<DType> parseDType(llvm::StringRef name);
llvm::StringRef dtypeName(DType t);
bool isFloatDType(DType t);
bool isIntegerDType(DType t);
/// Storage size in bits (4 for i4).
unsigned dtypeBits(DType t);

/// A tensor type: element type and a (possibly symbolic) shape.
struct TensorType {
  DType dtype = DType::F32;
  std::vector<DimExpr> shape;

  size_t rank() const { return shape.size(); }
  bool operator==(const TensorType &o) const {
    return dtype == o.dtype && shape == o.shape;
  }
  bool operator!=(const TensorType &o) const { return !(*this == o); }
  /// Product of all dimensions.
  DimExpr numElements() const;
  /// `f32[B, T, 384]`.
  std::string str() const;
};

/// NumPy broadcasting of two shapes; std::nullopt when some pair of
/// dimensions differs and neither is the constant 1.
std::optional<std::vector<DimExpr>>
broadcastShapes(llvm::ArrayRef<DimExpr> a, llvm::ArrayRef<DimExpr> b);

} // namespace tessera

#endif // TESSERA_LANG_SHAPE_H
