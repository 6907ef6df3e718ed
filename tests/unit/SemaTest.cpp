//===- SemaTest.cpp - Sema helpers: globs, instantiation, parameter tables ===//

#include "lang/Parser.h"
#include "lang/Program.h"
#include "lang/Sema.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include "gtest/gtest.h"

using namespace tessera;

namespace {

ast::Glob glob(std::initializer_list<const char *> parts) {
  ast::Glob g;
  for (const char *p : parts) {
    llvm::StringRef s(p);
    g.segments.push_back({s == "**"  ? ast::Glob::SegKind::DoubleStar
                          : s == "*" ? ast::Glob::SegKind::Star
                                     : ast::Glob::SegKind::Name,
                          s.str()});
  }
  return g;
}

TEST(Glob, StarMatchesExactlyOneSegment) {
  EXPECT_TRUE(globMatches(glob({"blocks", "*", "mlp", "*", "weight"}),
                          "blocks.3.mlp.fc.weight"));
  EXPECT_FALSE(globMatches(glob({"blocks", "*", "weight"}),
                           "blocks.3.mlp.fc.weight"));
  EXPECT_FALSE(globMatches(glob({"*", "weight"}), "weight"));
}

TEST(Glob, DoubleStarMatchesAnyNumberOfSegments) {
  EXPECT_TRUE(globMatches(glob({"**", "weight"}), "weight"));
  EXPECT_TRUE(globMatches(glob({"**", "weight"}), "blocks.3.mlp.fc.weight"));
  EXPECT_FALSE(globMatches(glob({"**", "weight"}), "blocks.3.mlp.fc.bias"));
  EXPECT_TRUE(globMatches(glob({"blocks", "**"}), "blocks.0.ln.bias"));
  EXPECT_TRUE(globMatches(glob({"blocks", "**", "fc", "**", "bias"}),
                          "blocks.0.fc.x.bias"));
}

/// Runs Sema over one in-memory file; returns the diagnostics text.
struct SemaRun {
  llvm::SourceMgr sm;
  std::string out;
  llvm::raw_string_ostream os{out};
  DiagnosticEngine diags{sm, os};
  Program program;
  std::unique_ptr<Sema> sema;
  bool ok = false;

  explicit SemaRun(llvm::StringRef text) {
    diags.setShowColors(false);
    unsigned id = sm.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, "t.tsr"), llvm::SMLoc());
    auto file = parseBuffer(id, diags);
    if (!file)
      return;
    program.root = file.get();
    program.importsOf[file.get()] = {};
    program.files.push_back(std::move(file));
    sema = std::make_unique<Sema>(program, diags);
    ok = sema->run();
  }
};

const char *kTiny = R"(
model Lin(i: int, o: int) {
  param weight: f32[o, i] = normal(0.02)
  param bias: f32[o] = zeros
  fn forward(x: f32[..., i]) -> f32[..., o] { return linear(x, weight, bias) }
}
model Net(d: int = 8, n: int = 3) {
  layers = repeat(n) Lin(d, d)
  head = Lin(d, 4)
  fn forward(x: f32[B, d]) -> f32[B, 4] { return head(layers(x)) }
}
data tab = csv("t.csv", features=8, classes=4, batch=16)
train t {
  model = Net(n=2)
  data = tab
  loss = cross_entropy(model(x), y)
  optimizer = AdamW(lr=1e-3)
  steps = 10
}
)";

TEST(Sema, InstantiationBuildsParameterPaths) {
  SemaRun run(kTiny);
  ASSERT_TRUE(run.ok) << run.out;
  ASSERT_EQ(run.sema->getTrains().size(), 1u);
  const ModuleInstance *m = run.sema->getTrains()[0]->model;
  ASSERT_TRUE(m);
  EXPECT_EQ(m->signature, "Net(d=8, n=2)");
  std::vector<const ParamInfo *> params;
  m->collectParams(params);
  std::vector<std::string> paths;
  for (const ParamInfo *p : params)
    paths.push_back(p->path + ":" + p->type.str());
  EXPECT_EQ(paths, (std::vector<std::string>{
                       "layers.0.weight:f32[8, 8]", "layers.0.bias:f32[8]",
                       "layers.1.weight:f32[8, 8]", "layers.1.bias:f32[8]",
                       "head.weight:f32[4, 8]", "head.bias:f32[4]"}));
  EXPECT_EQ(countElements(params), 2 * (64 + 8) + 32 + 4);
  EXPECT_EQ(params[0]->init, "normal(std=0.02)");
}

TEST(Sema, ShapeMismatchNamesBothShapes) {
  std::string text = kTiny;
  // The head now expects 5 inputs but receives 8.
  text.replace(text.find("head = Lin(d, 4)"), 16, "head = Lin(5, 4)");
  SemaRun run(text);
  EXPECT_FALSE(run.ok);
  EXPECT_NE(run.out.find("f32[B, 8]"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("f32[B, 5]"), std::string::npos) << run.out;
}

} // namespace
