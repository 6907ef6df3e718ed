//===- SourceMgrTest.cpp - Diagnostics through the shared SourceMgr -------===//

#include "lang/Diagnostics.h"
#include "lang/Parser.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

#include "gtest/gtest.h"

using namespace tessera;

namespace {

struct Fixture {
  llvm::SourceMgr sm;
  std::string out;
  llvm::raw_string_ostream os{out};
  DiagnosticEngine diags{sm, os};
  unsigned add(llvm::StringRef text, llvm::StringRef name = "t.tsr") {
    diags.setShowColors(false);
    return sm.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, name), llvm::SMLoc());
  }
};

TEST(Diagnostics, LocationLineAndCaret) {
  Fixture f;
  unsigned id = f.add("let a = 1\nlet b = $\n");
  EXPECT_FALSE(parseBuffer(id, f.diags));
  EXPECT_EQ(f.out, "t.tsr:2:9: error: unexpected character '$'\n"
                   "let b = $\n"
                   "        ^\n");
  EXPECT_EQ(f.diags.getNumErrors(), 1u);
}

TEST(Diagnostics, DuplicatesArePrintedOnceWithTheirNotes) {
  Fixture f;
  unsigned id = f.add("abc\n");
  llvm::SMLoc loc = llvm::SMLoc::getFromPointer(
      f.sm.getMemoryBuffer(id)->getBufferStart());
  f.diags.error(loc, "boom");
  f.diags.note(loc, "because");
  f.diags.error(loc, "boom");
  f.diags.note(loc, "because");
  EXPECT_EQ(f.diags.getNumErrors(), 1u);
  EXPECT_EQ(llvm::StringRef(f.out).count("because"), 1u);
}

TEST(Diagnostics, ErrorLimitStops) {
  Fixture f;
  f.diags.setErrorLimit(3);
  unsigned id = f.add("0123456789\n");
  const char *p = f.sm.getMemoryBuffer(id)->getBufferStart();
  for (int i = 0; i < 10; ++i)
    f.diags.error(llvm::SMLoc::getFromPointer(p + i), "e" + std::to_string(i));
  EXPECT_TRUE(f.diags.shouldStop());
  EXPECT_EQ(f.diags.getNumErrors(), 3u);
  EXPECT_NE(f.out.find("too many errors"), std::string::npos);
}

TEST(Parser, ColumnsCountBytesAfterNonAsciiText) {
  Fixture f;
  // The comment holds multi-byte characters; the column of '$' must still
  // point at it in the printed line.
  unsigned id = f.add("// ünïcödé\nlet a = \"é\" $\n");
  EXPECT_FALSE(parseBuffer(id, f.diags));
  EXPECT_NE(f.out.find("t.tsr:2:"), std::string::npos);
  EXPECT_NE(f.out.find("unexpected character '$'"), std::string::npos);
}

TEST(Parser, InvalidUtf8IsReportedNotCrashed) {
  Fixture f;
  unsigned id = f.add(llvm::StringRef("let a = 1\n\xff\xfe", 12));
  EXPECT_FALSE(parseBuffer(id, f.diags));
  EXPECT_NE(f.out.find("invalid UTF-8 byte 0xff"), std::string::npos);
}

TEST(Parser, DeepNestingIsBounded) {
  Fixture f;
  std::string text = "let a = " + std::string(100000, '(') + "1" +
                     std::string(100000, ')') + "\n";
  unsigned id = f.add(text);
  EXPECT_FALSE(parseBuffer(id, f.diags));
  EXPECT_NE(f.out.find("nested too deeply"), std::string::npos);
}

TEST(Parser, LongOperatorChainsAreBounded) {
  Fixture f;
  std::string text = "let a = 1";
  for (int i = 0; i < 50000; ++i)
    text += " + 1";
  unsigned id = f.add(text + "\n");
  EXPECT_FALSE(parseBuffer(id, f.diags));
  EXPECT_NE(f.out.find("expression is nested too deeply"), std::string::npos);
}

} // namespace
