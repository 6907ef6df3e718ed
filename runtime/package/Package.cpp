//===- Package.cpp - Loading and running a .tsrpkg ------------------------===//

#include "runtime/package/Package.h"

#include "runtime/core/Init.h"
#include "runtime/cuda/CudaDevice.h"
#include "runtime/io/Safetensors.h"
#include "runtime/support/File.h"

#include <algorithm>
#include <cstring>
#include <dlfcn.h>
#include <limits>
#include <malloc.h>

extern "C" int tessera_cpu_kernels_abi_version();

namespace tessera::rt {

/// The ABI a package's code.so is built against (the `tessera_package_abi`
/// symbol it exports).
static constexpr int packageAbi = 1;

MemRefDescriptor::MemRefDescriptor(const Tensor &t) : bytes(t.byteSize()) {
  int64_t rank = t.rank();
  words.resize(3 + 2 * size_t(rank));
  void *data = const_cast<void *>(t.data());
  std::memcpy(&words[0], &data, sizeof(void *));
  std::memcpy(&words[1], &data, sizeof(void *));
  words[2] = 0;
  int64_t stride = 1;
  for (int64_t i = rank - 1; i >= 0; --i) {
    words[3 + i] = t.shape()[i];
    words[3 + rank + i] = stride;
    stride *= t.shape()[i];
  }
}

void *MemRefDescriptor::data() const {
  void *ptr;
  std::memcpy(&ptr, &words[1], sizeof(void *));
  return ptr;
}

void MemRefDescriptor::setData(void *ptr) {
  std::memcpy(&words[0], &ptr, sizeof(void *));
  std::memcpy(&words[1], &ptr, sizeof(void *));
}

Package::Package(Package &&other) noexcept { *this = std::move(other); }

Package &Package::operator=(Package &&other) noexcept {
  if (this != &other) {
    releaseResidents();
    if (handle)
      dlclose(handle);
    info = std::move(other.info);
    dir = std::move(other.dir);
    params = std::move(other.params);
    residents = std::move(other.residents);
    other.residents.clear();
    handle = other.handle;
    other.handle = nullptr;
  }
  return *this;
}

Package::~Package() {
  releaseResidents();
  // Parameters may view memory of the weights mapping, not of the code.
  if (handle)
    dlclose(handle);
}

void Package::releaseResidents() {
  for (Resident &r : residents)
    (void)cuda::deallocate(r.device);
  residents.clear();
}

Package::Resident *Package::findResident(const void *ptr, uint64_t bytes) {
  auto *p = static_cast<const char *>(ptr);
  for (Resident &r : residents)
    if (p >= r.host && p + bytes <= r.host + r.bytes)
      return &r;
  return nullptr;
}

Status Package::keepOnDevice(const Tensor &t) {
  if (info.targetKind != "cuda" || findResident(t.data(), t.byteSize()))
    return {};
  auto *host = static_cast<const char *>(t.data());
  for (const Resident &r : residents)
    if (host < r.host + r.bytes && r.host < host + t.byteSize())
      return Status::fail("keepOnDevice: a tensor of " + t.typeString() +
                          " overlaps another resident tensor");
  Expected<void *> device = cuda::allocate(std::max<uint64_t>(t.byteSize(), 1));
  if (!device)
    return std::move(device).takeStatus();
  residents.push_back({host, t.byteSize(), *device, /*hostNewer=*/true,
                       /*deviceNewer=*/false, t});
  return {};
}

void Package::hostWrote(const Tensor &t) {
  if (Resident *r = findResident(t.data(), t.byteSize()))
    r->hostNewer = true;
}

Status Package::syncToHost() {
  for (Resident &r : residents) {
    if (!r.deviceNewer)
      continue;
    if (Status s = cuda::copyToHost(const_cast<char *>(r.host), r.device, r.bytes);
        !s)
      return std::move(s).within("copying resident buffers back from the GPU");
    r.deviceNewer = false;
  }
  return {};
}

/// Compiled code allocates its temporaries with malloc and frees them before
/// returning. With glibc's defaults, large blocks are mmap'ed and unmapped
/// on every call, so each call pays for the kernel clearing fresh pages
/// (28% of a GPT forward, measured with perf). Keep freed memory for reuse:
/// blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap,
/// and the heap is never trimmed.
static void keepFreedMemory() {
  static bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
    return true;
  }();
  (void)done;
}

Status writeInitialWeights(const Manifest &m, const std::string &path) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ParameterSpec &p : m.parameters) {
    Tensor t = Tensor::zeros(p.dtype, p.shape);
    if (Status s = initialize(t, p.init, m.seed, p.name); !s)
      return s;
    tensors.push_back({p.name, std::move(t)});
  }
  return writeSafetensors(path, tensors,
                          {{"format", "pt"},
                           {"tessera.seed", std::to_string(m.seed)}});
}

