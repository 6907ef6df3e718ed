//===- Run.h - `run`: inference with a compiled package ---------*- C++ -*-===//

#ifndef TESSERA_RUNTIME_TOOLS_RUN_H
#define TESSERA_RUNTIME_TOOLS_RUN_H

#include <string>
#include <vector>

namespace tessera::rt {

struct RunOptions {
  std::string package;
  std::string entry = "forward";
  std::string weights;
  /// "name=file.npy", or just "file.npy" when the entry has one input.
  std::vector<std::string> inputs;
  /// "file.npy" for a single output, else "name=file.npy".
  std::vector<std::string> outputs;
  /// Extra timed runs: prints the median and best latency of the entry call
  /// (the first, untimed run warms caches).
  unsigned repeat = 0;
};

/// Runs the command; prints errors as "tessera run: error: ..." and returns
/// the exit code.
int runCommand(const RunOptions &options);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TOOLS_RUN_H
