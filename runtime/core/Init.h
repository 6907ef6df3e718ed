//===- Init.h - Parameter initialization from the spec ----------*- C++ -*-===//
//
// Initializers are the strings Sema records for each parameter
// ("normal(std=0.02)", "kaiming()", "zeros()"). The values are a pure
// function of (seed, parameter path, element index): a counter-based
// generator (SplitMix64 over a hash of the path) feeds Box-Muller for
// normals, so initialization does not depend on parameter order, thread
// count or platform.
//
//   normal(std=1, mean=0)    N(mean, std^2)
//   trunc_normal(std=1)      N(0, std^2) resampled until |x| <= 2 std
//   uniform(low, high)       U[low, high)
//   zeros, ones, constant(value)
//   kaiming(gain=sqrt(2))    N(0, (gain / sqrt(fan_in))^2)   (He, fan-in mode)
//   xavier(gain=1)           U[-a, a], a = gain * sqrt(6 / (fan_in + fan_out))
//
// fan_in = shape[1] * prod(shape[2:]), fan_out = shape[0] * prod(shape[2:]),
// as in PyTorch (a Linear weight is [out, in]).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_RUNTIME_CORE_INIT_H
#define TESSERA_RUNTIME_CORE_INIT_H

#include "runtime/core/Tensor.h"

namespace tessera::rt {

/// Fills `t` (f32, f64, bf16 or f16) per `spec`. Errors name the spec.
Status initialize(Tensor &t, const std::string &spec, uint64_t seed,
                  const std::string &path);

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_CORE_INIT_H
