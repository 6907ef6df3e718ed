//===- Program.h - A root .tsr file and everything it imports ---*- C++ -*-===//
//
// Loading resolves `import a.b` to `a/b.tsr` on the search path (the
// importing file's directory, then -I directories, then $TESSERA_PATH, then
// the standard library), parses every file once, and reports import cycles
// with the chain of imports that forms them.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_PROGRAM_H
#define TESSERA_LANG_PROGRAM_H

#include "lang/AST.h"
#include "lang/Diagnostics.h"
#include "lang/Parser.h"

#include "llvm/ADT/StringMap.h"

#include <memory>
#include <string>
#include <vector>

namespace tessera {

struct LoadOptions {
  /// Extra directories searched for imports (`-I`), in order.
  std::vector<std::string> importPaths;
  /// Directory of the standard library; empty means the built-in default.
  std::string stdlibDir;
  /// Files larger than this are rejected before parsing.
  uint64_t maxFileBytes = 8u << 20;
  ParserLimits parserLimits;
};

/// All files of one compilation. Owns the ASTs; the SourceMgr owns the text.
class Program {
public:
  /// The file named on the command line.
  ast::File *root = nullptr;
  std::vector<std::unique_ptr<ast::File>> files;
  /// For each file, the files its imports resolved to (same order as
  /// `File::imports`; null where resolution failed).
  llvm::DenseMap<const ast::File *, std::vector<ast::File *>> importsOf;
};

/// The standard library directory compiled into this build, or next to the
/// executable once installed.
std::string defaultStdlibDir();

/// Loads `path` and, transitively, its imports. Returns false after
/// reporting errors.
bool loadProgram(llvm::StringRef path, DiagnosticEngine &diags,
                 const LoadOptions &options, Program &program);

} // namespace tessera

#endif // TESSERA_LANG_PROGRAM_H
