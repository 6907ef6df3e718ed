//===- TrainConfig.cpp - A train block's settings -------------------------===//

#include "runtime/train/TrainConfig.h"

#include <nlohmann/json.hpp>

#include <cmath>

using json = nlohmann::json;

namespace tessera::rt {

namespace {
double num(const json &o, const char *k, double dflt) {
  auto it = o.find(k);
  return it != o.end() && it->is_number() ? it->get<double>() : dflt;
}
int64_t integer(const json &o, const char *k, int64_t dflt) {
  auto it = o.find(k);
  return it != o.end() && it->is_number_integer() ? it->get<int64_t>() : dflt;
}
std::string str(const json &o, const char *k, const std::string &dflt) {
  auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : dflt;
}
bool boolean(const json &o, const char *k, bool dflt) {
  auto it = o.find(k);
  return it != o.end() && it->is_boolean() ? it->get<bool>() : dflt;
}
std::vector<int64_t> ints(const json &o, const char *k) {
  std::vector<int64_t> v;
  auto it = o.find(k);
  if (it != o.end() && it->is_array())
    for (const json &e : *it)
      if (e.is_number_integer())
        v.push_back(e.get<int64_t>());
  return v;
}
} // namespace

Expected<TrainConfig> TrainConfig::parse(const std::string &text,
                                         const std::string &where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception &e) {
    return Status::fail(where + ": train: not valid JSON: " + e.what());
  }
  TrainConfig c;
  if (!j.contains("data") || !j["data"].is_object())
    return Status::fail(where + ": train: no data section");
  const json &d = j["data"];
  c.data.kind = str(d, "kind", "");
  c.data.name = str(d, "name", "");
  c.data.path = str(d, "path", "");
  c.data.tokenDType = str(d, "dtype", "u16");
  c.data.seq = integer(d, "seq", 0);
  c.data.images = str(d, "images", "");
  c.data.labels = str(d, "labels", "");
  c.data.testImages = str(d, "test_images", "");
  c.data.testLabels = str(d, "test_labels", "");
  c.data.normalize = boolean(d, "normalize", false);
  c.data.features = integer(d, "features", 0);
  c.data.label = integer(d, "label", -1);
  c.data.header = boolean(d, "header", false);
  c.data.batch = integer(d, "batch", 0);
  c.data.classes = integer(d, "classes", 0);
  c.data.val = num(d, "val", 0);
  c.data.xShape = ints(d, "x_shape");
  c.data.yShape = ints(d, "y_shape");
  if (c.data.kind != "tokens" && c.data.kind != "idx" && c.data.kind != "csv")
    return Status::fail(where + ": train.data.kind: unknown data source '" +
                        c.data.kind + "'");
  if (c.data.batch <= 0)
    return Status::fail(where + ": train.data.batch: must be positive");

  if (j.contains("optimizer") && j["optimizer"].is_object()) {
    const json &o = j["optimizer"];
    c.optimizer = str(o, "name", "AdamW");
    c.lr = num(o, "lr", c.lr);
    if (o.contains("betas") && o["betas"].is_array() && o["betas"].size() == 2) {
      c.beta1 = o["betas"][0].get<double>();
      c.beta2 = o["betas"][1].get<double>();
    }
    c.eps = num(o, "eps", c.eps);
    c.weightDecay = num(o, "weight_decay", c.optimizer == "SGD" ? 0.0 : 0.01);
    c.momentum = num(o, "momentum", 0);
    c.nesterov = boolean(o, "nesterov", false);
  }
  if (j.contains("schedule") && j["schedule"].is_object()) {
    const json &s = j["schedule"];
    c.schedule = str(s, "name", "constant");
    c.warmup = integer(s, "warmup", 0);
    c.minLr = num(s, "min_lr", 0);
  }
  c.steps = integer(j, "steps", 1);
  c.accumulate = integer(j, "accumulate", 1);
  if (j.contains("clip") && j["clip"].is_object())
    c.clip = num(j["clip"], "max_norm", 0);
  if (j.contains("eval") && j["eval"].is_object()) {
    c.evalEvery = integer(j["eval"], "steps", 0);
    c.evalBatches = integer(j["eval"], "batches", 10);
  }
  if (j.contains("log") && j["log"].is_object())
    c.logEvery = integer(j["log"], "steps", 0);
  if (j.contains("checkpoint") && j["checkpoint"].is_object()) {
    c.checkpointEvery = integer(j["checkpoint"], "steps", 0);
    c.checkpointDir = str(j["checkpoint"], "dir", "");
    c.keep = integer(j["checkpoint"], "keep", 3);
  }
  c.seed = uint64_t(integer(j, "seed", 0));
  // Settings the runtime does not carry out yet are refused, not ignored.
  // bf16 is compiled into the package (tessera-mixed-precision); fp16 also
  // needs dynamic loss scaling, which the runtime does not do yet.
  std::string precision = j.contains("precision") && j["precision"].is_object()
                              ? str(j["precision"], "name", "f32")
                              : "f32";
  if (precision != "f32" && precision != "bf16" && precision != "fp16")
    return Status::fail(where + ": train.precision: " + precision +
                        " training is not implemented yet; use f32, bf16 or "
                        "fp16");
  c.precision = precision;
  if (precision == "fp16") {
    const json &p = j["precision"];
    auto ls = p.find("loss_scale");
    if (ls != p.end() && ls->is_number()) {
      c.lossScale = ls->get<double>();
      c.dynamicScale = false;
    }
    c.growthInterval = integer(p, "growth_interval", 2000);
  }
  if (j.contains("parallel") && j["parallel"].is_object() &&
      str(j["parallel"], "name", "none") != "none")
    return Status::fail(where + ": train.parallel: data parallelism is not "
                                "implemented yet; remove the setting or use "
                                "parallel = none");
  if (c.optimizer != "AdamW" && c.optimizer != "SGD")
    return Status::fail(where + ": train.optimizer: unknown optimizer '" +
                        c.optimizer + "'");
  return c;
}

double TrainConfig::learningRate(int64_t step) const {
  // 0-based position s; warmup ramps linearly to lr over `warmup` steps,
  // then the decay runs over the remaining steps.
  double s = double(step - 1);
  if (schedule == "constant")
    return lr;
  if (warmup > 0 && s < double(warmup))
    return lr * (s + 1) / double(warmup);
  if (schedule == "warmup")
    return lr;
  double span = double(steps - warmup);
  double p = span > 0 ? (s - double(warmup)) / span : 1.0;
  p = std::fmin(std::fmax(p, 0.0), 1.0);
  if (schedule == "warmup_cosine")
    return minLr + 0.5 * (lr - minLr) * (1 + std::cos(M_PI * p));
  if (schedule == "warmup_linear")
    return minLr + (lr - minLr) * (1 - p);
  return lr;
}

} // namespace tessera::rt