Expected<Package> Package::load(const std::string &dir,
                                const std::string &weights) {
  keepFreedMemory();
  Package pkg;
  pkg.dir = dir;
  std::string manifestPath = joinPath(dir, "manifest.json");
  Expected<std::string> text = readFile(manifestPath);
  if (!text)
    return Status::fail(dir + ": not a Tessera package (" + text.error() + ")");
  Expected<Manifest> manifest = Manifest::parse(*text, manifestPath);
  if (!manifest)
    return std::move(manifest).takeStatus();
  pkg.info = std::move(*manifest);
  if (pkg.info.targetKind != "cpu" && pkg.info.targetKind != "cuda")
    return Status::fail(manifestPath + ": target.kind is '" +
                        pkg.info.targetKind +
                        "'; this runtime runs 'cpu' and 'cuda'");

  // A GPU package needs the CUDA driver and a device: say so first, not
  // as the cause of the first allocation that fails.
  if (pkg.info.targetKind == "cuda")
    if (Status s = cuda::initialize(); !s)
      return Status::fail(dir + ": a GPU package (" + pkg.info.targetChip +
                          ") needs a CUDA device: " + s.error());

  // The compiled code calls the runtime's kernels; make sure they are the
  // ones it was built for.
  if (tessera_cpu_kernels_abi_version() != packageAbi)
    return Status::fail("libtessera_cpu_kernels has the wrong ABI version");
  std::string codePath = joinPath(dir, pkg.info.code);
  pkg.handle = dlopen(codePath.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!pkg.handle)
    return Status::fail(codePath + ": cannot load the compiled code: " +
                        dlerror());
  auto *abi = static_cast<const int *>(dlsym(pkg.handle, "tessera_package_abi"));
  if (!abi || *abi != packageAbi)
    return Status::fail(codePath + ": not built for package ABI " +
                        std::to_string(packageAbi) + " (recompile the package)");
  for (const EntryPoint &e : pkg.info.entryPoints)
    if (!dlsym(pkg.handle, e.symbol.c_str()))
      return Status::fail(codePath + ": entry point '" + e.name +
                          "' has no symbol '" + e.symbol + "'");

  std::string weightsPath =
      weights.empty() ? joinPath(dir, pkg.info.weights) : weights;
  Expected<SafetensorsFile> file = readSafetensors(weightsPath);
  if (!file)
    return std::move(file).takeStatus();
  for (const ParameterSpec &p : pkg.info.parameters) {
    const Tensor *t = file->find(p.name);
    if (!t)
      return Status::fail(weightsPath + ": no tensor for parameter '" + p.name +
                          "' (" + p.typeString() + ")");
    if (t->dtype() != p.dtype || t->shape() != p.shape)
      return Status::fail(weightsPath + ": tensor '" + p.name + "' is " +
                          t->typeString() + " but the package expects " +
                          p.typeString());
    pkg.params[p.name] = *t;
  }
  for (const auto &[name, t] : file->tensors)
    if (!pkg.info.findParameter(name) && name.rfind("optim.", 0) != 0)
      return Status::fail(weightsPath + ": tensor '" + name +
                          "' is not a parameter of this package");
  return pkg;
}

