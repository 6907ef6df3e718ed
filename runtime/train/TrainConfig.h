//===- TrainConfig.h - A train block's settings, as the runtime reads them ===//
//
// The compiler writes the train block's settings into the package manifest
// ("train"); this is their typed form. Defaults are those of docs/training.md.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_TRAIN_TRAINCONFIG_H
#define TESSERA_RUNTIME_TRAIN_TRAINCONFIG_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <vector>

namespace tessera::rt {

struct DataConfig {
  std::string kind; // tokens, idx, csv
  std::string name;
  // tokens
  std::string path;
  std::string tokenDType = "u16";
  int64_t seq = 0;
  // idx
  std::string images, labels, testImages, testLabels;
  bool normalize = false;
  // csv
  int64_t features = 0, label = -1;
  bool header = false;
  // common
  int64_t batch = 0, classes = 0;
  double val = 0;
  std::vector<int64_t> xShape, yShape;
};

struct TrainConfig {
  DataConfig data;
  std::string optimizer = "AdamW";
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0.01;
  double momentum = 0;
  bool nesterov = false;
  std::string schedule = "constant";
  int64_t warmup = 0;
  double minLr = 0;
  int64_t steps = 1, accumulate = 1;
  double clip = 0; // 0: no clipping
  int64_t evalEvery = 0, evalBatches = 10;
  int64_t logEvery = 0;
  int64_t checkpointEvery = 0, keep = 3;
  std::string checkpointDir;
  uint64_t seed = 0;
  /// "f32", "bf16" (compiled in), or "fp16" with loss scaling: a fixed
  /// scale, or dynamic (start at 2^16, halve on overflow, double after
  /// `growthInterval` good steps).
  std::string precision = "f32";
  double lossScale = 65536;
  bool dynamicScale = true;
  int64_t growthInterval = 2000;

  static Expected<TrainConfig> parse(const std::string &json,
                                     const std::string &where);
  /// The learning rate of step `step` (1-based).
  double learningRate(int64_t step) const;
};

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TRAIN_TRAINCONFIG_H
