//===- FuzzFrontEnd.cpp - libFuzzer entry point for parser + Sema ---------===//
//
// Feeds arbitrary bytes through the whole front end (parse, then Sema when
// parsing succeeds). Any crash, sanitizer report, hang or leak is a bug:
// hostile input must only ever produce diagnostics.
//
//===----------------------------------------------------------------------===//

#include "lang/Diagnostics.h"
#include "lang/Parser.h"
#include "lang/Program.h"
#include "lang/Sema.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SourceMgr.h"

using namespace tessera;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::SourceMgr sm;
  std::string sink;
  llvm::raw_string_ostream os(sink);
  DiagnosticEngine diags(sm, os);
  diags.setShowColors(false);
  auto buffer = llvm::MemoryBuffer::getMemBufferCopy(
      llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.tsr");
  unsigned id = sm.AddNewSourceBuffer(std::move(buffer), llvm::SMLoc());
  std::unique_ptr<ast::File> file = parseBuffer(id, diags);
  if (!file)
    return 0;
  Program program;
  program.root = file.get();
  program.importsOf[file.get()] =
      std::vector<ast::File *>(file->imports.size(), nullptr);
  // Imports are not followed here: the fuzzer must not read the disk.
  program.files.push_back(std::move(file));
  Sema sema(program, diags);
  sema.run();
  return 0;
}
