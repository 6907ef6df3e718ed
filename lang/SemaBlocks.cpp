//===- SemaBlocks.cpp - data, train and compress blocks -------------------===//
//
// Settings are ordinary expressions evaluated in a context where unknown bare
// names are symbols (`per_channel`) and unknown calls are schema calls
// (`AdamW(lr=1e-3)`). Each setting is then checked against a small schema:
// known keys, argument types and ranges. Parameter-path globs are resolved
// against the instantiated model; a glob that matches nothing is an error.
//
//===----------------------------------------------------------------------===//

#include "lang/SemaImpl.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace llvm;
using namespace tessera::ast;

namespace tessera {

bool globMatches(const Glob &glob, StringRef path) {
  SmallVector<StringRef, 8> parts;
  path.split(parts, '.');
  const auto &segs = glob.segments;
  // Dynamic programming over (segment, part): `**` absorbs zero or more.
  std::vector<std::vector<char>> ok(segs.size() + 1,
                                    std::vector<char>(parts.size() + 1, 0));
  ok[segs.size()][parts.size()] = 1;
  for (size_t s = segs.size(); s-- > 0;) {
    for (size_t p = parts.size() + 1; p-- > 0;) {
      switch (segs[s].kind) {
      case Glob::SegKind::DoubleStar:
        ok[s][p] = ok[s + 1][p] || (p < parts.size() && ok[s][p + 1]);
        break;
      case Glob::SegKind::Star:
        ok[s][p] = p < parts.size() && ok[s + 1][p + 1];
        break;
      case Glob::SegKind::Name:
        ok[s][p] = p < parts.size() && parts[p] == segs[s].text &&
                   ok[s + 1][p + 1];
        break;
      }
    }
  }
  return ok[0][0];
}

namespace {

/// One argument of a schema call.
struct ArgSpec {
  enum Type { Int, Float, Bool, Str, Ratio, Symbol, DTypeT, DataRef, TrainRef,
              FloatPair, StrList, Any };
  const char *name;
  Type type;
  bool required = false;
  double lo = -INFINITY, hi = INFINITY;
  bool hiInclusive = true, loInclusive = true;
  std::vector<const char *> choices = {};
};

struct CallSpec {
  const char *name;
  std::vector<ArgSpec> args;
};

std::string specList(ArrayRef<CallSpec> specs) {
  std::vector<std::string> parts;
  for (const CallSpec &s : specs) {
    std::vector<std::string> as;
    for (const ArgSpec &a : s.args)
      if (a.required)
        as.push_back(a.name);
    parts.push_back(std::string(s.name) + "(" + join(as, ", ") +
                    (as.size() < s.args.size() ? (as.empty() ? "..." : ", ...")
                                               : "") +
                    ")");
  }
  return join(parts, ", ");
}

} // namespace

/// Checks a setting value against the calls it may be. On success returns
/// the call with every argument present (defaults are not filled in, the
/// consumer applies them) and named in `named`.
static std::optional<Value> checkSchema(Sema::Impl &S, const Value &v,
                                        ArrayRef<CallSpec> specs,
                                        StringRef what, SMLoc loc) {
  Value call = v;
  if (v.kind == Value::Kind::Symbol || v.kind == Value::Kind::Builtin ||
      v.kind == Value::Kind::DType || v.kind == Value::Kind::None) {
    call.kind = Value::Kind::Call;
    call.s = v.kind == Value::Kind::DType ? dtypeName(v.dtype).str()
             : v.kind == Value::Kind::None ? "none"
                                           : v.s;
    call.elems.clear();
    call.named.clear();
  }
  SMLoc where = v.range.Start.isValid() ? v.range.Start : loc;
  if (call.kind != Value::Kind::Call) {
    S.error(where, what + " must be one of " + specList(specs) + ", got " +
                       v.describe(),
            {v.range});
    return std::nullopt;
  }
  const CallSpec *spec = nullptr;
  for (const CallSpec &s : specs)
    if (call.s == s.name)
      spec = &s;
  if (!spec) {
    // The closest name within two edits; among equally close ones, one with
    // the same first letter, then the longest common ending ('f16' is one
    // edit from 'f32', 'bf16' and 'fp16': it means 'fp16').
    auto score = [&](StringRef name) {
      StringRef given = call.s;
      unsigned suffix = 0;
      while (suffix < given.size() && suffix < name.size() &&
             given[given.size() - 1 - suffix] == name[name.size() - 1 - suffix])
        ++suffix;
      bool sameFirst = !given.empty() && !name.empty() && given[0] == name[0];
      return std::make_tuple(given.edit_distance(name, true), !sameFirst,
                             -int(suffix));
    };
    std::string best;
    for (const CallSpec &s : specs)
      if (std::get<0>(score(s.name)) <= 2 &&
          (best.empty() || score(s.name) <= score(best)))
        best = s.name;
    S.error(where, "unknown " + what + " '" + call.s + "'; expected one of " +
                       specList(specs) +
                       (best.empty() ? "" : " (did you mean '" + best + "'?)"),
            {v.range});
    return std::nullopt;
  }
  // Map positional arguments onto names.
  std::vector<std::pair<std::string, Value>> named;
  if (call.elems.size() > spec->args.size()) {
    S.error(call.elems[spec->args.size()].range.Start,
            formatv("{0} takes at most {1} argument(s)", spec->name,
                    spec->args.size()));
    return std::nullopt;
  }
  for (size_t i = 0; i < call.elems.size(); ++i)
    named.push_back({spec->args[i].name, call.elems[i]});
  for (auto &kv : call.named) {
    auto it = llvm::find_if(spec->args,
                            [&](const ArgSpec &a) { return kv.first == a.name; });
    if (it == spec->args.end()) {
      std::vector<std::string> names;
      for (const ArgSpec &a : spec->args)
        names.push_back(a.name);
      S.error(kv.second.range.Start.isValid() ? kv.second.range.Start : where,
              std::string(spec->name) + " has no argument '" + kv.first +
                  "'" +
                  (names.empty() ? " (it takes none)"
                                 : " (arguments: " + join(names, ", ") + ")"));
      return std::nullopt;
    }
    for (auto &prev : named)
      if (prev.first == kv.first) {
        S.error(kv.second.range.Start, std::string(spec->name) +
                                           ": argument '" + kv.first +
                                           "' is given twice");
        return std::nullopt;
      }
    named.push_back(kv);
  }
  for (const ArgSpec &a : spec->args) {
    auto it = llvm::find_if(named, [&](auto &kv) { return kv.first == a.name; });
    if (it == named.end()) {
      if (a.required) {
        S.error(where, std::string(spec->name) + " needs the argument '" +
                           a.name + "'",
                {v.range});
        return std::nullopt;
      }
      continue;
    }
    Value &x = it->second;
    SMLoc at = x.range.Start.isValid() ? x.range.Start : where;
    std::string label = std::string(spec->name) + "(" + a.name + ")";
    auto bad = [&](const Twine &expect) {
      S.error(at, label + " must be " + expect + ", got " + x.describe(),
              {x.range});
      return std::nullopt;
    };
    auto range = [&](double d) -> bool {
      bool ok = (a.loInclusive ? d >= a.lo : d > a.lo) &&
                (a.hiInclusive ? d <= a.hi : d < a.hi);
      if (!ok) {
        auto num = [](double d) {
          char buf[32];
          snprintf(buf, sizeof(buf), "%g", d);
          return std::string(buf);
        };
        std::string lo = std::isinf(a.lo) ? "" : num(a.lo);
        std::string hi = std::isinf(a.hi) ? "" : num(a.hi);
        std::string bounds;
        if (!lo.empty() && !hi.empty())
          bounds = std::string(a.loInclusive ? "in [" : "in (") + lo + ", " + hi +
                   (a.hiInclusive ? "]" : ")");
        else if (!lo.empty())
          bounds = std::string(a.loInclusive ? ">= " : "> ") + lo;
        else
          bounds = std::string(a.hiInclusive ? "<= " : "< ") + hi;
        S.error(at, label + " must be " + bounds + ", got " + x.str(),
                {x.range});
      }
      return ok;
    };
    switch (a.type) {
    case ArgSpec::Int:
      if (!x.getInt())
        return bad("an integer");
      if (!range(double(*x.getInt())))
        return std::nullopt;
      break;
    case ArgSpec::Float:
      if (!x.isNumber() || (x.kind == Value::Kind::Int && !x.getInt()))
        return bad("a number");
      if (!range(x.asDouble()))
        return std::nullopt;
      break;
    case ArgSpec::Bool:
      if (x.kind != Value::Kind::Bool)
        return bad("true or false");
      break;
    case ArgSpec::Str:
      if (x.kind != Value::Kind::Str)
        return bad("a string");
      break;
    case ArgSpec::Ratio:
      if (x.kind != Value::Kind::Ratio)
        return bad("an N:M ratio such as 2:4");
      if (x.n <= 0 || x.m <= 0 || x.n >= x.m || x.m > 64) {
        S.error(at, label + " must be N:M with 0 < N < M <= 64, got " +
                        x.str(),
                {x.range});
        return std::nullopt;
      }
      break;
    case ArgSpec::Symbol:
    case ArgSpec::DTypeT: {
      std::string name = x.kind == Value::Kind::Symbol ? x.s
                         : x.kind == Value::Kind::DType
                             ? dtypeName(x.dtype).str()
                         : x.kind == Value::Kind::Builtin ? x.s
                                                          : "";
      if (name.empty() ||
          llvm::none_of(a.choices, [&](const char *c) { return name == c; })) {
        std::vector<std::string> cs(a.choices.begin(), a.choices.end());
        return bad("one of " + join(cs, ", "));
      }
      x = Value();
      x.kind = Value::Kind::Symbol;
      x.s = name;
      break;
    }
    case ArgSpec::DataRef:
      if (x.kind != Value::Kind::Decl || !isa<DataDecl>(x.decl))
        return bad("the name of a data declaration");
      break;
    case ArgSpec::TrainRef:
      if (x.kind != Value::Kind::Decl || !isa<TrainDecl>(x.decl))
        return bad("the name of a train block");
      break;
    case ArgSpec::FloatPair:
      if (x.kind != Value::Kind::Tuple || x.elems.size() != 2 ||
          !x.elems[0].isNumber() || !x.elems[1].isNumber())
        return bad("a pair of numbers such as (0.9, 0.999)");
      for (const Value &e : x.elems)
        if (!range(e.asDouble()))
          return std::nullopt;
      break;
    case ArgSpec::StrList:
      if (x.kind != Value::Kind::List ||
          llvm::any_of(x.elems,
                       [](const Value &e) { return e.kind != Value::Kind::Str; }))
        return bad("a list of strings");
      break;
    case ArgSpec::Any:
      break;
    }
  }
  call.elems.clear();
  call.named = std::move(named);
  return call;
}

static const Value *argOf(const Value &call, StringRef name) {
  for (const auto &kv : call.named)
    if (kv.first == name)
      return &kv.second;
  return nullptr;
}

static double numArg(const Value &call, StringRef name, double dflt) {
  const Value *v = argOf(call, name);
  return v ? v->asDouble() : dflt;
}

Glob parseGlobString(StringRef text, SMRange range) {
  Glob g;
  g.range = range;
  SmallVector<StringRef, 8> parts;
  text.split(parts, '.');
  for (StringRef p : parts)
    g.segments.push_back({p == "**"  ? Glob::SegKind::DoubleStar
                          : p == "*" ? Glob::SegKind::Star
                                     : Glob::SegKind::Name,
                          p.str()});
  return g;
}

std::string Glob::str() const {
  std::vector<std::string> parts;
  for (const Segment &s : segments)
    parts.push_back(s.text);
  return join(parts, ".");
}

Value Sema::Impl::evalSetting(const Expr *e, const File *file, Env *extra) {
  Env env;
  env.file = file;
  env.allowSymbols = true;
  env.parent = extra;
  if (extra)
    env.self = extra->self;
  return eval(e, env);
}

//===----------------------------------------------------------------------===//
// data
//===----------------------------------------------------------------------===//

void Sema::Impl::checkData(const DataDecl *decl, const File *file) {
  static const std::vector<CallSpec> specs = {
      {"tokens",
       {{"path", ArgSpec::Str, true},
        {"dtype", ArgSpec::DTypeT, false, -INFINITY, INFINITY, true, true,
         {"u16", "u32"}},
        {"seq", ArgSpec::Int, true, 1, 1e6},
        {"batch", ArgSpec::Int, true, 1, 1e6},
        {"val", ArgSpec::Float, false, 0, 1, false}}},
      {"idx",
       {{"images", ArgSpec::Str, true},
        {"labels", ArgSpec::Str, true},
        {"test_images", ArgSpec::Str},
        {"test_labels", ArgSpec::Str},
        {"shape", ArgSpec::Any, true},
        {"classes", ArgSpec::Int, true, 2, 1e6},
        {"batch", ArgSpec::Int, true, 1, 1e6},
        {"val", ArgSpec::Float, false, 0, 1, false},
        {"normalize", ArgSpec::Bool}}},
      {"csv",
       {{"path", ArgSpec::Str, true},
        {"features", ArgSpec::Int, true, 1, 1 << 24},
        {"classes", ArgSpec::Int, true, 2, 1e6},
        {"batch", ArgSpec::Int, true, 1, 1e6},
        {"label", ArgSpec::Int},
        {"val", ArgSpec::Float, false, 0, 1, false},
        {"header", ArgSpec::Bool}}},
  };
  Value v = evalSetting(decl->source, file);
  if (v.isError())
    return;
  auto call = checkSchema(*this, v, specs, "data source", decl->source->loc());
  if (!call)
    return;
  auto checked = std::make_unique<CheckedData>();
  checked->decl = decl;
  checked->kind = call->s;
  checked->source = *call;
  int64_t batch = *argOf(*call, "batch")->getInt();
  checked->x.shape.push_back(DimExpr::constant(batch));
  checked->y.shape.push_back(DimExpr::constant(batch));
  checked->y.dtype = DType::I32;
  if (call->s == "tokens") {
    int64_t seq = *argOf(*call, "seq")->getInt();
    checked->x.dtype = DType::I32;
    checked->x.shape.push_back(DimExpr::constant(seq));
    checked->y.shape.push_back(DimExpr::constant(seq));
  } else if (call->s == "idx") {
    if (bool(argOf(*call, "test_images")) != bool(argOf(*call, "test_labels"))) {
      error(decl->source->loc(), "idx() needs both test_images and "
                                 "test_labels, or neither");
      return;
    }
    const Value *shape = argOf(*call, "shape");
    checked->x.dtype = DType::F32;
    if (shape->kind != Value::Kind::List || shape->elems.empty()) {
      error(shape->range.Start, "idx(shape) must be a list of dimensions such "
                                "as [784] or [28, 28]");
      return;
    }
    for (const Value &d : shape->elems) {
      auto c = d.getInt();
      if (!c || *c <= 0) {
        error(d.range.Start, "idx(shape) dimensions must be positive integers");
        return;
      }
      checked->x.shape.push_back(DimExpr::constant(*c));
    }
  } else {
    checked->x.dtype = DType::F32;
    int64_t features = *argOf(*call, "features")->getInt();
    checked->x.shape.push_back(DimExpr::constant(features));
    if (const Value *label = argOf(*call, "label")) {
      int64_t l = *label->getInt();
      if (l < -(features + 1) || l > features) {
        error(label->range.Start,
              formatv("csv(label) is a column index among {0} columns "
                      "(features + label), so it must be in [{1}, {2}], got "
                      "{3}",
                      features + 1, -(features + 1), features, l));
        return;
      }
    }
  }
  dataByDecl[decl] = checked.get();
  data.push_back(std::move(checked));
}

//===----------------------------------------------------------------------===//
// train
//===----------------------------------------------------------------------===//

ModuleInstance *Sema::Impl::modelFromSetting(const Setting &s,
                                             const File *file) {
  const Expr *calleeExpr = s.value;
  const CallExpr *call = dyn_cast<CallExpr>(s.value);
  if (call)
    calleeExpr = call->callee;
  Env env;
  env.file = file;
  Value callee = eval(calleeExpr, env);
  if (callee.isError())
    return nullptr;
  auto *model = callee.kind == Value::Kind::Decl
                    ? dyn_cast<ModelDecl>(callee.decl)
                    : nullptr;
  if (!model) {
    error(s.value->loc(), "'model' must name a model, e.g. GPT(dim=384), got " +
                              callee.describe(),
          {s.value->range});
    return nullptr;
  }
  CallArgs args;
  args.callLoc = s.value->loc();
  args.callRange = s.value->range;
  if (call) {
    for (const Arg &a : call->args) {
      Value v = eval(a.value, env);
      if (v.isError())
        return nullptr;
      if (a.name.empty() && !args.named.empty()) {
        error(a.value->loc(), "positional argument after a named argument");
        return nullptr;
      }
      if (a.name.empty()) {
        args.positional.push_back(v);
      } else {
        args.named.push_back({a.name, v});
        args.namedLocs.push_back(a.nameLoc);
      }
    }
  }
  ModuleInstance *inst =
      instantiate(model, callee.file ? callee.file : file, args, "");
  if (inst)
    checkInstanceFns(inst);
  return inst;
}

/// Reports `key` settings given twice and keys not in `known`.
static bool checkKeys(Sema::Impl &S, ArrayRef<const Setting *> settings,
                      ArrayRef<const char *> known, StringRef block,
                      StringMap<const Setting *> &byKey) {
  bool ok = true;
  for (const Setting *s : settings) {
    if (llvm::none_of(known, [&](const char *k) { return s->key == k; })) {
      std::string best;
      unsigned bestDist = 3;
      for (const char *k : known) {
        unsigned d = StringRef(s->key).edit_distance(k, true, bestDist);
        if (d < bestDist) {
          bestDist = d;
          best = k;
        }
      }
      std::vector<std::string> ks(known.begin(), known.end());
      S.error(s->keyLoc, "unknown setting '" + s->key + "' in " + block +
                             " block" +
                             (best.empty() ? "; known settings: " + join(ks, ", ")
                                           : "; did you mean '" + best + "'?"));
      ok = false;
      continue;
    }
    auto [it, inserted] = byKey.insert({s->key, s});
    if (!inserted) {
      S.error(s->keyLoc, "setting '" + s->key + "' is given twice");
      S.note(it->second->keyLoc, "first given here");
      ok = false;
    }
  }
  return ok;
}

void Sema::Impl::checkTrain(const TrainDecl *decl, const File *file) {
  static const char *const known[] = {
      "model", "data", "loss", "optimizer", "schedule", "steps", "accumulate",
      "clip", "precision", "parallel", "eval", "checkpoint", "seed", "log"};
  std::vector<const Setting *> settings;
  for (const Setting &s : decl->settings)
    settings.push_back(&s);
  StringMap<const Setting *> byKey;
  checkKeys(*this, settings, known, "train", byKey);
  std::vector<std::string> missing;
  for (const char *req : {"model", "data", "loss", "optimizer", "steps"})
    if (!byKey.count(req))
      missing.push_back(req);
  if (!missing.empty())
    error(decl->nameLoc, "train block '" + decl->name + "' is missing " +
                             (missing.size() == 1 ? "the setting " : "the settings ") +
                             join(missing, ", "));

  auto checked = std::make_unique<CheckedTrain>();
  checked->file = file;
  checked->decl = decl;
  trainByDecl[decl] = checked.get();
  CheckedTrain *t = checked.get();
  trains.push_back(std::move(checked));

  if (auto it = byKey.find("model"); it != byKey.end())
    t->model = modelFromSetting(*it->second, file);
  if (auto it = byKey.find("data"); it != byKey.end()) {
    Value d = evalSetting(it->second->value, file);
    if (!d.isError()) {
      if (d.kind != Value::Kind::Decl || !isa<DataDecl>(d.decl))
        error(it->second->value->loc(),
              "'data' must name a data declaration, got " + d.describe());
      else
        t->data = dataByDecl.lookup(d.decl);
    }
  }
  // The loss is evaluated with `model`, `x` and `y` (one batch) in scope.
  if (auto it = byKey.find("loss"); it != byKey.end() && t->model && t->data) {
    Env env;
    env.file = file;
    Value m;
    m.kind = Value::Kind::Module;
    m.module = t->model;
    env.vars["model"] = m;
    env.vars["x"] = Value::ofTensor(t->data->x);
    env.vars["y"] = Value::ofTensor(t->data->y);
    frames.push_back({it->second->keyLoc, "in the loss of train block '" +
                                              decl->name + "'"});
    Value loss = eval(it->second->value, env);
    frames.pop_back();
    if (!loss.isError()) {
      if (loss.kind != Value::Kind::Tensor || loss.tensor.rank() != 0 ||
          !isFloatDType(loss.tensor.dtype))
        error(it->second->value->loc(),
              "the loss must be a floating-point scalar (f32[]), got " +
                  loss.describe(),
              {it->second->value->range});
      else
        t->settings["loss"] = loss;
    }
  }

  auto check = [&](StringRef key, ArrayRef<CallSpec> specs) {
    auto it = byKey.find(key);
    if (it == byKey.end())
      return;
    Value v = evalSetting(it->second->value, file);
    if (v.isError())
      return;
    if (auto c = checkSchema(*this, v, specs, key, it->second->value->loc()))
      t->settings[key] = *c;
  };
  check("optimizer",
        {{"AdamW",
          {{"lr", ArgSpec::Float, true, 0, INFINITY, true, false},
           {"betas", ArgSpec::FloatPair, false, 0, 1, false},
           {"eps", ArgSpec::Float, false, 0, 1, false, false},
           {"weight_decay", ArgSpec::Float, false, 0, 10},
           {"no_decay", ArgSpec::StrList}}},
         {"SGD",
          {{"lr", ArgSpec::Float, true, 0, INFINITY, true, false},
           {"momentum", ArgSpec::Float, false, 0, 1, false},
           {"nesterov", ArgSpec::Bool},
           {"weight_decay", ArgSpec::Float, false, 0, 10}}}});
  check("schedule",
        {{"constant", {}},
         {"warmup", {{"warmup", ArgSpec::Int, true, 0, 1e12}}},
         {"warmup_cosine",
          {{"warmup", ArgSpec::Int, false, 0, 1e12},
           {"min_lr", ArgSpec::Float, false, 0, 10}}},
         {"warmup_linear",
          {{"warmup", ArgSpec::Int, false, 0, 1e12},
           {"min_lr", ArgSpec::Float, false, 0, 10}}}});
  check("clip", {{"global_norm", {{"max_norm", ArgSpec::Float, true, 0, INFINITY, true, false}}},
                 {"none", {}}});
  check("precision",
        {{"f32", {}},
         {"bf16", {{"master", ArgSpec::DTypeT, false, -INFINITY, INFINITY,
                    true, true, {"f32"}}}},
         {"fp16", {{"loss_scale", ArgSpec::Any},
                   {"growth_interval", ArgSpec::Int, false, 1, 1e9}}},
         {"fp8", {{"format", ArgSpec::Symbol, false, -INFINITY, INFINITY, true,
                   true, {"e4m3", "hybrid"}},
                  {"master", ArgSpec::DTypeT, false, -INFINITY, INFINITY,
                   true, true, {"f32"}}}}});
  check("parallel",
        {{"data", {{"backend", ArgSpec::Symbol, false, -INFINITY, INFINITY,
                    true, true, {"auto", "mpi", "nccl"}},
                   {"zero", ArgSpec::Int, false, 0, 1}}},
         {"none", {}}});
  check("eval", {{"every", {{"steps", ArgSpec::Int, true, 1, 1e12},
                            {"batches", ArgSpec::Int, false, 1, 1e9}}}});
  check("log", {{"every", {{"steps", ArgSpec::Int, true, 1, 1e12}}}});
  check("checkpoint", {{"every", {{"steps", ArgSpec::Int, true, 1, 1e12},
                                  {"dir", ArgSpec::Str, true},
                                  {"keep", ArgSpec::Int, false, 1, 1e6}}}});

  auto scalar = [&](StringRef key, double lo, double hi) {
    auto it = byKey.find(key);
    if (it == byKey.end())
      return;
    Value v = evalSetting(it->second->value, file);
    if (v.isError())
      return;
    auto c = v.getInt();
    if (!c || *c < lo || *c > hi) {
      error(it->second->value->loc(),
            formatv("'{0}' must be an integer in [{1}, {2}], got {3}", key,
                    int64_t(lo), int64_t(hi), v.str()),
            {it->second->value->range});
      return;
    }
    t->settings[key] = v;
  };
  scalar("steps", 1, 1e12);
  scalar("accumulate", 1, 1e6);
  scalar("seed", 0, 9.2e18);
  if (auto it = byKey.find("precision"); it != byKey.end() &&
                                         t->settings.count("precision")) {
    const Value &p = t->settings["precision"];
    if (const Value *ls = argOf(p, "loss_scale"))
      if (!(ls->kind == Value::Kind::Symbol && ls->s == "dynamic") &&
          !(ls->isNumber() && ls->asDouble() > 0))
        error(ls->range.Start, "fp16(loss_scale) must be 'dynamic' or a "
                               "positive number, got " + ls->describe());
  }

  // Cross-setting checks.
  if (t->settings.count("steps") && t->settings.count("schedule")) {
    int64_t steps = *t->settings["steps"].getInt();
    const Value &sch = t->settings["schedule"];
    if (const Value *w = argOf(sch, "warmup"); w && *w->getInt() >= steps)
      error(w->range.Start, formatv("warmup ({0} steps) must be shorter than "
                                    "the run ({1} steps)",
                                    *w->getInt(), steps));
    if (t->settings.count("optimizer"))
      if (const Value *minLr = argOf(sch, "min_lr"))
        if (minLr->asDouble() > numArg(t->settings["optimizer"], "lr", 0))
          error(minLr->range.Start, "min_lr " + minLr->str() +
                                        " is larger than the optimizer's lr " +
                                        argOf(t->settings["optimizer"], "lr")->str());
  }
  if (t->model && t->settings.count("optimizer"))
    if (const Value *nd = argOf(t->settings["optimizer"], "no_decay")) {
      std::vector<const ParamInfo *> params;
      t->model->collectParams(params);
      for (const Value &g : nd->elems) {
        Glob glob = parseGlobString(g.s, g.range);
        if (llvm::none_of(params, [&](const ParamInfo *p) {
              return globMatches(glob, p->path);
            }))
          reportUnmatchedGlob(glob, g.range, "no_decay pattern " + g.str(),
                              params, t->model->signature);
      }
    }
}

void Sema::Impl::reportUnmatchedGlob(const Glob &glob, SMRange range,
                                     const Twine &what,
                                     ArrayRef<const ParamInfo *> params,
                                     StringRef signature) {
  error(range.Start, what + " matches no parameter of " + signature, {range});
  std::vector<std::string> examples;
  for (size_t i = 0; i < params.size() && i < 4; ++i)
    examples.push_back(params[i]->path);
  if (examples.empty())
    return;
  // A '*' inside a name ("norm*") is no wildcard: say so, since that is the
  // usual reason a pattern that looks right matches nothing.
  std::string hint = "'*' matches one segment, '**' any number";
  for (const Glob::Segment &s : glob.segments)
    if (s.kind == Glob::SegKind::Name && StringRef(s.text).contains('*')) {
      hint = "'" + s.text + "' is a name: '*' matches one whole segment, "
             "'**' any number of them";
      break;
    }
  note(range.Start, "parameters look like: " + join(examples, ", ") +
                        (params.size() > 4 ? ", ..." : "") + " (" + hint +
                        ")");
}

//===----------------------------------------------------------------------===//
// compress
//===----------------------------------------------------------------------===//

void Sema::Impl::checkCompress(const CompressDecl *decl, const File *file) {
  auto checked = std::make_unique<CheckedCompress>();
  checked->decl = decl;
  CheckedCompress *c = checked.get();
  compresses.push_back(std::move(checked));

  std::vector<const Setting *> settings;
  for (const CompressRule *r : decl->rules)
    if (auto *s = dyn_cast<CompressSetting>(r))
      settings.push_back(&s->setting);
  StringMap<const Setting *> byKey;
  checkKeys(*this, settings, {"from", "model", "data", "seed"}, "compress",
            byKey);

  // Where the weights come from: a train block, or a file plus a model.
  auto fromIt = byKey.find("from");
  if (fromIt == byKey.end()) {
    error(decl->nameLoc, "compress block '" + decl->name +
                             "' needs 'from = <train block>' or "
                             "'from = weights(\"file.safetensors\")'");
    return;
  }
  Value from = evalSetting(fromIt->second->value, file);
  if (from.isError())
    return;
  if (from.kind == Value::Kind::Decl && isa<TrainDecl>(from.decl)) {
    c->from = trainByDecl.lookup(from.decl);
    if (!c->from) {
      error(fromIt->second->value->loc(),
            "train block '" + from.decl->name + "' is not defined in this file");
      return;
    }
    c->model = c->from->model;
    if (byKey.count("model"))
      error(byKey["model"]->keyLoc, "'model' is taken from train block '" +
                                        from.decl->name + "'; remove it");
  } else {
    auto w = checkSchema(*this, from, {{"weights", {{"path", ArgSpec::Str, true}}}},
                         "'from'", fromIt->second->value->loc());
    if (!w)
      return;
    auto mIt = byKey.find("model");
    if (mIt == byKey.end()) {
      error(fromIt->second->keyLoc,
            "compressing weights from a file needs a 'model' setting that "
            "says which model they belong to");
      return;
    }
    c->model = modelFromSetting(*mIt->second, file);
  }
  if (auto it = byKey.find("data"); it != byKey.end()) {
    Value d = evalSetting(it->second->value, file);
    if (!d.isError() && (d.kind != Value::Kind::Decl || !isa<DataDecl>(d.decl)))
      error(it->second->value->loc(),
            "'data' must name a data declaration, got " + d.describe());
  }
  if (!c->model)
    return;

  std::vector<const ParamInfo *> params;
  c->model->collectParams(params);
  DenseMap<const ParamInfo *, const ast::CompressRule *> quantizedBy, prunedBy;

  auto resolve = [&](const Glob &glob, std::vector<const ParamInfo *> &out) {
    for (const ParamInfo *p : params)
      if (globMatches(glob, p->path))
        out.push_back(p);
    if (out.empty()) {
      reportUnmatchedGlob(glob, glob.range, "pattern '" + glob.str() + "'",
                          params, c->model->signature);
      return false;
    }
    return true;
  };
  // Drops vectors (biases, norms) from matrix-only rules, with one warning.
  auto matricesOnly = [&](const Glob &glob, std::vector<const ParamInfo *> &ps,
                          StringRef what) {
    size_t before = ps.size();
    std::string example;
    ps.erase(std::remove_if(ps.begin(), ps.end(),
                            [&](const ParamInfo *p) {
                              if (p->type.rank() >= 2)
                                return false;
                              if (example.empty())
                                example = p->path + " " + p->type.str();
                              return true;
                            }),
             ps.end());
    if (ps.empty()) {
      error(glob.range.Start, what + " applies to matrices, but '" +
                                  glob.str() + "' matches only vectors (e.g. " +
                                  example + ")",
            {glob.range});
      return false;
    }
    if (ps.size() != before)
      diags.warning(glob.range.Start,
                    formatv("{0}: skipping {1} parameter(s) of rank < 2 "
                            "matched by '{2}' (e.g. {3})",
                            what, before - ps.size(), glob.str(), example),
                    {glob.range});
    return true;
  };

  // Each parameter may be pruned by one rule and quantized by one rule.
  using Claims = DenseMap<const ParamInfo *, const ast::CompressRule *>;
  auto claimOnce = [&](Claims &claims, ArrayRef<const ParamInfo *> ps,
                       const CompressRule *rule, const Glob &glob,
                       StringRef verb) {
    for (const ParamInfo *p : ps) {
      auto [it, inserted] = claims.insert({p, rule});
      if (!inserted) {
        error(glob.range.Start, "parameter '" + p->path + "' is already " +
                                    verb + " by an earlier rule",
              {glob.range});
        note(it->second->loc(), "earlier rule is here");
        return false;
      }
    }
    return true;
  };

  for (const CompressRule *rule : decl->rules) {
    if (diags.shouldStop())
      return;
    if (auto *pr = dyn_cast<PruneRule>(rule)) {
      Value m = evalSetting(pr->method, file);
      if (m.isError())
        continue;
      auto method = checkSchema(
          *this, m,
          {{"magnitude", {{"sparsity", ArgSpec::Float, false, 0, 1, false},
                          {"pattern", ArgSpec::Ratio}}},
           {"structured", {{"sparsity", ArgSpec::Float, true, 0, 1, false},
                           {"dim", ArgSpec::Symbol, false, -INFINITY, INFINITY,
                            true, true, {"rows", "cols"}}}}},
          "pruning method", pr->method->loc());
      if (!method)
        continue;
      const Value *pattern = argOf(*method, "pattern");
      const Value *sparsity = argOf(*method, "sparsity");
      if (method->s == "magnitude" && (pattern != nullptr) == (sparsity != nullptr)) {
        error(pr->method->loc(), "magnitude() needs exactly one of "
                                 "sparsity=50% or pattern=2:4");
        continue;
      }
      ResolvedRule rr;
      rr.rule = rule;
      rr.action = "prune";
      rr.method = *method;
      if (!resolve(pr->glob, rr.params) ||
          !matricesOnly(pr->glob, rr.params, "pruning"))
        continue;
      if (!claimOnce(prunedBy, rr.params, rule, pr->glob, "pruned"))
        continue;
      if (pattern) {
        for (const ParamInfo *p : rr.params) {
          int64_t in = *p->type.shape.back().getConstant();
          if (in % pattern->m != 0) {
            error(pr->glob.range.Start,
                  formatv("{0} sparsity groups {1} consecutive weights along "
                          "the input dimension, but '{2}' has type {3} ({4} "
                          "is not a multiple of {1})",
                          pattern->str(), pattern->m, p->path, p->type.str(),
                          in),
                  {pr->glob.range});
            break;
          }
        }
      }
      c->rules.push_back(std::move(rr));
    } else if (auto *qr = dyn_cast<QuantizeRule>(rule)) {
      Value s = evalSetting(qr->scheme, file);
      if (s.isError())
        continue;
      auto scheme = checkSchema(
          *this, s,
          {{"int8", {{"granularity", ArgSpec::Symbol, false, -INFINITY, INFINITY,
                      true, true, {"per_channel", "per_tensor"}},
                     {"symmetric", ArgSpec::Bool}}},
           {"int4", {{"group", ArgSpec::Int, false, 1, 1e6},
                     {"symmetric", ArgSpec::Bool}}},
           {"fp8", {{"format", ArgSpec::Symbol, false, -INFINITY, INFINITY,
                     true, true, {"e4m3", "e5m2"}}}}},
          "quantization scheme", qr->scheme->loc());
      if (!scheme)
        continue;
      if (qr->calibration) {
        Value cal = evalSetting(qr->calibration, file);
        if (cal.isError())
          continue;
        if (!checkSchema(*this, cal,
                         {{"calibrate",
                           {{"data", ArgSpec::DataRef, true},
                            {"batches", ArgSpec::Int, false, 1, 1e9},
                            {"method", ArgSpec::Symbol, false, -INFINITY,
                             INFINITY, true, true,
                             {"minmax", "percentile", "mse"}}}}},
                         "calibration", qr->calibration->loc()))
          continue;
      }
      ResolvedRule rr;
      rr.rule = rule;
      rr.action = "quantize";
      rr.method = *scheme;
      if (!resolve(qr->glob, rr.params) ||
          !matricesOnly(qr->glob, rr.params, "quantization"))
        continue;
      bool ok = true;
      if (scheme->s == "int4") {
        int64_t group = argOf(*scheme, "group")
                            ? *argOf(*scheme, "group")->getInt()
                            : 128;
        for (const ParamInfo *p : rr.params) {
          int64_t in = *p->type.shape.back().getConstant();
          if (in % group != 0) {
            error(qr->scheme->loc(),
                  formatv("int4 group size {0} does not divide the input "
                          "dimension of '{1}' ({2}: {3} % {0} = {4})",
                          group, p->path, p->type.str(), in, in % group),
                  {qr->scheme->range});
            ok = false;
            break;
          }
        }
      }
      if (!ok)
        continue;
      if (claimOnce(quantizedBy, rr.params, rule, qr->glob, "quantized"))
        c->rules.push_back(std::move(rr));
    } else if (auto *dr = dyn_cast<DistillRule>(rule)) {
      Value call;
      call.kind = Value::Kind::Call;
      call.s = "distill";
      for (const Setting &a : dr->args) {
        Value v = evalSetting(a.value, file);
        if (v.isError())
          return;
        call.named.push_back({a.key, v});
      }
      checkSchema(*this, call,
                  {{"distill",
                    {{"teacher", ArgSpec::TrainRef, true},
                     {"steps", ArgSpec::Int, true, 1, 1e12},
                     {"temperature", ArgSpec::Float, false, 0, 100, true, false},
                     {"alpha", ArgSpec::Float, false, 0, 1},
                     {"data", ArgSpec::DataRef}}}},
                  "distillation", dr->loc());
    } else if (auto *rep = dyn_cast<ReportRule>(rule)) {
      for (const Expr *e : rep->metrics) {
        Value v = evalSetting(e, file);
        if (v.isError())
          continue;
        // `chars.val` evaluates to the data decl; wrap it for the schema.
        checkSchema(*this, v,
                    {{"perplexity", {{"data", ArgSpec::DataRef, true}}},
                     {"accuracy", {{"data", ArgSpec::DataRef, true}}},
                     {"loss", {{"data", ArgSpec::DataRef, true}}},
                     {"size", {}},
                     {"params", {}},
                     {"sparsity", {}},
                     {"latency", {{"batch", ArgSpec::Int, false, 1, 1e6}}}},
                    "report metric", e->loc());
      }
    }
  }
}

} // namespace tessera
