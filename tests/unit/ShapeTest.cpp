//===- ShapeTest.cpp - The symbolic dimension algebra ---------------------===//

#include "lang/Shape.h"

#include "gtest/gtest.h"

using namespace tessera;

namespace {

DimExpr sym(const char *s) { return DimExpr::symbol(s); }
DimExpr c(int64_t v) { return DimExpr::constant(v); }

TEST(DimExpr, CanonicalFormMakesEqualPolynomialsEqual) {
  // B*T*384 built in two different orders.
  DimExpr a = sym("B") * sym("T") * c(384);
  DimExpr b = c(6) * sym("T") * c(64) * sym("B");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.str(), "B*T*384");
  EXPECT_EQ((sym("T") + c(1) + sym("T")).str(), "T*2 + 1");
  EXPECT_EQ((sym("T") - c(1)).str(), "T - 1");
  EXPECT_EQ((sym("T") - sym("T")).str(), "0");
  EXPECT_TRUE((sym("T") - sym("T")).isConstant());
}

TEST(DimExpr, ConstantsFold) {
  EXPECT_EQ((c(3) * c(4) + c(2)).getConstant(), std::optional<int64_t>(14));
  EXPECT_FALSE((sym("B") * c(2)).getConstant());
  EXPECT_EQ(sym("B").getSymbol(), std::optional<std::string>("B"));
  EXPECT_FALSE((sym("B") * c(2)).getSymbol());
}

TEST(DimExpr, ExactDivision) {
  EXPECT_EQ(*(c(384).divExact(c(6))), c(64));
  EXPECT_FALSE(c(384).divExact(c(5)));
  EXPECT_EQ(*((sym("B") * sym("T") * c(384)).divExact(sym("T") * c(6))),
            sym("B") * c(64));
  EXPECT_FALSE((sym("T") + c(1)).divExact(c(2)));
  EXPECT_FALSE(sym("T").divExact(sym("B")));
  EXPECT_FALSE(c(4).divExact(c(0)));
}

TEST(DimExpr, OverflowPoisonsInsteadOfWrapping) {
  DimExpr big = c(INT64_MAX / 2 + 1);
  DimExpr r = big * c(2);
  EXPECT_FALSE(r.isValid());
  EXPECT_FALSE((r + c(1)).isValid());
  EXPECT_FALSE((c(INT64_MAX) + c(1)).isValid());
  EXPECT_EQ(r.str(), "<overflow>");
}

TEST(DimExpr, Substitute) {
  llvm::StringMap<DimExpr> b;
  b["T"] = c(256);
  EXPECT_EQ((sym("B") * sym("T")).substitute(b), sym("B") * c(256));
}

TEST(Broadcast, NumpyRulesWithSymbols) {
  std::vector<DimExpr> x{sym("B"), sym("T"), c(384)};
  std::vector<DimExpr> y{c(384)};
  auto r = broadcastShapes(x, y);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, x);
  std::vector<DimExpr> ones{c(1), sym("T"), c(1)};
  r = broadcastShapes(ones, x);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, x);
  std::vector<DimExpr> bad{sym("T"), c(256)};
  EXPECT_FALSE(broadcastShapes(x, bad));
}

TEST(TensorType, Printing) {
  TensorType t;
  t.dtype = DType::BF16;
  t.shape = {sym("B"), c(3)};
  EXPECT_EQ(t.str(), "bf16[B, 3]");
  EXPECT_EQ(t.numElements(), sym("B") * c(3));
  EXPECT_EQ(parseDType("f8e4m3"), std::optional<DType>(DType::F8E4M3));
  EXPECT_FALSE(parseDType("f31"));
  EXPECT_EQ(dtypeBits(DType::I4), 4u);
}

} // namespace
