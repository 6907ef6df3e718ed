//===- Data.h - Training data: token streams, IDX, CSV ----------*- C++ -*-===//
//
// Every batch is a pure function of (seed, step, micro-batch): token windows
// start at counter-hashed offsets; IDX/CSV examples are visited in a
// per-epoch permutation (Fisher-Yates over a counter-based generator). So a
// run resumed at step k sees exactly the batches an uninterrupted run sees,
// and the reference implementation in tests/e2e reproduces them.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_TRAIN_DATA_H
#define TESSERA_RUNTIME_TRAIN_DATA_H

#include "runtime/core/Tensor.h"
#include "runtime/train/TrainConfig.h"

#include <memory>

namespace tessera::rt {

struct Batch {
  Tensor x, y;
};

class Dataset {
public:
  static Expected<std::unique_ptr<Dataset>> open(const DataConfig &config,
                                                 uint64_t seed,
                                                 int64_t accumulate);
  virtual ~Dataset();
  /// Micro-batch `micro` of training step `step` (1-based).
  virtual Batch train(int64_t step, int64_t micro) = 0;
  /// Evaluation batches of "val" or "test" (0 when the split is empty).
  virtual int64_t numBatches(const std::string &split) const = 0;
  virtual Batch eval(const std::string &split, int64_t index) = 0;
  /// One line: sizes of the splits.
  virtual std::string describe() const = 0;
  /// The largest label or token id in the data.
  virtual int64_t maxLabel() const = 0;
};

/// splitmix64, the generator behind every random choice of the runtime.
uint64_t splitmix64(uint64_t x);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TRAIN_DATA_H
