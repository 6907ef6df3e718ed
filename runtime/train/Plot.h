//===- Plot.h - A loss-curve PNG --------------------------------*- C++ -*-===//
//
// A small line chart (training loss, validation loss) written as PNG with
// zlib: axes with numeric ticks, log-free linear scales, a legend. No
// plotting dependency is needed at training time.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_TRAIN_PLOT_H
#define TESSERA_RUNTIME_TRAIN_PLOT_H

#include "runtime/support/Status.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tessera::rt {

Status plotLosses(const std::string &path,
                  const std::vector<std::pair<int64_t, double>> &train,
                  const std::vector<std::pair<int64_t, double>> &val);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TRAIN_PLOT_H
