//===- Devices.cpp - `devices`: the devices this machine can run on -------===//

#include "runtime/tools/Devices.h"

#include "runtime/cuda/CudaDevice.h"

#include <cstdio>
#include <fstream>
#include <string>
#include <sys/utsname.h>
#include <thread>

namespace tessera::rt {

/// The CPU's model name from /proc/cpuinfo, else the machine architecture.
static std::string cpuName() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size())
        return line.substr(colon + 2);
    }
  utsname names;
  return uname(&names) == 0 ? names.machine : "unknown";
}

int devicesCommand() {
  std::printf("cpu: %s, %u hardware threads\n", cpuName().c_str(),
              std::thread::hardware_concurrency());
  Expected<cuda::DriverInfo> info = cuda::queryDevices();
  if (!info) {
    std::printf("cuda: unavailable: %s\n", info.error().c_str());
    return 0;
  }
  std::printf("cuda: driver %d.%d (%s), %zu device%s\n", info->version / 1000,
              info->version % 1000 / 10, info->library.c_str(),
              info->devices.size(), info->devices.size() == 1 ? "" : "s");
  for (const cuda::DeviceInfo &d : info->devices)
    std::printf("cuda:%d: %s, sm_%d%d, %.1f GiB, %d SMs\n", d.ordinal,
                d.name.c_str(), d.computeMajor, d.computeMinor,
                double(d.totalMemory) / double(uint64_t(1) << 30),
                d.multiprocessors);
  return 0;
}

} // namespace tessera::rt
