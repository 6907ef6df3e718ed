//===- Trainer.h - The training loop ----------------------------*- C++ -*-===//

#ifndef TESSERA_RUNTIME_TRAIN_TRAINER_H
#define TESSERA_RUNTIME_TRAIN_TRAINER_H

#include <cstdint>
#include <string>

namespace tessera::rt {

struct TrainOptions {
  /// A package made by `tessera compile` (it has train_step and
  /// optimizer_step entry points and a "train" section).
  std::string package;
  /// Where metrics.jsonl, loss.png and checkpoints go (default: the train
  /// block's checkpoint dir, else runs/NAME).
  std::string outDir;
  /// A directory with checkpoints to continue from (its latest).
  std::string resume;
  int64_t steps = -1;      // override the train block's steps
  int64_t seed = -1;       // override the data seed
  bool quiet = false;      // no progress output
};

struct EvalOptions {
  std::string package;
  std::string weights;       // default: the package's weights
  std::string split = "val"; // val or test
  int64_t batches = -1;      // default: the whole split
};

/// Prints the loss (and accuracy for classifiers, perplexity for token
/// data) of `split`; errors as "tessera eval: error: ...".
int evalCommand(const EvalOptions &options);

/// Trains; prints errors as "tessera train: error: ..." and returns the exit
/// code (1 on errors and on a non-finite loss).
int trainCommand(const TrainOptions &options);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TRAIN_TRAINER_H
