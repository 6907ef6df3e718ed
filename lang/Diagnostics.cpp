//===- Diagnostics.cpp - Located errors, warnings and notes ---------------===//

#include "lang/Diagnostics.h"

using namespace llvm;

namespace tessera {

DiagnosticEngine::DiagnosticEngine(SourceMgr &sourceMgr, raw_ostream &os)
    : sourceMgr(sourceMgr), os(os), showColors(os.has_colors()) {}

void DiagnosticEngine::emit(SourceMgr::DiagKind kind, SMLoc loc,
                            const Twine &msg, ArrayRef<SMRange> ranges) {
  if (kind == SourceMgr::DK_Note) {
    if (lastSuppressed)
      return;
  } else {
    if (kind == SourceMgr::DK_Error && numErrors >= errorLimit) {
      lastSuppressed = true;
      if (!limitReported) {
        limitReported = true;
        os << "error: too many errors emitted (" << errorLimit
           << "), stopping now\n";
      }
      return;
    }
    // Errors dedupe on location alone: the same expression checked once
    // symbolically and once with concrete shapes reports only the first.
    std::string key = std::to_string(kind) + "@" +
                      std::to_string(uintptr_t(loc.getPointer()));
    if (kind != SourceMgr::DK_Error || !loc.isValid())
      key += ":" + msg.str();
    lastSuppressed = !seen.insert(key).second;
    if (lastSuppressed)
      return;
    if (kind == SourceMgr::DK_Error)
      ++numErrors;
  }
  if (!loc.isValid()) {
    os << (kind == SourceMgr::DK_Error     ? "error: "
           : kind == SourceMgr::DK_Warning ? "warning: "
                                           : "note: ")
       << msg << "\n";
    return;
  }
  sourceMgr.PrintMessage(os, loc, kind, msg, ranges, /*FixIts=*/{},
                         showColors);
}

void DiagnosticEngine::error(SMLoc loc, const Twine &msg,
                             ArrayRef<SMRange> ranges) {
  emit(SourceMgr::DK_Error, loc, msg, ranges);
}

void DiagnosticEngine::warning(SMLoc loc, const Twine &msg,
                               ArrayRef<SMRange> ranges) {
  emit(SourceMgr::DK_Warning, loc, msg, ranges);
}

void DiagnosticEngine::note(SMLoc loc, const Twine &msg,
                            ArrayRef<SMRange> ranges) {
  emit(SourceMgr::DK_Note, loc, msg, ranges);
}

void DiagnosticEngine::errorNoLoc(const Twine &msg) {
  emit(SourceMgr::DK_Error, SMLoc(), msg, {});
}

} // namespace tessera
