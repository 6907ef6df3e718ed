//===- tessera-rt.cpp - The runtime's own command line --------------------===//
//
// On a machine without LLVM/MLIR (a GPU box), this runs packages compiled
// elsewhere: `tessera-rt run PKG --input x=in.npy --output out.npy`. It is the
// same code as `tessera run`. `tessera-rt devices` lists what it can run on.
//
//===----------------------------------------------------------------------===//

#include "runtime/package/Package.h"
#include "runtime/support/File.h"
#include "runtime/tools/Devices.h"
#include "runtime/tools/Run.h"
#include "runtime/train/Trainer.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

using namespace tessera::rt;

static const char *usage =
    "usage: tessera-rt train PKG [--out DIR] [--resume DIR] [--steps N] [--seed S] [-q]\n"
    "       tessera-rt eval PKG [--weights CKPT] [--split val|test] [--batches N]\n"
    "       tessera-rt run PKG [--entry NAME] [--weights FILE.safetensors]\n"
    "                  [--input [NAME=]FILE.npy]... [--output [NAME=]FILE.npy]...\n"
    "                  [--repeat N]\n"
    "       tessera-rt init-weights PKG\n"
    "       tessera-rt devices\n"
    "\n"
    "Runs an entry point (default: forward) of a package made by\n"
    "`tessera compile ... -o PKG.tsrpkg`. Inputs and outputs are NumPy .npy\n"
    "files; an output without --output is summarized on stdout. --repeat N\n"
    "times N more calls of the entry point (median and best latency); for a\n"
    "GPU package their arguments stay on the device, so no copies are timed.\n"
    "\n"
    "`init-weights` writes the package's weights file from the manifest's\n"
    "initializers and seed, bit for bit what `tessera compile` wrote, so a\n"
    "large package can be copied without it.\n"
    "\n"
    "`devices` prints the CPU and each CUDA device (name, compute capability\n"
    "sm_XY, memory, SM count). It loads the NVIDIA driver's libcuda.so.1\n"
    "($TESSERA_LIBCUDA overrides the path); without one it prints\n"
    "`cuda: unavailable: REASON` and still succeeds.\n";

int main(int argc, char **argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 1 : 0;
  }
  std::string cmd = argv[1];
  if (cmd == "devices") {
    if (argc > 2) {
      std::fprintf(stderr, "tessera-rt: error: unexpected argument '%s'\n",
                   argv[2]);
      return 1;
    }
    return devicesCommand();
  }
  if (cmd == "init-weights") {
    if (argc != 3) {
      std::fprintf(stderr, "tessera-rt: error: init-weights takes one package\n");
      return 1;
    }
    std::string dir = argv[2];
    Expected<std::string> text = readFile(joinPath(dir, "manifest.json"));
    if (!text) {
      std::fprintf(stderr, "tessera-rt: error: %s: not a Tessera package (%s)\n",
                   dir.c_str(), text.error().c_str());
      return 1;
    }
    Expected<Manifest> m = Manifest::parse(*text, joinPath(dir, "manifest.json"));
    Status s = m ? writeInitialWeights(*m, joinPath(dir, m->weights))
                 : std::move(m).takeStatus();
    if (!s) {
      std::fprintf(stderr, "tessera-rt: error: %s\n", s.error().c_str());
      return 1;
    }
    return 0;
  }
  if (cmd != "run" && cmd != "train" && cmd != "eval") {
    std::fprintf(stderr, "tessera-rt: error: unknown command '%s'\n%s", argv[1],
                 usage);
    return 1;
  }
  RunOptions options;
  TrainOptions train;
  EvalOptions eval;
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char *flag) -> const char * {
      std::string f = flag;
      if (arg.rfind(f + "=", 0) == 0)
        return argv[i] + f.size() + 1;
      if (arg != f)
        return nullptr;
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tessera-rt: error: %s needs a value\n", flag);
        std::exit(1);
      }
      return argv[++i];
    };
    if (arg == "-q")
      train.quiet = true;
    else if (const char *v = value("--out"))
      train.outDir = v;
    else if (const char *v = value("--resume"))
      train.resume = v;
    else if (const char *v = value("--steps"))
      train.steps = std::strtoll(v, nullptr, 10);
    else if (const char *v = value("--seed"))
      train.seed = std::strtoll(v, nullptr, 10);
    else if (const char *v = value("--split"))
      eval.split = v;
    else if (const char *v = value("--batches"))
      eval.batches = std::strtoll(v, nullptr, 10);
    else if (const char *v = value("--input"))
      options.inputs.push_back(v);
    else if (const char *v = value("--output"))
      options.outputs.push_back(v);
    else if (const char *v = value("--weights"))
      options.weights = v;
    else if (const char *v = value("--entry"))
      options.entry = v;
    else if (const char *v = value("--repeat"))
      options.repeat = unsigned(std::strtoul(v, nullptr, 10));
    else if (arg.rfind("-", 0) == 0) {
      std::fprintf(stderr, "tessera-rt: error: unknown option '%s'\n%s",
                   arg.c_str(), usage);
      return 1;
    } else if (options.package.empty())
      options.package = arg;
    else {
      std::fprintf(stderr, "tessera-rt: error: unexpected argument '%s'\n",
                   arg.c_str());
      return 1;
    }
  }
  if (options.package.empty()) {
    std::fprintf(stderr, "tessera-rt: error: no package given\n%s", usage);
    return 1;
  }
  if (cmd == "train") {
    train.package = options.package;
    return trainCommand(train);
  }
  if (cmd == "eval") {
    eval.package = options.package;
    eval.weights = options.weights;
    return evalCommand(eval);
  }
  return runCommand(options);
}
