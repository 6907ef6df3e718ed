//===- SemaBuiltins.cpp - Tensor builtins and their shape rules -----------===//
//
// Each builtin checks its arguments (count, names, dtypes) and computes the
// result type symbolically. These are the operations the `nn` dialect
// provides; docs/language.md lists them with their rules.
//
//===----------------------------------------------------------------------===//

#include "lang/SemaImpl.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace llvm;

namespace tessera {

const Value *findNamed(const CallArgs &args, StringRef name) {
  for (const auto &kv : args.named)
    if (kv.first == name)
      return &kv.second;
  return nullptr;
}

namespace {

enum class B {
  Unary, Softmax, Dropout, MatMul, Linear, Transpose, Permute, Reshape,
  Flatten, LayerNorm, RMSNorm, Embedding, Attention, CrossEntropy, Mse,
  Reduce, Concat, Split, Arange, Cast, Init
};

struct BuiltinInfo {
  B kind;
  /// Parameter names in positional order; `*` marks a variadic tail.
  std::vector<const char *> params;
  unsigned required;
};

const StringMap<BuiltinInfo> &builtins() {
  static const StringMap<BuiltinInfo> table = [] {
    StringMap<BuiltinInfo> t;
    for (const char *n : {"relu", "gelu", "silu", "sigmoid", "tanh", "exp",
                          "log", "sqrt", "rsqrt", "abs"})
      t[n] = {B::Unary, {"x"}, 1};
    t["softmax"] = {B::Softmax, {"x", "dim"}, 1};
    t["log_softmax"] = {B::Softmax, {"x", "dim"}, 1};
    t["dropout"] = {B::Dropout, {"x", "p"}, 1};
    t["matmul"] = {B::MatMul, {"a", "b"}, 2};
    t["linear"] = {B::Linear, {"x", "weight", "bias"}, 2};
    t["transpose"] = {B::Transpose, {"x", "dim0", "dim1"}, 1};
    t["permute"] = {B::Permute, {"x", "*"}, 2};
    t["reshape"] = {B::Reshape, {"x", "*"}, 2};
    t["flatten"] = {B::Flatten, {"x", "start"}, 1};
    t["layer_norm"] = {B::LayerNorm, {"x", "weight", "bias", "eps"}, 1};
    t["rms_norm"] = {B::RMSNorm, {"x", "weight", "eps"}, 1};
    t["embedding"] = {B::Embedding, {"weight", "indices"}, 2};
    t["attention"] = {B::Attention, {"q", "k", "v", "causal", "scale"}, 3};
    t["cross_entropy"] = {B::CrossEntropy, {"logits", "targets"}, 2};
    t["mse"] = {B::Mse, {"a", "b"}, 2};
    for (const char *n : {"sum", "mean", "max"})
      t[n] = {B::Reduce, {"x", "dim", "keepdim"}, 1};
    t["concat"] = {B::Concat, {"tensors", "dim"}, 1};
    t["split"] = {B::Split, {"x", "parts", "dim"}, 2};
    t["arange"] = {B::Arange, {"n"}, 1};
    t["cast"] = {B::Cast, {"x", "dtype"}, 2};
    t["to"] = {B::Cast, {"x", "dtype"}, 2};
    for (const char *n : {"normal", "trunc_normal", "uniform", "zeros",
                          "ones", "constant", "kaiming", "xavier"})
      t[n] = {B::Init, {"*"}, 0};
    return t;
  }();
  return table;
}

/// Normalizes a possibly negative dimension index against a rank.
std::optional<size_t> normDim(int64_t d, size_t rank) {
  int64_t r = int64_t(rank);
  if (d < -r || d >= r)
    return std::nullopt;
  return size_t(d < 0 ? d + r : d);
}

} // namespace

bool Sema::Impl::isBuiltin(StringRef name) { return builtins().count(name); }

Value Sema::Impl::callBuiltin(StringRef name, CallArgs &args) {
  std::vector<const Value *> argv;
  std::vector<Value> rest;
  Value r = callBuiltinTyped(name, args, argv, rest);
  if (!hooks || r.isError())
    return r;
  const BuiltinInfo &info = builtins().find(name)->second;
  std::vector<std::pair<StringRef, const Value *>> named;
  for (size_t i = 0; i < argv.size(); ++i)
    named.push_back({info.params[i], argv[i]});
  std::vector<TensorType> results;
  if (r.kind == Value::Kind::Tensor)
    results.push_back(r.tensor);
  else if (r.kind == Value::Kind::Tuple)
    for (const Value &e : r.elems)
      results.push_back(e.tensor);
  else
    return r; // compile-time scalar math
  std::vector<void *> handles = hooks->op(name, named, rest, results,
                                          args.callLoc);
  if (handles.size() != results.size() ||
      llvm::is_contained(handles, nullptr))
    return Value::error();
  if (r.kind == Value::Kind::Tensor)
    r.ir = handles[0];
  else
    for (size_t i = 0; i < r.elems.size(); ++i)
      r.elems[i].ir = handles[i];
  return r;
}

Value Sema::Impl::callBuiltinTyped(StringRef name, CallArgs &args,
                                   std::vector<const Value *> &argv,
                                   std::vector<Value> &rest) {
  const BuiltinInfo &info = builtins().find(name)->second;
  SMLoc loc = args.callLoc;
  auto fail = [&](const Twine &msg) {
    return error(loc, name + ": " + msg, {args.callRange});
  };
  if (info.kind == B::Init)
    return fail("initializers can only be used as the value of a 'param' "
                "declaration");

  // Gather arguments by parameter name.
  bool variadic = !info.params.empty() && StringRef(info.params.back()) == "*";
  size_t fixedCount = info.params.size() - (variadic ? 1 : 0);
  argv.assign(fixedCount, nullptr);
  rest.clear();
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < fixedCount)
      argv[i] = &args.positional[i];
    else if (variadic)
      rest.push_back(args.positional[i]);
    else
      return fail(formatv("takes at most {0} argument(s), got {1}", fixedCount,
                          args.positional.size()));
  }
  for (size_t k = 0; k < args.named.size(); ++k) {
    const std::string &key = args.named[k].first;
    const Value &val = args.named[k].second;
    auto it = llvm::find_if(info.params,
                            [&](const char *p) { return key == p; });
    if (it == info.params.end() || StringRef(*it) == "*") {
      std::vector<std::string> names;
      for (const char *p : info.params)
        if (StringRef(p) != "*")
          names.push_back(p);
      return error(args.namedLocs[k],
                   name + " has no argument '" + key + "'" +
                       (names.empty() ? "" : " (arguments: " + join(names, ", ") + ")"));
    }
    size_t idx = it - info.params.begin();
    if (argv[idx])
      return error(args.namedLocs[k], name + ": argument '" + key +
                                          "' is given twice");
    argv[idx] = &val;
  }
  size_t present = 0;
  for (size_t i = 0; i < info.required && i < fixedCount; ++i)
    if (argv[i])
      ++present;
  if (present < std::min<size_t>(info.required, fixedCount) ||
      (variadic && info.required > fixedCount && rest.empty() &&
       !(fixedCount && argv[fixedCount - 1])))
    return fail(formatv("needs at least {0} argument(s)", info.required));

  auto tensorArg = [&](size_t i, const TensorType *&out) -> bool {
    const Value *v = argv[i];
    if (!v || v->kind != Value::Kind::Tensor) {
      fail(std::string("argument '") + info.params[i] +
           "' must be a tensor, got " + (v ? v->describe() : "nothing"));
      return false;
    }
    out = &v->tensor;
    return true;
  };
  auto intArg = [&](size_t i, int64_t dflt, int64_t &out) -> bool {
    const Value *v = argv[i];
    if (!v || v->kind == Value::Kind::None) {
      out = dflt;
      return true;
    }
    auto c = v->getInt();
    if (!c) {
      fail(std::string("argument '") + info.params[i] +
           "' must be a compile-time integer, got " + v->describe());
      return false;
    }
    out = *c;
    return true;
  };
  auto dimArg = [&](size_t i, int64_t dflt, size_t rank, size_t &out) -> bool {
    int64_t d;
    if (!intArg(i, dflt, d))
      return false;
    auto n = normDim(d, rank);
    if (!n) {
      fail(formatv("dimension {0} is out of range for a tensor of rank {1}", d,
                   rank));
      return false;
    }
    out = *n;
    return true;
  };
  auto requireFloat = [&](const TensorType &t, const char *what) -> bool {
    if (isFloatDType(t.dtype))
      return true;
    fail(std::string(what) + " must have a floating-point dtype, got " +
         t.str());
    return false;
  };

  switch (info.kind) {
  case B::Unary: {
    const Value *v = argv[0];
    if (v->isNumber()) {
      if (v->kind == Value::Kind::Int && !v->getInt())
        return fail("cannot apply to the symbolic dimension " + v->str());
      double x = v->asDouble();
      double r = StringSwitch<double>(name)
                     .Case("sqrt", std::sqrt(x))
                     .Case("rsqrt", 1.0 / std::sqrt(x))
                     .Case("exp", std::exp(x))
                     .Case("log", std::log(x))
                     .Case("tanh", std::tanh(x))
                     .Case("abs", std::fabs(x))
                     .Case("relu", x > 0 ? x : 0)
                     .Case("sigmoid", 1.0 / (1.0 + std::exp(-x)))
                     .Case("silu", x / (1.0 + std::exp(-x)))
                     .Case("gelu", 0.5 * x *
                                       (1.0 + std::tanh(0.7978845608028654 *
                                                        (x + 0.044715 * x * x * x))))
                     .Default(NAN);
      if (!std::isfinite(r))
        return fail("is undefined for " + v->str() + " at compile time");
      return Value::ofFloat(r);
    }
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    if (t->dtype == DType::Bool)
      return fail("is not defined for boolean tensors, got " + t->str());
    if (name != "abs" && name != "relu" && !requireFloat(*t, "its input"))
      return Value::error();
    return Value::ofTensor(*t);
  }
  case B::Softmax: {
    const TensorType *t;
    size_t d;
    if (!tensorArg(0, t) || !requireFloat(*t, "its input") ||
        !dimArg(1, -1, t->rank(), d))
      return Value::error();
    if (t->rank() == 0)
      return fail("needs a tensor of rank >= 1");
    return Value::ofTensor(*t);
  }
  case B::Dropout: {
    const TensorType *t;
    if (!tensorArg(0, t) || !requireFloat(*t, "its input"))
      return Value::error();
    if (argv[1]) {
      if (!argv[1]->isNumber())
        return fail("p must be a number");
      double p = argv[1]->asDouble();
      if (!(p >= 0 && p < 1))
        return fail("p must be in [0, 1), got " + argv[1]->str());
    }
    return Value::ofTensor(*t);
  }
  case B::MatMul: {
    const TensorType *a, *b;
    if (!tensorArg(0, a) || !tensorArg(1, b))
      return Value::error();
    if (a->rank() < 2 || b->rank() < 2)
      return fail("needs tensors of rank >= 2, got " + a->str() + " and " +
                  b->str());
    if (a->dtype != b->dtype)
      return fail("operands have different dtypes: " + a->str() + " and " +
                  b->str());
    const DimExpr &k1 = a->shape[a->rank() - 1];
    const DimExpr &k2 = b->shape[b->rank() - 2];
    if (k1 != k2)
      return fail("inner dimensions differ: " + a->str() + " @ " + b->str() +
                  " (" + k1.str() + " vs " + k2.str() + ")");
    ArrayRef<DimExpr> ba(a->shape.data(), a->rank() - 2);
    ArrayRef<DimExpr> bb(b->shape.data(), b->rank() - 2);
    auto batch = broadcastShapes(ba, bb);
    if (!batch)
      return fail("batch dimensions of " + a->str() + " and " + b->str() +
                  " do not broadcast");
    TensorType out;
    out.dtype = a->dtype;
    out.shape = *batch;
    out.shape.push_back(a->shape[a->rank() - 2]);
    out.shape.push_back(b->shape[b->rank() - 1]);
    return Value::ofTensor(out);
  }
  case B::Linear: {
    const TensorType *x, *w, *bias = nullptr;
    if (!tensorArg(0, x) || !tensorArg(1, w))
      return Value::error();
    if (argv[2] && argv[2]->kind != Value::Kind::None && !tensorArg(2, bias))
      return Value::error();
    if (w->rank() != 2)
      return fail("weight must be a matrix [out, in], got " + w->str());
    if (x->rank() < 1 || x->shape.back() != w->shape[1])
      return fail("input " + x->str() + " does not match weight " + w->str() +
                  " (the last input dimension must equal the weight's second "
                  "dimension)");
    if (x->dtype != w->dtype)
      return fail("input " + x->str() + " and weight " + w->str() +
                  " have different dtypes");
    if (bias && (bias->rank() != 1 || bias->shape[0] != w->shape[0]))
      return fail("bias " + bias->str() + " does not match weight " +
                  w->str() + " (expected [" + w->shape[0].str() + "])");
    TensorType out = *x;
    out.shape.back() = w->shape[0];
    return Value::ofTensor(out);
  }
  case B::Transpose: {
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    if (t->rank() < 2)
      return fail("needs a tensor of rank >= 2, got " + t->str());
    size_t d0, d1;
    if (!dimArg(1, -2, t->rank(), d0) || !dimArg(2, -1, t->rank(), d1))
      return Value::error();
    TensorType out = *t;
    std::swap(out.shape[d0], out.shape[d1]);
    return Value::ofTensor(out);
  }
  case B::Permute: {
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    if (rest.size() == 1 && (rest[0].kind == Value::Kind::List ||
                             rest[0].kind == Value::Kind::Tuple))
      rest = std::vector<Value>(rest[0].elems);
    if (rest.size() != t->rank())
      return fail(formatv("needs {0} dimensions for {1}, got {2}", t->rank(),
                          t->str(), rest.size()));
    TensorType out = *t;
    std::vector<bool> used(t->rank());
    for (size_t i = 0; i < rest.size(); ++i) {
      auto c = rest[i].getInt();
      auto d = c ? normDim(*c, t->rank()) : std::nullopt;
      if (!d || used[*d])
        return fail("dimensions must be a permutation of 0.." +
                    std::to_string(t->rank() - 1));
      used[*d] = true;
      out.shape[i] = t->shape[*d];
    }
    return Value::ofTensor(out);
  }
  case B::Reshape: {
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    if (rest.size() == 1 && (rest[0].kind == Value::Kind::List ||
                             rest[0].kind == Value::Kind::Tuple))
      rest = std::vector<Value>(rest[0].elems);
    TensorType out;
    out.dtype = t->dtype;
    int inferred = -1;
    DimExpr known = DimExpr::constant(1);
    for (size_t i = 0; i < rest.size(); ++i) {
      if (rest[i].kind != Value::Kind::Int)
        return fail("dimensions must be integers, got " + rest[i].describe());
      if (rest[i].getInt() == std::optional<int64_t>(-1)) {
        if (inferred >= 0)
          return fail("only one dimension can be -1");
        inferred = int(i);
        out.shape.push_back(DimExpr());
        continue;
      }
      if (auto c = rest[i].getInt(); c && *c <= 0)
        return fail("dimensions must be positive, got " + std::to_string(*c));
      known = known * rest[i].dim;
      out.shape.push_back(rest[i].dim);
    }
    DimExpr total = t->numElements();
    if (inferred >= 0) {
      auto q = total.divExact(known);
      if (!q)
        return fail("cannot reshape " + t->str() + " to " +
                    std::to_string(rest.size()) + " dimensions: " +
                    total.str() + " elements are not divisible by " +
                    known.str());
      out.shape[inferred] = *q;
    } else if (known != total) {
      std::vector<std::string> dims;
      for (const DimExpr &d : out.shape)
        dims.push_back(d.str());
      return fail("cannot reshape " + t->str() + " (" + total.str() +
                  " elements) to [" + join(dims, ", ") + "] (" + known.str() +
                  " elements)");
    }
    return Value::ofTensor(out);
  }
  case B::Flatten: {
    const TensorType *t;
    int64_t start;
    if (!tensorArg(0, t) || !intArg(1, 1, start))
      return Value::error();
    auto s = normDim(start, t->rank());
    if (!s)
      return fail("start dimension out of range for " + t->str());
    TensorType out;
    out.dtype = t->dtype;
    DimExpr prod = DimExpr::constant(1);
    for (size_t i = 0; i < t->rank(); ++i) {
      if (i < *s)
        out.shape.push_back(t->shape[i]);
      else
        prod = prod * t->shape[i];
    }
    out.shape.push_back(prod);
    return Value::ofTensor(out);
  }
  case B::LayerNorm:
  case B::RMSNorm: {
    const TensorType *x;
    if (!tensorArg(0, x) || !requireFloat(*x, "its input"))
      return Value::error();
    size_t epsIdx = info.kind == B::LayerNorm ? 3 : 2;
    for (size_t i = 1; i < epsIdx; ++i) {
      if (!argv[i] || argv[i]->kind == Value::Kind::None)
        continue;
      const TensorType *p;
      if (!tensorArg(i, p))
        return Value::error();
      bool ok = p->rank() <= x->rank() && p->dtype == x->dtype;
      for (size_t k = 0; ok && k < p->rank(); ++k)
        ok = p->shape[k] == x->shape[x->rank() - p->rank() + k];
      if (!ok)
        return fail(std::string(info.params[i]) + " " + p->str() +
                    " does not match the trailing dimensions of " + x->str());
    }
    if (argv[epsIdx] && !(argv[epsIdx]->isNumber() &&
                          argv[epsIdx]->asDouble() > 0))
      return fail("eps must be a positive number");
    return Value::ofTensor(*x);
  }
  case B::Embedding: {
    const TensorType *w, *idx;
    if (!tensorArg(0, w) || !tensorArg(1, idx))
      return Value::error();
    if (w->rank() != 2)
      return fail("weight must be a table [num, dim], got " + w->str());
    if (!isIntegerDType(idx->dtype))
      return fail("indices must have an integer dtype, got " + idx->str());
    TensorType out = *idx;
    out.dtype = w->dtype;
    out.shape.push_back(w->shape[1]);
    return Value::ofTensor(out);
  }
  case B::Attention: {
    const TensorType *q, *k, *v;
    if (!tensorArg(0, q) || !tensorArg(1, k) || !tensorArg(2, v))
      return Value::error();
    if (q->rank() < 2 || k->rank() != q->rank() || v->rank() != q->rank())
      return fail("q, k and v must have the same rank >= 2, got " + q->str() +
                  ", " + k->str() + ", " + v->str());
    if (!requireFloat(*q, "q"))
      return Value::error();
    if (q->dtype != k->dtype || q->dtype != v->dtype)
      return fail("q, k and v must have one dtype");
    size_t r = q->rank();
    for (size_t i = 0; i + 2 < r; ++i)
      if (q->shape[i] != k->shape[i] || q->shape[i] != v->shape[i])
        return fail("batch dimensions of q " + q->str() + ", k " + k->str() +
                    " and v " + v->str() + " differ");
    if (q->shape[r - 1] != k->shape[r - 1])
      return fail("q " + q->str() + " and k " + k->str() +
                  " differ in their last (head) dimension");
    if (k->shape[r - 2] != v->shape[r - 2])
      return fail("k " + k->str() + " and v " + v->str() +
                  " differ in their sequence dimension");
    if (argv[3] && argv[3]->kind != Value::Kind::Bool)
      return fail("causal must be true or false");
    if (argv[4] && argv[4]->kind != Value::Kind::None &&
        !(argv[4]->isNumber() && argv[4]->asDouble() > 0))
      return fail("scale must be a positive number");
    if (argv[3] && argv[3]->b && q->shape[r - 2] != k->shape[r - 2])
      return fail("causal attention needs as many queries as keys, got " +
                  q->shape[r - 2].str() + " and " + k->shape[r - 2].str());
    TensorType out = *q;
    out.shape[r - 1] = v->shape[r - 1];
    return Value::ofTensor(out);
  }
  case B::CrossEntropy: {
    const TensorType *logits, *targets;
    if (!tensorArg(0, logits) || !tensorArg(1, targets))
      return Value::error();
    if (!requireFloat(*logits, "logits"))
      return Value::error();
    if (!isIntegerDType(targets->dtype))
      return fail("targets must be class indices with an integer dtype, got " +
                  targets->str());
    bool ok = logits->rank() >= 1 && targets->rank() + 1 == logits->rank();
    for (size_t i = 0; ok && i < targets->rank(); ++i)
      ok = targets->shape[i] == logits->shape[i];
    if (!ok)
      return fail("logits " + logits->str() + " and targets " +
                  targets->str() +
                  " do not match (targets must have the logits' shape "
                  "without the last, class dimension)");
    TensorType out;
    out.dtype = DType::F32;
    return Value::ofTensor(out);
  }
  case B::Mse: {
    const TensorType *a, *b;
    if (!tensorArg(0, a) || !tensorArg(1, b))
      return Value::error();
    if (*a != *b)
      return fail("operands must have the same type, got " + a->str() +
                  " and " + b->str());
    TensorType out;
    out.dtype = DType::F32;
    return Value::ofTensor(out);
  }
  case B::Reduce: {
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    bool keep = argv[2] && argv[2]->kind == Value::Kind::Bool && argv[2]->b;
    if (argv[2] && argv[2]->kind != Value::Kind::Bool)
      return fail("keepdim must be true or false");
    TensorType out;
    out.dtype = t->dtype;
    if (!argv[1] || argv[1]->kind == Value::Kind::None) {
      if (keep)
        out.shape.assign(t->rank(), DimExpr::constant(1));
      return Value::ofTensor(out);
    }
    size_t d;
    if (!dimArg(1, 0, t->rank(), d))
      return Value::error();
    for (size_t i = 0; i < t->rank(); ++i) {
      if (i != d)
        out.shape.push_back(t->shape[i]);
      else if (keep)
        out.shape.push_back(DimExpr::constant(1));
    }
    return Value::ofTensor(out);
  }
  case B::Concat: {
    const Value *list = argv[0];
    if (list->kind != Value::Kind::List && list->kind != Value::Kind::Tuple)
      return fail("expects a list of tensors, got " + list->describe());
    if (list->elems.empty())
      return fail("needs at least one tensor");
    for (const Value &e : list->elems)
      if (e.kind != Value::Kind::Tensor)
        return fail("expects tensors, got " + e.describe());
    const TensorType &first = list->elems[0].tensor;
    size_t d;
    if (!dimArg(1, 0, first.rank(), d))
      return Value::error();
    TensorType out = first;
    for (size_t i = 1; i < list->elems.size(); ++i) {
      const TensorType &t = list->elems[i].tensor;
      bool ok = t.rank() == first.rank() && t.dtype == first.dtype;
      for (size_t k = 0; ok && k < t.rank(); ++k)
        ok = k == d || t.shape[k] == first.shape[k];
      if (!ok)
        return fail("cannot concatenate " + first.str() + " and " + t.str() +
                    " along dimension " + std::to_string(d));
      out.shape[d] = out.shape[d] + t.shape[d];
    }
    return Value::ofTensor(out);
  }
  case B::Split: {
    const TensorType *t;
    int64_t parts;
    if (!tensorArg(0, t) || !intArg(1, 1, parts))
      return Value::error();
    if (parts <= 0 || parts > 4096)
      return fail("parts must be between 1 and 4096");
    size_t d;
    if (!dimArg(2, -1, t->rank(), d))
      return Value::error();
    auto q = t->shape[d].divExact(DimExpr::constant(parts));
    if (!q)
      return fail("dimension " + std::to_string(d) + " of " + t->str() +
                  " is not divisible into " + std::to_string(parts) +
                  " equal parts");
    Value tuple;
    tuple.kind = Value::Kind::Tuple;
    TensorType piece = *t;
    piece.shape[d] = *q;
    for (int64_t i = 0; i < parts; ++i)
      tuple.elems.push_back(Value::ofTensor(piece));
    return tuple;
  }
  case B::Arange: {
    const Value *n = argv[0];
    if (n->kind != Value::Kind::Int)
      return fail("n must be an integer or a dimension, got " + n->describe());
    if (auto c = n->getInt(); c && *c <= 0)
      return fail("n must be positive");
    TensorType out;
    out.dtype = DType::I32;
    out.shape.push_back(n->dim);
    return Value::ofTensor(out);
  }
  case B::Cast: {
    const TensorType *t;
    if (!tensorArg(0, t))
      return Value::error();
    if (argv[1]->kind != Value::Kind::DType)
      return fail("dtype must be an element type such as bf16, got " +
                  argv[1]->describe());
    TensorType out = *t;
    out.dtype = argv[1]->dtype;
    return Value::ofTensor(out);
  }
  case B::Init:
    break;
  }
  return fail("unsupported builtin");
}

} // namespace tessera
