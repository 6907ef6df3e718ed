//===- Program.cpp - Loading a .tsr file and its imports ------------------===//

#include "lang/Program.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#ifndef TESSERA_STDLIB_DIR
#define TESSERA_STDLIB_DIR ""
#endif

using namespace llvm;

namespace tessera {

std::string defaultStdlibDir() {
  if (auto env = sys::Process::GetEnv("TESSERA_STDLIB"))
    return *env;
  return TESSERA_STDLIB_DIR;
}

namespace {

class Loader {
public:
  Loader(DiagnosticEngine &diags, const LoadOptions &options, Program &program)
      : diags(diags), sm(diags.getSourceMgr()), options(options),
        program(program) {}

  ast::File *load(StringRef path, SMLoc importLoc);

private:
  std::optional<std::string> resolve(StringRef importName,
                                     StringRef fromFile);

  DiagnosticEngine &diags;
  SourceMgr &sm;
  const LoadOptions &options;
  Program &program;
  /// Canonical path -> parsed file (null while loading or after failure).
  StringMap<ast::File *> loaded;
  /// Files whose imports are being loaded, with the import locations.
  std::vector<std::pair<std::string, SMLoc>> stack;
};

std::optional<std::string> Loader::resolve(StringRef importName,
                                           StringRef fromFile) {
  SmallString<128> rel;
  for (StringRef part : split(importName, '.'))
    sys::path::append(rel, part);
  rel += ".tsr";

  std::vector<std::string> dirs;
  dirs.push_back(sys::path::parent_path(fromFile).str());
  for (const std::string &d : options.importPaths)
    dirs.push_back(d);
  if (auto env = sys::Process::GetEnv("TESSERA_PATH"))
    for (StringRef d : split(*env, ':'))
      if (!d.empty())
        dirs.push_back(d.str());
  dirs.push_back(options.stdlibDir.empty() ? defaultStdlibDir()
                                           : options.stdlibDir);
  for (const std::string &dir : dirs) {
    SmallString<256> candidate(dir.empty() ? "." : dir);
    sys::path::append(candidate, rel);
    if (sys::fs::is_regular_file(candidate))
      return std::string(candidate);
  }
  return std::nullopt;
}

ast::File *Loader::load(StringRef path, SMLoc importLoc) {
  SmallString<256> canonical;
  if (sys::fs::real_path(path, canonical))
    canonical = path;

  // A file on the stack that is imported again closes a cycle.
  for (size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].first != canonical)
      continue;
    diags.error(importLoc, "import cycle: '" + sys::path::filename(path) +
                               "' is already being imported");
    for (size_t j = i + 1; j < stack.size(); ++j)
      diags.note(stack[j].second, "'" + sys::path::filename(stack[j].first) +
                                      "' imported here");
    return nullptr;
  }
  auto it = loaded.find(canonical);
  if (it != loaded.end())
    return it->second;
  loaded[canonical] = nullptr;

  if (sys::fs::is_directory(path)) {
    if (importLoc.isValid())
      diags.error(importLoc, "'" + path + "' is a directory, not a .tsr file");
    else
      diags.errorNoLoc("'" + path + "' is a directory, not a .tsr file");
    return nullptr;
  }
  auto bufOrErr = MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!bufOrErr) {
    std::string msg = "cannot read '" + path.str() +
                      "': " + bufOrErr.getError().message();
    if (importLoc.isValid())
      diags.error(importLoc, msg);
    else
      diags.errorNoLoc(msg);
    return nullptr;
  }
  uint64_t size = (*bufOrErr)->getBufferSize();
  if (size > options.maxFileBytes) {
    std::string msg = formatv("'{0}' is {1} bytes; Tessera files are limited "
                              "to {2} bytes",
                              path, size, options.maxFileBytes);
    if (importLoc.isValid())
      diags.error(importLoc, msg);
    else
      diags.errorNoLoc(msg);
    return nullptr;
  }
  std::unique_ptr<MemoryBuffer> buffer = std::move(*bufOrErr);
  // Drop a UTF-8 byte-order mark so columns on line 1 count from the code.
  if (buffer->getBuffer().starts_with("\xEF\xBB\xBF"))
    buffer = MemoryBuffer::getMemBufferCopy(buffer->getBuffer().drop_front(3),
                                            buffer->getBufferIdentifier());
  unsigned id = sm.AddNewSourceBuffer(std::move(buffer), importLoc);
  std::unique_ptr<ast::File> file =
      parseBuffer(id, diags, options.parserLimits);
  if (!file)
    return nullptr;
  ast::File *raw = file.get();
  program.files.push_back(std::move(file));
  loaded[canonical] = raw;

  stack.push_back({std::string(canonical), importLoc});
  std::vector<ast::File *> resolved;
  for (const ast::Import &imp : raw->imports) {
    if (diags.shouldStop())
      break;
    std::optional<std::string> target = resolve(imp.name, raw->path);
    if (!target) {
      diags.error(imp.range.Start,
                  "cannot find module '" + imp.name + "' (looked for '" +
                      join(split(imp.name, '.'), "/") +
                      ".tsr' next to this file, in -I directories, "
                      "$TESSERA_PATH and the standard library)",
                  {imp.range});
      resolved.push_back(nullptr);
      continue;
    }
    ast::File *f = load(*target, imp.range.Start);
    resolved.push_back(f);
  }
  stack.pop_back();
  program.importsOf[raw] = std::move(resolved);
  return raw;
}

} // namespace

bool loadProgram(StringRef path, DiagnosticEngine &diags,
                 const LoadOptions &options, Program &program) {
  Loader loader(diags, options, program);
  program.root = loader.load(path, SMLoc());
  return program.root && !diags.hasErrors();
}

} // namespace tessera
