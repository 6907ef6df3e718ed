//===- Parser.h - .tsr text to AST ------------------------------*- C++ -*-===//
//
// The only part of the front end that touches ANTLR: it lexes and parses one
// buffer of the source manager and builds Tessera's own AST. Syntax errors are
// reported through the DiagnosticEngine with the buffer's locations.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_PARSER_H
#define TESSERA_LANG_PARSER_H

#include "lang/AST.h"
#include "lang/Diagnostics.h"

#include <memory>

namespace tessera {

/// Limits that keep hostile input from exhausting the stack or the heap.
struct ParserLimits {
  /// Deepest allowed nesting of (), [] and {}.
  unsigned maxBracketDepth = 256;
  /// Deepest allowed expression tree (long operator chains count).
  unsigned maxExprDepth = 1000;
  /// Syntax errors reported before the parser gives up.
  unsigned maxSyntaxErrors = 20;
};

/// Parses buffer `bufferID` of `diags.getSourceMgr()`. Returns null after
/// reporting at least one error.
std::unique_ptr<ast::File> parseBuffer(unsigned bufferID,
                                       DiagnosticEngine &diags,
                                       const ParserLimits &limits = {});

} // namespace tessera

#endif // TESSERA_LANG_PARSER_H
