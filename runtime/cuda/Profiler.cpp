//===- Profiler.cpp - Time per kernel, with CUDA events -------------------===//

#include "runtime/cuda/Profiler.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace tessera::rt::cuda::profiler {
namespace {

struct Pending {
  CUevent start, end;
  std::string kernel;
};

struct Totals {
  double ms = 0;
  uint64_t launches = 0;
};

struct State {
  std::mutex mutex;
  std::unordered_map<CUstream, std::vector<Pending>> pending;
  std::map<std::string, Totals> totals;
  uint64_t unmeasured = 0;
};

State &state() {
  static State *s = new State(); // used at exit; never destroyed
  return *s;
}

void report() {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  std::vector<std::pair<std::string, Totals>> rows(s.totals.begin(),
                                                   s.totals.end());
  std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) {
    return a.second.ms > b.second.ms;
  });
  double all = 0;
  uint64_t launches = 0;
  for (const auto &[name, t] : rows) {
    all += t.ms;
    launches += t.launches;
  }
  std::fprintf(stderr,
               "tessera-cuda-profile: %llu launches, %.3f ms in kernels\n"
               "  %10s %7s %9s %10s  %s\n",
               (unsigned long long)launches, all, "total ms", "share",
               "launches", "mean us", "kernel");
  for (const auto &[name, t] : rows)
    std::fprintf(stderr, "  %10.3f %6.1f%% %9llu %10.1f  %s\n", t.ms,
                 all > 0 ? 100 * t.ms / all : 0.0,
                 (unsigned long long)t.launches, 1e3 * t.ms / double(t.launches),
                 name.c_str());
  if (s.unmeasured)
    std::fprintf(stderr, "  (%llu launches on streams never synchronized "
                         "are not counted)\n",
                 (unsigned long long)s.unmeasured);
}

} // namespace

bool enabled() {
  static bool on = [] {
    const char *v = std::getenv("TESSERA_CUDA_PROFILE");
    bool yes = v && std::strcmp(v, "1") == 0;
    if (yes)
      std::atexit(report);
    return yes;
  }();
  return on;
}

CUevent begin(const DriverApi &api, CUstream stream) {
  CUevent start = nullptr;
  if (api.cuEventCreate(&start, 0) != CUDA_SUCCESS)
    return nullptr;
  if (api.cuEventRecord(start, stream) != CUDA_SUCCESS) {
    api.cuEventDestroy_v2(start);
    return nullptr;
  }
  return start;
}

void end(const DriverApi &api, CUstream stream, CUevent start,
         const std::string &kernel) {
  if (!start)
    return;
  CUevent stop = nullptr;
  if (api.cuEventCreate(&stop, 0) != CUDA_SUCCESS ||
      api.cuEventRecord(stop, stream) != CUDA_SUCCESS) {
    api.cuEventDestroy_v2(start);
    if (stop)
      api.cuEventDestroy_v2(stop);
    return;
  }
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.pending[stream].push_back({start, stop, kernel});
}

void collect(const DriverApi &api, CUstream stream) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.pending.find(stream);
  if (it == s.pending.end())
    return;
  for (Pending &p : it->second) {
    float ms = 0;
    if (api.cuEventElapsedTime(&ms, p.start, p.end) == CUDA_SUCCESS) {
      Totals &t = s.totals[p.kernel];
      t.ms += ms;
      ++t.launches;
    } else {
      ++s.unmeasured;
    }
    api.cuEventDestroy_v2(p.start);
    api.cuEventDestroy_v2(p.end);
  }
  s.pending.erase(it);
}

} // namespace tessera::rt::cuda::profiler