Status Package::invoke(const std::string &entryName,
                       const std::map<std::string, const Tensor *> &inputs,
                       const std::map<std::string, Tensor *> &outputs) {
  const EntryPoint *entry = info.findEntry(entryName);
  if (!entry) {
    std::string names;
    for (const EntryPoint &e : info.entryPoints)
      names += (names.empty() ? "" : ", ") + e.name;
    return Status::fail("the package has no entry point '" + entryName +
                        "' (it has: " + names + ")");
  }
  auto check = [&](const TensorSpec &spec, const Tensor *t,
                   const char *what) -> Status {
    if (!t)
      return Status::fail("missing " + std::string(what) + " '" + spec.name +
                          "' (" + spec.typeString() + ")");
    if (t->dtype() != spec.dtype || t->shape() != spec.shape)
      return Status::fail(std::string(what) + " '" + spec.name + "' is " +
                          t->typeString() + " but '" + entryName +
                          "' takes " + spec.typeString());
    return {};
  };
  std::vector<MemRefDescriptor> descs;
  for (const TensorSpec &spec : entry->inputs) {
    auto it = inputs.find(spec.name);
    if (Status s = check(spec, it == inputs.end() ? nullptr : it->second, "input");
        !s)
      return s;
    descs.emplace_back(*it->second);
  }
  for (const auto &input : inputs)
    if (std::none_of(entry->inputs.begin(), entry->inputs.end(),
                     [&](const TensorSpec &s) { return s.name == input.first; }))
      return Status::fail("'" + entryName + "' has no input named '" +
                          input.first + "'");
  for (const std::string &p : entry->parameters)
    descs.emplace_back(params.at(p));
  for (const TensorSpec &spec : entry->outputs) {
    auto it = outputs.find(spec.name);
    if (Status s = check(spec, it == outputs.end() ? nullptr : it->second,
                         "output");
        !s)
      return s;
    descs.emplace_back(*it->second);
  }
  auto fn = reinterpret_cast<void (*)(void **)>(
      dlsym(handle, entry->symbol.c_str()));
  if (info.targetKind == "cuda") {
    if (Status s = invokeOnDevice(fn, descs, entry->outputs.size()); !s)
      return std::move(s).within("running '" + entryName + "' on the GPU");
    return {};
  }
  std::vector<void *> args;
  for (MemRefDescriptor &d : descs)
    args.push_back(d.get());
  fn(args.data());
  // The C entry points that compiled GPU code calls cannot return errors;
  // they leave the first one for the runtime to take here.
  if (Status s = cuda::takeError(); !s)
    return std::move(s).within("running '" + entryName + "'");
  return {};
}

Status Package::invokeOnDevice(void (*fn)(void **),
                               std::vector<MemRefDescriptor> &descs,
                               size_t numOutputs) {
  // Arguments inside resident tensors use their device copies. Every other
  // argument gets a device copy; arguments that share host memory (an
  // output updated in place) share it. Those outputs come back after the
  // call.
  struct Staged {
    void *host;
    uint64_t bytes;
    void *device;
  };
  std::vector<Staged> staged;
  auto release = [&] {
    for (Staged &b : staged)
      (void)cuda::deallocate(b.device);
  };
  std::vector<void *> hostPtrs, args;
  size_t firstOutput = descs.size() - numOutputs;
  for (size_t i = 0; i < descs.size(); ++i) {
    void *host = descs[i].data();
    uint64_t bytes = descs[i].byteSize();
    hostPtrs.push_back(host);
    if (Resident *r = findResident(host, bytes)) {
      if (r->hostNewer) {
        if (Status s = cuda::copyToDevice(r->device, r->host, r->bytes); !s) {
          release();
          return s;
        }
        r->hostNewer = false;
      }
      r->deviceNewer |= i >= firstOutput;
      descs[i].setData(static_cast<char *>(r->device) +
                       (static_cast<const char *>(host) - r->host));
      hostPtrs.back() = nullptr; // stays on the device
      args.push_back(descs[i].get());
      continue;
    }
    auto same = std::find_if(staged.begin(), staged.end(), [&](const Staged &b) {
      return b.host == host && b.bytes == bytes;
    });
    if (same == staged.end()) {
      Expected<void *> device = cuda::allocate(std::max<uint64_t>(bytes, 1));
      if (!device) {
        release();
        return std::move(device).takeStatus();
      }
      same = staged.insert(staged.end(), {host, bytes, *device});
      // Outputs are written completely; only inputs and parameters go up.
      if (i < firstOutput) {
        if (Status s = cuda::copyToDevice(*device, host, bytes); !s) {
          release();
          return s;
        }
      }
    }
    descs[i].setData(same->device);
    args.push_back(descs[i].get());
  }
  fn(args.data());
  // The C entry points that compiled GPU code calls cannot return errors;
  // they leave the first one for the runtime to take here.
  Status status = cuda::takeError();
  for (size_t i = firstOutput; status && i < descs.size(); ++i)
    if (hostPtrs[i])
      status = cuda::copyToHost(hostPtrs[i], descs[i].data(), descs[i].byteSize());
  release();
  return status;
}

Expected<std::vector<Tensor>>
Package::run(const std::string &entryName,
             const std::map<std::string, Tensor> &inputs) {
  const EntryPoint *entry = info.findEntry(entryName);
  if (!entry)
    return invoke(entryName, {}, {}); // reports the known entry points
  std::map<std::string, const Tensor *> in;
  for (const auto &[name, t] : inputs)
    in[name] = &t;
  std::vector<Tensor> outputs;
  std::map<std::string, Tensor *> out;
  outputs.reserve(entry->outputs.size());
  for (const TensorSpec &spec : entry->outputs) {
    outputs.push_back(Tensor::zeros(spec.dtype, spec.shape));
    out[spec.name] = &outputs.back();
  }
  if (Status s = invoke(entryName, in, out); !s)
    return s;
  return outputs;
}

} // namespace tessera::rt
