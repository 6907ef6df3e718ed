//===- Trainer.cpp - The training loop ------------------------------------===//
//
// Parameters, gradients and optimizer state live in flat f32 buffers laid
// out as the manifest says (decayed parameters first); each parameter is a
// view into them. A step runs the compiled `train_step` once per
// micro-batch (gradients land directly in the flat gradient buffer), then
// the compiled `optimizer_step` over the flat buffers, in place.
//
//===----------------------------------------------------------------------===//

#include "runtime/train/Trainer.h"

#include "runtime/io/Safetensors.h"
#include "runtime/package/Package.h"
#include "runtime/support/File.h"
#include "runtime/train/Data.h"
#include "runtime/train/Plot.h"
#include "runtime/train/TrainConfig.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <sys/stat.h>
#include <unistd.h>

using json = nlohmann::json;

namespace tessera::rt {

namespace {

const char *command = "train";

int fail(const std::string &msg) {
  std::fprintf(stderr, "tessera %s: error: %s\n", command, msg.c_str());
  return 1;
}

Status makeDirs(const std::string &dir) {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty())
      continue;
    if (mkdir(partial.c_str(), 0777) != 0 && errno != EEXIST)
      return Status::fail(partial + ": cannot create directory: " +
                          std::strerror(errno));
  }
  return {};
}

