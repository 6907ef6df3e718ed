//===- Diagnostics.h - Located errors, warnings and notes -------*- C++ -*-===//
//
// Every message the front end prints goes through one DiagnosticEngine bound
// to the llvm::SourceMgr that owns all loaded .tsr buffers, so messages look
// like `file:line:col: error: ...` followed by the source line and a caret,
// exactly like MLIR's SourceMgrDiagnosticHandler output later in the pipeline.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_DIAGNOSTICS_H
#define TESSERA_LANG_DIAGNOSTICS_H

#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

namespace tessera {

/// Collects and prints diagnostics. Identical diagnostics (same location and
/// text) are printed once: a model body instantiated twelve times reports its
/// error once. After `errorLimit` errors the engine stops printing and
/// `shouldStop()` tells long-running passes to give up early.
class DiagnosticEngine {
public:
  explicit DiagnosticEngine(llvm::SourceMgr &sourceMgr,
                            llvm::raw_ostream &os = llvm::errs());

  void error(llvm::SMLoc loc, const llvm::Twine &msg,
             llvm::ArrayRef<llvm::SMRange> ranges = {});
  void warning(llvm::SMLoc loc, const llvm::Twine &msg,
               llvm::ArrayRef<llvm::SMRange> ranges = {});
  /// A note attaches to the preceding error or warning and is dropped with it
  /// when that diagnostic was a duplicate or over the limit.
  void note(llvm::SMLoc loc, const llvm::Twine &msg,
            llvm::ArrayRef<llvm::SMRange> ranges = {});
  /// An error with no source location (e.g. a file that cannot be read).
  void errorNoLoc(const llvm::Twine &msg);

  unsigned getNumErrors() const { return numErrors; }
  bool hasErrors() const { return numErrors != 0; }
  bool shouldStop() const { return numErrors >= errorLimit; }
  void setErrorLimit(unsigned limit) { errorLimit = limit; }
  void setShowColors(bool show) { showColors = show; }

  llvm::SourceMgr &getSourceMgr() { return sourceMgr; }

private:
  void emit(llvm::SourceMgr::DiagKind kind, llvm::SMLoc loc,
            const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges);

  llvm::SourceMgr &sourceMgr;
  llvm::raw_ostream &os;
  llvm::StringSet<> seen;
  unsigned numErrors = 0;
  unsigned errorLimit = 20;
  bool lastSuppressed = false;
  bool limitReported = false;
  bool showColors;
};

} // namespace tessera

#endif // TESSERA_LANG_DIAGNOSTICS_H
