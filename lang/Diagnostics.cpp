//===- Diagnostics.cpp - Located errors, warnings and notes ---------------===//

#include "lang/Diagnostics.h"

using namespace llvm;

static constexpr size_t kMaxShownLine = 160;

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
  SMDiagnostic d = sourceMgr.GetMessage(loc, kind, msg, ranges);
  StringRef line = d.getLineContents();
  if (line.size() <= kMaxShownLine) {
    sourceMgr.PrintMessage(os, loc, kind, msg, ranges, /*FixIts=*/{},
                           showColors);
    return;
  }
  // A huge line (minified or hostile input): show a window around the
  // column instead of megabytes of source.
  unsigned buf = sourceMgr.FindBufferContainingLoc(loc);
  sourceMgr.PrintIncludeStack(sourceMgr.getParentIncludeLoc(buf), os);
  size_t col = d.getColumnNo();
  size_t start = col > kMaxShownLine / 2 ? col - kMaxShownLine / 2 : 0;
  size_t end = std::min(line.size(), start + kMaxShownLine);
  std::string shown = (start ? "..." : "") + line.slice(start, end).str() +
                      (end < line.size() ? "..." : "");
  size_t caret = col - start + (start ? 3 : 0);
  os << d.getFilename() << ":" << d.getLineNo() << ":" << col + 1 << ": "
     << (kind == SourceMgr::DK_Error     ? "error: "
         : kind == SourceMgr::DK_Warning ? "warning: "
                                         : "note: ")
     << msg << "\n"
     << shown << "\n";
  os.indent(caret) << "^\n";
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
