//===- Devices.h - `devices`: what this machine can run on ------*- C++ -*-===//

#ifndef TESSERA_RUNTIME_TOOLS_DEVICES_H
#define TESSERA_RUNTIME_TOOLS_DEVICES_H

namespace tessera::rt {

/// Prints the CPU and each CUDA device (name, sm_XY, memory, SMs), or
/// "cuda: unavailable: REASON" when there is no usable driver. Returns the
/// exit code: 0, also without a GPU.
int devicesCommand();

} // namespace tessera::rt

#endif // TESSERA_RUNTIME_TOOLS_DEVICES_H