/// Checkpoint files in `dir`, by step.
std::vector<std::pair<int64_t, std::string>> checkpoints(const std::string &dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  DIR *d = opendir(dir.c_str());
  if (!d)
    return out;
  while (dirent *e = readdir(d)) {
    std::string name = e->d_name;
    long long step;
    char tail[32];
    if (std::sscanf(name.c_str(), "step-%lld.safe%30s", &step, tail) == 2 &&
        std::string(tail) == "tensors")
      out.push_back({step, joinPath(dir, name)});
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

/// A double that reads back exactly.
std::string exact(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string human(double seconds) {
  char buf[32];
  if (seconds < 60)
    std::snprintf(buf, sizeof(buf), "%.0fs", seconds);
  else if (seconds < 3600)
    std::snprintf(buf, sizeof(buf), "%dm%02ds", int(seconds) / 60, int(seconds) % 60);
  else
    std::snprintf(buf, sizeof(buf), "%dh%02dm", int(seconds) / 3600,
                  int(seconds) / 60 % 60);
  return buf;
}

class Trainer {
public:
  Trainer(Package pkg, TrainConfig cfg, TrainOptions opts)
      : pkg(std::move(pkg)), cfg(std::move(cfg)), opts(std::move(opts)) {}
  int run();
  int evalOnly(const std::string &split, int64_t batches);

private:
  Status setUp();
  Status loadCheckpoint(const std::string &path);
  Status writeCheckpoint(int64_t step);
  Status trainStep(int64_t step, double &loss, double &gradNorm);
  Status evaluate(const std::string &split, int64_t maxBatches, double &loss,
                  double &accuracy);
  void log(const json &record);

  Package pkg;
  TrainConfig cfg;
  TrainOptions opts;
  std::unique_ptr<Dataset> data;
  int64_t flat = 0;
  Tensor params, grads, state0, state1, microGrads, hyper, gradNorm, lossT;
  /// fp16: the current loss scale, good steps since the last change.
  Tensor scaleT, foundInf;
  double lossScale = 1;
  int64_t goodSteps = 0;
  bool skipped = false;
  std::map<std::string, Tensor> gradViews, microViews;
  int64_t startStep = 1;
  std::string outDir;
  std::FILE *metrics = nullptr;
  std::vector<std::pair<int64_t, double>> losses, valLosses;
  bool classification = false;
};

Status Trainer::setUp() {
  const Manifest &m = pkg.manifest();
  for (const char *e : {"train_step", "optimizer_step", "loss"})
    if (!m.findEntry(e))
      return Status::fail(pkg.directory() + ": no '" + e +
                          "' entry point; recompile the package with this "
                          "Tessera");
  for (const ParameterSpec &p : m.parameters)
    flat = std::max<int64_t>(flat, p.offset + int64_t(*elementCount(p.shape)));
  params = Tensor::zeros(DType::F32, {flat});
  grads = Tensor::zeros(DType::F32, {flat});
  state0 = Tensor::zeros(DType::F32, {flat});
  state1 = Tensor::zeros(DType::F32, {flat});
  if (cfg.accumulate > 1)
    microGrads = Tensor::zeros(DType::F32, {flat});
  auto shared = [](Tensor &t) {
    return std::shared_ptr<const void>(std::make_shared<Tensor>(t), t.data());
  };
  for (const ParameterSpec &p : m.parameters) {
    if (p.dtype != DType::F32)
      return Status::fail("parameter '" + p.name + "' is " + p.typeString() +
                          "; training supports f32 parameters");
    Tensor &current = pkg.parameters().at(p.name);
    std::memcpy(params.as<float>() + p.offset, current.data(), current.byteSize());
    current = Tensor::view(DType::F32, p.shape, params.as<float>() + p.offset,
                           shared(params));
    gradViews["grad." + p.name] = Tensor::view(
        DType::F32, p.shape, grads.as<float>() + p.offset, shared(grads));
    if (cfg.accumulate > 1)
      microViews["grad." + p.name] =
          Tensor::view(DType::F32, p.shape, microGrads.as<float>() + p.offset,
                       shared(microGrads));
  }
  hyper = Tensor::zeros(DType::F32, {cfg.optimizer == "AdamW" ? 7 : 3});
  scaleT = Tensor::zeros(DType::F32, {});
  foundInf = Tensor::zeros(DType::F32, {});
  if (cfg.precision == "fp16") {
    if (!m.findEntry("unscale_grads"))
      return Status::fail(pkg.directory() + ": precision fp16 needs the "
                          "'unscale_grads' entry point; recompile the package");
    lossScale = cfg.lossScale;
  }
  gradNorm = Tensor::zeros(DType::F32, {});
  lossT = Tensor::zeros(DType::F32, {});
  classification = cfg.data.kind != "tokens";

  Expected<std::unique_ptr<Dataset>> d =
      Dataset::open(cfg.data, cfg.seed, cfg.accumulate);
  if (!d)
    return std::move(d).takeStatus();
  data = std::move(*d);
  // Labels index the logits: check them once instead of reading out of
  // bounds in compiled code.
  const EntryPoint *fwd = m.findEntry("forward");
  int64_t classes = fwd && !fwd->outputs.empty() && !fwd->outputs[0].shape.empty()
                        ? fwd->outputs[0].shape.back()
                        : 0;
  if (classes > 0 && data->maxLabel() >= classes)
    return Status::fail("data '" + cfg.data.name + "' has " +
                        (classification ? "label " : "token id ") +
                        std::to_string(data->maxLabel()) + " but the model has " +
                        std::to_string(classes) + " outputs");
  return {};
}

Status Trainer::loadCheckpoint(const std::string &path) {
  Expected<SafetensorsFile> f = readSafetensors(path);
  if (!f)
    return std::move(f).takeStatus();
  for (const ParameterSpec &p : pkg.manifest().parameters) {
    const Tensor *t = f->find(p.name);
    if (!t || t->shape() != p.shape || t->dtype() != DType::F32)
      return Status::fail(path + ": no f32 tensor '" + p.name + "' of shape " +
                          shapeString(p.shape) + " (a checkpoint of another "
                          "model?)");
    std::memcpy(params.as<float>() + p.offset, t->data(), t->byteSize());
  }
  const char *names[2] = {cfg.optimizer == "AdamW" ? "optim.exp_avg"
                                                   : "optim.momentum_buffer",
                          "optim.exp_avg_sq"};
  Tensor *states[2] = {&state0, &state1};
  for (int i = 0; i < (cfg.optimizer == "AdamW" ? 2 : 1); ++i) {
    const Tensor *t = f->find(names[i]);
    if (!t || t->shape() != std::vector<int64_t>{flat})
      return Status::fail(path + ": no optimizer state '" + names[i] +
                          "' of " + std::to_string(flat) + " elements");
    std::memcpy(states[i]->data(), t->data(), t->byteSize());
  }
  auto it = f->metadata.find("step");
  if (it == f->metadata.end())
    return Status::fail(path + ": no 'step' in the metadata");
  startStep = std::stoll(it->second) + 1;
  if (auto ls = f->metadata.find("loss_scale"); ls != f->metadata.end())
    lossScale = std::stod(ls->second);
  if (auto gs = f->metadata.find("good_steps"); gs != f->metadata.end())
    goodSteps = std::stoll(gs->second);
  return {};
}

Status Trainer::writeCheckpoint(int64_t step) {
  if (Status s = pkg.syncToHost(); !s)
    return s;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const ParameterSpec &p : pkg.manifest().parameters)
    tensors.push_back({p.name, pkg.parameters().at(p.name)});
  if (cfg.optimizer == "AdamW") {
    tensors.push_back({"optim.exp_avg", state0});
    tensors.push_back({"optim.exp_avg_sq", state1});
  } else {
    tensors.push_back({"optim.momentum_buffer", state0});
  }
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.safetensors", (long long)step);
  std::string path = joinPath(outDir, name);
  if (Status s = writeSafetensors(path, tensors,
                                  {{"step", std::to_string(step)},
                                   {"seed", std::to_string(cfg.seed)},
                                   // Batches are a function of (seed, step):
                                   // this is where the data stream stands.
                                   {"data_position",
                                    std::to_string(step * cfg.accumulate *
                                                   cfg.data.batch)},
                                   {"loss_scale", exact(lossScale)},
                                   {"good_steps", std::to_string(goodSteps)},
                                   {"format", "pt"}});
      !s)
    return s;
  auto all = checkpoints(outDir);
  for (size_t i = 0; i + size_t(std::max<int64_t>(cfg.keep, 1)) < all.size(); ++i)
    ::unlink(all[i].second.c_str());
  return {};
}

Status Trainer::trainStep(int64_t step, double &loss, double &norm) {
  loss = 0;
  for (int64_t micro = 0; micro < cfg.accumulate; ++micro) {
    Batch b = data->train(step, micro);
    std::map<std::string, Tensor *> outs{{"loss", &lossT}};
    auto &views = micro == 0 ? gradViews : microViews;
    for (auto &[name, t] : views)
      outs[name] = &t;
    std::map<std::string, const Tensor *> ins{{"x", &b.x}, {"y", &b.y}};
    if (cfg.precision == "fp16") {
      *scaleT.as<float>() = float(lossScale);
      ins["loss_scale"] = &scaleT;
    }
    if (Status s = pkg.invoke("train_step", ins, outs); !s)
      return s;
    loss += double(*lossT.as<float>());
    if (micro > 0)
      for (int64_t i = 0; i < flat; ++i)
        grads.as<float>()[i] += microGrads.as<float>()[i];
  }
  if (cfg.accumulate > 1) {
    float inv = 1.0f / float(cfg.accumulate);
    for (int64_t i = 0; i < flat; ++i)
      grads.as<float>()[i] *= inv;
    loss /= double(cfg.accumulate);
  }
  if (!std::isfinite(loss))
    return {};
  skipped = false;
  if (cfg.precision == "fp16") {
    // Dynamic loss scaling: unscale and check; an overflow skips the step
    // and halves the scale, `growthInterval` good steps double it.
    *scaleT.as<float>() = float(lossScale);
    if (Status s = pkg.invoke("unscale_grads",
                              {{"grads", &grads}, {"loss_scale", &scaleT}},
                              {{"grads", &grads}, {"found_inf", &foundInf}});
        !s)
      return s;
    if (*foundInf.as<float>() != 0) {
      skipped = true;
      goodSteps = 0;
      if (cfg.dynamicScale)
        lossScale *= 0.5;
      norm = NAN;
      return {};
    }
    if (cfg.dynamicScale && ++goodSteps == cfg.growthInterval) {
      lossScale *= 2;
      goodSteps = 0;
    }
  }
  double lr = cfg.learningRate(step);
  float *h = hyper.as<float>();
  std::map<std::string, const Tensor *> in{
      {"params", &params}, {"grads", &grads}, {"hyper", &hyper}};
  std::map<std::string, Tensor *> out{{"params", &params}, {"grad_norm", &gradNorm}};
  if (cfg.optimizer == "AdamW") {
    double t = double(step);
    double values[7] = {lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weightDecay,
                        1 - std::pow(cfg.beta1, t), 1 - std::pow(cfg.beta2, t)};
    for (int i = 0; i < 7; ++i)
      h[i] = float(values[i]);
    in["exp_avg"] = &state0;
    in["exp_avg_sq"] = &state1;
    out["exp_avg"] = &state0;
    out["exp_avg_sq"] = &state1;
  } else {
    h[0] = float(lr);
    h[1] = float(cfg.momentum);
    h[2] = float(cfg.weightDecay);
    in["momentum_buffer"] = &state0;
    out["momentum_buffer"] = &state0;
  }
  if (Status s = pkg.invoke("optimizer_step", in, out); !s)
    return s;
  norm = *gradNorm.as<float>();
  return {};
}

Status Trainer::evaluate(const std::string &split, int64_t maxBatches,
                         double &loss, double &accuracy) {
  int64_t n = std::min(maxBatches, data->numBatches(split));
  loss = accuracy = NAN;
  if (n <= 0)
    return {};
  double total = 0, correct = 0, seen = 0;
  for (int64_t i = 0; i < n; ++i) {
    Batch b = data->eval(split, i);
    std::map<std::string, Tensor *> outs{{"output", &lossT}};
    if (Status s = pkg.invoke("loss", {{"x", &b.x}, {"y", &b.y}}, outs); !s)
      return s;
    total += *lossT.as<float>();
    if (classification) {
      Expected<std::vector<Tensor>> logits = pkg.run(
          "forward", {{pkg.manifest().findEntry("forward")->inputs[0].name, b.x}});
      if (!logits)
        return std::move(logits).takeStatus();
      const Tensor &l = (*logits)[0];
      int64_t classes = l.shape().back(), rows = int64_t(l.numElements()) / classes;
      for (int64_t r = 0; r < rows; ++r) {
        const float *row = l.as<float>() + r * classes;
        int64_t best = std::max_element(row, row + classes) - row;
        correct += best == b.y.as<int32_t>()[r];
        seen += 1;
      }
    }
  }
  loss = total / double(n);
  if (classification)
    accuracy = correct / seen;
  return {};
}

void Trainer::log(const json &record) {
  std::string line = record.dump() + "\n";
  std::fputs(line.c_str(), metrics);
  std::fflush(metrics);
}

int Trainer::run() {
  if (Status s = setUp(); !s)
    return fail(s.error());
  if (opts.steps > 0)
    cfg.steps = opts.steps;
  outDir = !opts.outDir.empty()       ? opts.outDir
           : !opts.resume.empty()     ? opts.resume
           : !cfg.checkpointDir.empty() ? cfg.checkpointDir
                                        : "runs/" + pkg.manifest().trainName;
  if (Status s = makeDirs(outDir); !s)
    return fail(s.error());
  if (!opts.resume.empty()) {
    auto all = checkpoints(opts.resume);
    if (all.empty())
      return fail(opts.resume + ": no checkpoints (step-*.safetensors) to resume from");
    if (Status s = loadCheckpoint(all.back().second); !s)
      return fail(s.error());
    if (!opts.quiet)
      std::fprintf(stderr, "resuming from %s (step %lld)\n",
                   all.back().second.c_str(), (long long)(startStep - 1));
  }
  // metrics.jsonl: a resumed run keeps the records up to its checkpoint.
  std::string metricsPath = joinPath(outDir, "metrics.jsonl");
  std::vector<std::string> kept;
  if (startStep > 1) {
    std::ifstream in(metricsPath);
    std::string line;
    while (std::getline(in, line)) {
      json r = json::parse(line, nullptr, false);
      if (r.is_object() && r.value("step", int64_t(0)) < startStep) {
        kept.push_back(line);
        if (r.contains("loss"))
          losses.push_back({r["step"], r["loss"]});
        if (r.contains("val_loss") && r["val_loss"].is_number())
          valLosses.push_back({r["step"], r["val_loss"]});
      }
    }
  }
  metrics = std::fopen(metricsPath.c_str(), "w");
  if (!metrics)
    return fail(metricsPath + ": cannot write: " + std::strerror(errno));
  for (const std::string &line : kept)
    std::fprintf(metrics, "%s\n", line.c_str());

  bool tty = isatty(fileno(stderr)) && !opts.quiet;
  int64_t logEvery = cfg.logEvery > 0 ? cfg.logEvery
                                      : std::max<int64_t>(1, cfg.steps / 20);
  int64_t perStep = cfg.data.batch * cfg.accumulate *
                    (cfg.data.kind == "tokens" ? cfg.data.seq : 1);
  const char *unit = cfg.data.kind == "tokens" ? "tokens/s" : "samples/s";
  if (!opts.quiet)
    std::fprintf(stderr, "training %s: %lld parameters, %s, %lld steps of %lld %s\n",
                 pkg.manifest().trainName.c_str(), (long long)flat,
                 data->describe().c_str(), (long long)cfg.steps,
                 (long long)perStep, cfg.data.kind == "tokens" ? "tokens" : "samples");
  // On a GPU, parameters, optimizer state and (without accumulation, which
  // adds micro-batch gradients on the host) gradients stay on the device;
  // checkpoints copy them back.
  std::vector<Tensor *> resident = {&params, &state0};
  if (cfg.optimizer == "AdamW")
    resident.push_back(&state1);
  if (cfg.accumulate == 1)
    resident.push_back(&grads);
  for (Tensor *t : resident)
    if (Status s = pkg.keepOnDevice(*t); !s)
      return fail(s.error());
  auto clock = [] { return std::chrono::steady_clock::now(); };
  auto started = clock();
  double busy = 0;
  int64_t done = 0;
  for (int64_t step = startStep; step <= cfg.steps; ++step) {
    auto t0 = clock();
    double loss = 0, norm = 0;
    if (Status s = trainStep(step, loss, norm); !s)
      return fail(s.error());
    if (!std::isfinite(loss)) {
      auto all = checkpoints(outDir);
      if (tty)
        std::fputc('\n', stderr);
      return fail("the loss is " + std::string(std::isnan(loss) ? "NaN" : "infinite") +
                  " at step " + std::to_string(step) + "; stopped before updating. " +
                  (all.empty() ? std::string("No checkpoint was written.")
                               : "The last good checkpoint is " + all.back().second));
    }
    double dt = std::chrono::duration<double>(clock() - t0).count();
    busy += dt;
    ++done;
    double rate = double(perStep) * double(done) / busy;
    double lr = cfg.learningRate(step);
    losses.push_back({step, loss});
    json record{{"step", step}, {"loss", loss}, {"lr", lr},
                {"grad_norm", std::isfinite(norm) ? json(norm) : json(nullptr)},
                {unit, rate}, {"step_ms", dt * 1e3}};
    if (cfg.precision == "fp16") {
      record["loss_scale"] = lossScale;
      record["skipped"] = skipped;
    }
    log(record);
    double eta = busy / double(done) * double(cfg.steps - step);
    if (tty) {
      int width = 24, filled = int(width * step / cfg.steps);
      std::fprintf(stderr,
                   "\r step %lld/%lld [%s%s] loss %.4f lr %.2e %.0f %s ETA %s   ",
                   (long long)step, (long long)cfg.steps,
                   std::string(filled, '#').c_str(),
                   std::string(width - filled, '.').c_str(), loss, lr, rate, unit,
                   human(eta).c_str());
    } else if (!opts.quiet && (step % logEvery == 0 || step == cfg.steps)) {
      std::fprintf(stderr, "step %lld/%lld loss %.4f lr %.3e grad_norm %.3f %.0f %s\n",
                   (long long)step, (long long)cfg.steps, loss, lr, norm, rate, unit);
    }
    bool last = step == cfg.steps;
    if ((cfg.evalEvery > 0 && step % cfg.evalEvery == 0) || last) {
      double vl, acc;
      if (Status s = evaluate("val", cfg.evalBatches, vl, acc); !s)
        return fail(s.error());
      if (std::isfinite(vl)) {
        json r{{"step", step}, {"val_loss", vl}};
        if (std::isfinite(acc))
          r["val_accuracy"] = acc;
        log(r);
        valLosses.push_back({step, vl});
        if (!opts.quiet) {
          if (tty)
            std::fputc('\n', stderr);
          std::fprintf(stderr, "step %lld: val loss %.4f%s\n", (long long)step, vl,
                       std::isfinite(acc)
                           ? (" accuracy " + std::to_string(acc * 100).substr(0, 5) + "%").c_str()
                           : "");
        }
      }
    }
    if ((cfg.checkpointEvery > 0 && step % cfg.checkpointEvery == 0) || last)
      if (Status s = writeCheckpoint(step); !s)
        return fail(s.error());
  }
  if (tty)
    std::fputc('\n', stderr);
  double testLoss = NAN, testAcc = NAN;
  if (Status s = evaluate("test", INT64_MAX, testLoss, testAcc); !s)
    return fail(s.error());
  json summary{{"summary", true},
               {"step", cfg.steps},
               {"wall_s", std::chrono::duration<double>(clock() - started).count()},
               {"train_s", busy}};
  if (done)
    summary[unit] = double(perStep) * double(done) / busy;
  if (std::isfinite(testLoss))
    summary["test_loss"] = testLoss;
  if (std::isfinite(testAcc))
    summary["test_accuracy"] = testAcc;
  log(summary);
  std::fclose(metrics);
  metrics = nullptr;
  std::string png = joinPath(outDir, "loss.png");
  if (Status s = plotLosses(png, losses, valLosses); !s)
    return fail(s.error());
  if (!opts.quiet) {
    std::fprintf(stderr, "done: %lld steps in %s", (long long)done,
                 human(busy).c_str());
    if (done)
      std::fprintf(stderr, " (%.0f %s)", double(perStep) * double(done) / busy, unit);
    if (std::isfinite(testAcc))
      std::fprintf(stderr, "; test accuracy %.2f%% (loss %.4f)", testAcc * 100, testLoss);
    std::fprintf(stderr, "\n  %s/metrics.jsonl, %s, checkpoints in %s\n",
                 outDir.c_str(), png.c_str(), outDir.c_str());
  }
  return 0;
}

int Trainer::evalOnly(const std::string &split, int64_t batches) {
  if (Status s = setUp(); !s)
    return fail(s.error());
  if (split != "val" && split != "test")
    return fail("--split must be val or test, got '" + split + "'");
  int64_t available = data->numBatches(split);
  if (available == 0)
    return fail("data '" + cfg.data.name + "' has no " + split + " batches" +
                (split == "test" ? " (only idx data with test_images has a "
                                   "test split)"
                                 : " (is val = 0?)"));
  int64_t n = batches > 0 ? std::min(batches, available) : available;
  double loss, acc;
  if (Status s = evaluate(split, n, loss, acc); !s)
    return fail(s.error());
  std::printf("%s: %lld batches of %lld: loss %.4f", split.c_str(),
              (long long)n, (long long)cfg.data.batch, loss);
  if (std::isfinite(acc))
    std::printf(", accuracy %.2f%%", acc * 100);
  else
    std::printf(", perplexity %.3f", std::exp(loss));
  std::printf("\n");
  return 0;
}

} // namespace

int evalCommand(const EvalOptions &options) {
  command = "eval";
  Expected<Package> pkg = Package::load(options.package, options.weights);
  if (!pkg)
    return fail(pkg.error());
  if (pkg->manifest().train.empty())
    return fail(options.package + ": the package has no data settings (it was "
                                  "not compiled from a train block)");
  Expected<TrainConfig> cfg = TrainConfig::parse(
      pkg->manifest().train, joinPath(options.package, "manifest.json"));
  if (!cfg)
    return fail(cfg.error());
  Trainer t(std::move(*pkg), std::move(*cfg), TrainOptions());
  return t.evalOnly(options.split, options.batches);
}

int trainCommand(const TrainOptions &options) {
  Expected<Package> pkg = Package::load(options.package);
  if (!pkg)
    return fail(pkg.error());
  if (pkg->manifest().train.empty())
    return fail(options.package + ": the package has no training settings "
                                  "(it was not compiled from a train block)");
  Expected<TrainConfig> cfg = TrainConfig::parse(
      pkg->manifest().train, joinPath(options.package, "manifest.json"));
  if (!cfg)
    return fail(cfg.error());
  if (options.seed >= 0)
    cfg->seed = uint64_t(options.seed);
  Trainer trainer(std::move(*pkg), std::move(*cfg), options);
  return trainer.run();
}

} // namespace tessera::rt
