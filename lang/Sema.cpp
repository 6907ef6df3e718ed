//===- Sema.cpp - Names, model instantiation and expression evaluation ----===//

#include "lang/SemaImpl.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace llvm;
using namespace tessera::ast;

namespace tessera {

//===----------------------------------------------------------------------===//
// Value
//===----------------------------------------------------------------------===//

Value Value::ofInt(DimExpr d) {
  Value v;
  v.kind = Kind::Int;
  v.dim = std::move(d);
  return v;
}
Value Value::ofFloat(double x) {
  Value v;
  v.kind = Kind::Float;
  v.f = x;
  return v;
}
Value Value::ofBool(bool x) {
  Value v;
  v.kind = Kind::Bool;
  v.b = x;
  return v;
}
Value Value::ofStr(std::string x) {
  Value v;
  v.kind = Kind::Str;
  v.s = std::move(x);
  return v;
}
Value Value::ofTensor(TensorType t) {
  Value v;
  v.kind = Kind::Tensor;
  v.tensor = std::move(t);
  return v;
}
Value Value::ofDType(DType t) {
  Value v;
  v.kind = Kind::DType;
  v.dtype = t;
  return v;
}

double Value::asDouble() const {
  if (kind == Kind::Float)
    return f;
  if (auto c = getInt())
    return double(*c);
  return 0;
}

static std::string formatFloat(double x) {
  std::string s = formatNumber(x);
  // Keep a decimal point so floats read as floats.
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

std::string Value::str() const {
  switch (kind) {
  case Kind::Error: return "<error>";
  case Kind::None: return "none";
  case Kind::Int: return dim.str();
  case Kind::Float:
    return isPercent ? formatNumber(f * 100) + "%" : formatFloat(f);
  case Kind::Bool: return b ? "true" : "false";
  case Kind::Str: return "\"" + s + "\"";
  case Kind::Ratio: return formatv("{0}:{1}", n, m).str();
  case Kind::DType: return dtypeName(dtype).str();
  case Kind::Tensor: return tensor.str();
  case Kind::Module: return module->signature;
  case Kind::ModuleList:
    return formatv("repeat({0}) {1}", modules.size(),
                   modules.empty() ? "" : modules[0]->signature)
        .str();
  case Kind::Fn: return fn->name;
  case Kind::Tuple:
  case Kind::List: {
    std::vector<std::string> parts;
    for (const Value &e : elems)
      parts.push_back(e.str());
    if (kind == Kind::List)
      return "[" + join(parts, ", ") + "]";
    return "(" + join(parts, ", ") + (parts.size() == 1 ? ",)" : ")");
  }
  case Kind::Symbol: return s;
  case Kind::Call: {
    std::vector<std::string> parts;
    for (const Value &e : elems)
      parts.push_back(e.str());
    for (const auto &kv : named)
      parts.push_back(kv.first + "=" + kv.second.str());
    return s + "(" + join(parts, ", ") + ")";
  }
  case Kind::Decl: return decl->name;
  case Kind::Namespace: return s;
  case Kind::Builtin: return s;
  }
  return "?";
}

std::string Value::describe() const {
  switch (kind) {
  case Kind::Error: return "an invalid value";
  case Kind::None: return "none";
  case Kind::Int: return "the integer " + dim.str();
  case Kind::Float: return "the number " + str();
  case Kind::Bool: return "the boolean " + str();
  case Kind::Str: return "the string " + str();
  case Kind::Ratio: return "the ratio " + str();
  case Kind::DType: return "the dtype " + str();
  case Kind::Tensor: return "a tensor " + tensor.str();
  case Kind::Module: return "the model instance " + str();
  case Kind::ModuleList: return "the model list " + str();
  case Kind::Fn: return "the function '" + str() + "'";
  case Kind::Tuple: return "the tuple " + str();
  case Kind::List: return "the list " + str();
  case Kind::Symbol: return "the name '" + s + "'";
  case Kind::Call: return str();
  case Kind::Decl: return std::string(decl->kindName()) + " '" + decl->name + "'";
  case Kind::Namespace: return "the module '" + s + "'";
  case Kind::Builtin: return "the builtin '" + s + "'";
  }
  return "?";
}

void ModuleInstance::collectParams(std::vector<const ParamInfo *> &out) const {
  // Iterative to keep deep model trees off the stack.
  std::vector<const ModuleInstance *> work{this};
  while (!work.empty()) {
    const ModuleInstance *inst = work.back();
    work.pop_back();
    for (const ParamInfo &p : inst->params)
      out.push_back(&p);
    for (auto it = inst->children.rbegin(); it != inst->children.rend(); ++it)
      work.push_back(*it);
  }
}

int64_t countElements(ArrayRef<const ParamInfo *> params) {
  int64_t total = 0;
  for (const ParamInfo *p : params) {
    auto n = p->type.numElements().getConstant();
    if (!n || __builtin_add_overflow(total, *n, &total))
      return INT64_MAX;
  }
  return total;
}

//===----------------------------------------------------------------------===//
// Diagnostics and names
//===----------------------------------------------------------------------===//

Value Sema::Impl::error(SMLoc loc, const Twine &msg, ArrayRef<SMRange> ranges) {
  diags.error(loc, msg, ranges);
  // Innermost context first; long chains are elided in the middle.
  size_t shown = 0;
  for (size_t i = frames.size(); i-- > 0;) {
    if (shown == 3 && i > 0) {
      diags.note(SMLoc(), formatv("... {0} more", i).str());
      i = 0;
    }
    diags.note(frames[i].loc, frames[i].what);
    ++shown;
  }
  return Value::error();
}

static std::string suggest(StringRef name, ArrayRef<std::string> candidates) {
  std::string best;
  unsigned bestDist = std::max<unsigned>(2, name.size() / 3) + 1;
  for (const std::string &c : candidates) {
    unsigned d = name.edit_distance(c, true, bestDist);
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best.empty() ? "" : "; did you mean '" + best + "'?";
}

const File *Sema::Impl::lookupImport(const File *file, StringRef name) {
  auto it = program.importsOf.find(file);
  if (it == program.importsOf.end())
    return nullptr;
  // `import models.gpt` is referred to as `gpt`.
  for (size_t i = 0; i < file->imports.size() && i < it->second.size(); ++i) {
    StringRef full = file->imports[i].name;
    if (full == name || full.rsplit('.').second == name)
      return it->second[i];
  }
  return nullptr;
}

const Decl *Sema::Impl::lookupDecl(const File *file, StringRef name,
                                   SMLoc useLoc, bool &ambiguous) {
  ambiguous = false;
  for (const Decl *d : file->decls)
    if (d->name == name)
      return d;
  const Decl *found = nullptr;
  const File *foundIn = nullptr;
  auto it = program.importsOf.find(file);
  if (it == program.importsOf.end())
    return nullptr;
  for (const File *imported : it->second) {
    if (!imported)
      continue;
    for (const Decl *d : imported->decls) {
      if (d->name != name)
        continue;
      if (found && found != d) {
        ambiguous = true;
        error(useLoc, "'" + name + "' is ambiguous: it is defined in both '" +
                          foundIn->path + "' and '" + imported->path +
                          "'; qualify it with the module name");
        return nullptr;
      }
      found = d;
      foundIn = imported;
    }
  }
  return found;
}

Value Sema::Impl::constValue(const ConstDecl *decl) {
  auto it = constValues.find(decl);
  if (it != constValues.end())
    return it->second;
  if (!constsInProgress.insert(decl).second)
    return error(decl->nameLoc,
                 "constant '" + decl->name + "' is defined in terms of itself");
  Env env;
  env.file = fileOfDecl.lookup(decl);
  Value v = eval(decl->value, env);
  constsInProgress.erase(decl);
  constValues[decl] = v;
  return v;
}

Value Sema::Impl::lookupName(StringRef name, SMRange range, Env &env) {
  if (const Value *v = env.lookupLocal(name)) {
    Value copy = *v;
    copy.range = range;
    return copy;
  }
  for (Env *e = &env; e; e = e->parent) {
    if (!e->self)
      continue;
    auto it = e->self->members.find(name);
    if (it != e->self->members.end()) {
      Value copy = it->second;
      copy.range = range;
      attachParam(copy, range.Start);
      return copy;
    }
    break;
  }
  if (name == "self" && env.self) {
    Value v;
    v.kind = Value::Kind::Module;
    v.module = env.self;
    v.range = range;
    return v;
  }
  if (env.file) {
    bool ambiguous = false;
    if (const Decl *d = lookupDecl(env.file, name, range.Start, ambiguous)) {
      if (auto *c = dyn_cast<ConstDecl>(d)) {
        Value v = constValue(c);
        v.range = range;
        return v;
      }
      Value v;
      v.kind = Value::Kind::Decl;
      v.decl = d;
      v.file = fileOfDecl.lookup(d);
      v.range = range;
      return v;
    }
    if (ambiguous)
      return Value::error();
    if (const File *f = lookupImport(env.file, name)) {
      Value v;
      v.kind = Value::Kind::Namespace;
      v.file = f;
      v.s = name.str();
      v.range = range;
      return v;
    }
  }
  if (auto dt = parseDType(name)) {
    Value v = Value::ofDType(*dt);
    v.range = range;
    return v;
  }
  if (name == "none") {
    Value v;
    v.kind = Value::Kind::None;
    v.range = range;
    return v;
  }
  if (isBuiltin(name)) {
    Value v;
    v.kind = Value::Kind::Builtin;
    v.s = name.str();
    v.range = range;
    return v;
  }
  if (env.allowSymbols) {
    Value v;
    v.kind = Value::Kind::Symbol;
    v.s = name.str();
    v.range = range;
    return v;
  }
  // Collect visible names for a suggestion.
  std::vector<std::string> candidates;
  for (Env *e = &env; e; e = e->parent)
    for (auto &kv : e->vars)
      candidates.push_back(kv.first().str());
  if (env.self)
    for (auto &kv : env.self->members)
      candidates.push_back(kv.first().str());
  if (env.file)
    for (const Decl *d : env.file->decls)
      candidates.push_back(d->name);
  return error(range.Start, "unknown name '" + name + "'" +
                                suggest(name, candidates),
               {range});
}

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

Value Sema::Impl::eval(const Expr *expr, Env &env) {
  Value v;
  switch (expr->getKind()) {
  case Expr::Kind::Int:
    v = Value::ofInt(cast<IntLit>(expr)->value);
    break;
  case Expr::Kind::Float:
    v = Value::ofFloat(cast<FloatLit>(expr)->value);
    break;
  case Expr::Kind::Percent:
    v = Value::ofFloat(cast<PercentLit>(expr)->value);
    v.isPercent = true;
    break;
  case Expr::Kind::Ratio: {
    auto *r = cast<RatioLit>(expr);
    v.kind = Value::Kind::Ratio;
    v.n = r->n;
    v.m = r->m;
    break;
  }
  case Expr::Kind::String:
    v = Value::ofStr(cast<StringLit>(expr)->value);
    break;
  case Expr::Kind::Bool:
    v = Value::ofBool(cast<BoolLit>(expr)->value);
    break;
  case Expr::Kind::Name:
    return lookupName(cast<NameExpr>(expr)->name, expr->range, env);
  case Expr::Kind::Tuple:
  case Expr::Kind::List: {
    const auto &elements = isa<TupleExpr>(expr)
                               ? cast<TupleExpr>(expr)->elements
                               : cast<ListExpr>(expr)->elements;
    v.kind = isa<TupleExpr>(expr) ? Value::Kind::Tuple : Value::Kind::List;
    for (const Expr *e : elements) {
      Value el = eval(e, env);
      if (el.isError())
        return el;
      v.elems.push_back(std::move(el));
    }
    break;
  }
  case Expr::Kind::Unary:
    v = evalUnary(cast<UnaryExpr>(expr), env);
    break;
  case Expr::Kind::Binary:
    v = evalBinary(cast<BinaryExpr>(expr), env);
    break;
  case Expr::Kind::Call:
    v = evalCall(cast<CallExpr>(expr), env);
    break;
  case Expr::Kind::Member:
    v = evalMember(cast<MemberExpr>(expr), env);
    break;
  case Expr::Kind::Index:
    v = evalIndex(cast<IndexExpr>(expr), env);
    break;
  }
  v.range = expr->range;
  return v;
}

Value Sema::Impl::evalUnary(const UnaryExpr *e, Env &env) {
  Value x = eval(e->operand, env);
  if (x.isError())
    return x;
  switch (e->op) {
  case UnaryOp::Plus:
    if (x.isNumber() || x.kind == Value::Kind::Tensor)
      return x;
    break;
  case UnaryOp::Neg:
    if (x.kind == Value::Kind::Int) {
      DimExpr d = -x.dim;
      return d.isValid() ? Value::ofInt(d)
                         : error(e->loc(), "integer overflow");
    }
    if (x.kind == Value::Kind::Float)
      return Value::ofFloat(-x.f);
    if (x.kind == Value::Kind::Tensor) {
      if (!isFloatDType(x.tensor.dtype) && !isIntegerDType(x.tensor.dtype))
        break;
      if (hooks) {
        std::vector<std::pair<StringRef, const Value *>> args = {{"x", &x}};
        auto h = hooks->op("neg", args, {}, {x.tensor}, e->loc());
        if (h.size() != 1 || !h[0])
          return Value::error();
        x.ir = h[0];
      }
      return x;
    }
    break;
  case UnaryOp::Not:
    if (x.kind == Value::Kind::Bool)
      return Value::ofBool(!x.b);
    break;
  }
  return error(e->loc(), "operator '" + spelling(e->op) +
                             "' cannot be applied to " + x.describe());
}

Value Sema::Impl::evalBinary(const BinaryExpr *e, Env &env) {
  Value lhs = eval(e->lhs, env);
  if (lhs.isError())
    return lhs;
  // Short-circuit so `if has_bias and ...` can guard later operands.
  if (e->op == BinaryOp::And && lhs.kind == Value::Kind::Bool && !lhs.b)
    return Value::ofBool(false);
  if (e->op == BinaryOp::Or && lhs.kind == Value::Kind::Bool && lhs.b)
    return Value::ofBool(true);
  Value rhs = eval(e->rhs, env);
  if (rhs.isError())
    return rhs;
  return binaryOnValues(e->op, std::move(lhs), std::move(rhs), e->opLoc,
                        e->range);
}

Value Sema::Impl::binaryOnValues(BinaryOp op, Value lhs, Value rhs,
                                 SMLoc opLoc, SMRange range) {
  auto mismatch = [&]() {
    return error(opLoc, "operator '" + spelling(op) + "' cannot be applied to " +
                            lhs.describe() + " and " + rhs.describe(),
                 {range});
  };
  bool tensorL = lhs.kind == Value::Kind::Tensor;
  bool tensorR = rhs.kind == Value::Kind::Tensor;

  if (op == BinaryOp::And || op == BinaryOp::Or) {
    if (lhs.kind != Value::Kind::Bool || rhs.kind != Value::Kind::Bool)
      return mismatch();
    return Value::ofBool(op == BinaryOp::And ? lhs.b && rhs.b
                                             : lhs.b || rhs.b);
  }

  if (op == BinaryOp::MatMul) {
    if (!tensorL || !tensorR)
      return mismatch();
    CallArgs args;
    args.positional = {lhs, rhs};
    args.callLoc = opLoc;
    args.callRange = range;
    return callBuiltin("matmul", args);
  }

  // Comparisons of compile-time numbers and strings.
  if (op >= BinaryOp::Eq && op <= BinaryOp::Ge) {
    if (lhs.kind == Value::Kind::Str && rhs.kind == Value::Kind::Str &&
        (op == BinaryOp::Eq || op == BinaryOp::Ne))
      return Value::ofBool((lhs.s == rhs.s) == (op == BinaryOp::Eq));
    if (lhs.kind == Value::Kind::Bool && rhs.kind == Value::Kind::Bool &&
        (op == BinaryOp::Eq || op == BinaryOp::Ne))
      return Value::ofBool((lhs.b == rhs.b) == (op == BinaryOp::Eq));
    if (lhs.kind == Value::Kind::DType && rhs.kind == Value::Kind::DType &&
        (op == BinaryOp::Eq || op == BinaryOp::Ne))
      return Value::ofBool((lhs.dtype == rhs.dtype) == (op == BinaryOp::Eq));
    if (!lhs.isNumber() || !rhs.isNumber())
      return mismatch();
    if (lhs.kind == Value::Kind::Int && rhs.kind == Value::Kind::Int &&
        !(lhs.getInt() && rhs.getInt())) {
      // Symbolic: only equality of identical polynomials is decidable.
      if (op == BinaryOp::Eq || op == BinaryOp::Ne)
        if (lhs.dim == rhs.dim)
          return Value::ofBool(op == BinaryOp::Eq);
      return error(opLoc, "cannot compare " + lhs.dim.str() + " and " +
                              rhs.dim.str() + " at compile time",
                   {range});
    }
    double a = lhs.asDouble(), b = rhs.asDouble();
    bool r = op == BinaryOp::Eq   ? a == b
             : op == BinaryOp::Ne ? a != b
             : op == BinaryOp::Lt ? a < b
             : op == BinaryOp::Le ? a <= b
             : op == BinaryOp::Gt ? a > b
                                  : a >= b;
    return Value::ofBool(r);
  }

  // Arithmetic on compile-time integers (dimensions) stays exact.
  if (lhs.kind == Value::Kind::Int && rhs.kind == Value::Kind::Int) {
    DimExpr r;
    switch (op) {
    case BinaryOp::Add: r = lhs.dim + rhs.dim; break;
    case BinaryOp::Sub: r = lhs.dim - rhs.dim; break;
    case BinaryOp::Mul: r = lhs.dim * rhs.dim; break;
    case BinaryOp::Div: {
      if (rhs.dim.getConstant() == std::optional<int64_t>(0))
        return error(opLoc, "division by zero", {range});
      if (auto q = lhs.dim.divExact(rhs.dim))
        return Value::ofInt(*q);
      auto a = lhs.getInt(), b = rhs.getInt();
      if (a && b)
        return Value::ofFloat(double(*a) / double(*b));
      return error(opLoc, "cannot divide " + lhs.dim.str() + " by " +
                              rhs.dim.str() +
                              " exactly; dimension arithmetic must stay "
                              "integral (use a model parameter)",
                   {range});
    }
    default: return mismatch();
    }
    if (!r.isValid())
      return error(opLoc, "integer overflow in " + lhs.dim.str() + " " +
                              spelling(op) + " " + rhs.dim.str(),
                   {range});
    return Value::ofInt(r);
  }
  if (lhs.isNumber() && rhs.isNumber()) {
    if ((lhs.kind == Value::Kind::Int && !lhs.getInt()) ||
        (rhs.kind == Value::Kind::Int && !rhs.getInt()))
      return error(opLoc, "cannot mix the symbolic dimension " +
                              (lhs.kind == Value::Kind::Int ? lhs : rhs).str() +
                              " with a floating-point number",
                   {range});
    double a = lhs.asDouble(), b = rhs.asDouble(), r = 0;
    switch (op) {
    case BinaryOp::Add: r = a + b; break;
    case BinaryOp::Sub: r = a - b; break;
    case BinaryOp::Mul: r = a * b; break;
    case BinaryOp::Div:
      if (b == 0)
        return error(opLoc, "division by zero", {range});
      r = a / b;
      break;
    default: return mismatch();
    }
    return Value::ofFloat(r);
  }
  if (lhs.kind == Value::Kind::Str && rhs.kind == Value::Kind::Str &&
      op == BinaryOp::Add)
    return Value::ofStr(lhs.s + rhs.s);

  // Element-wise tensor arithmetic with broadcasting.
  if (tensorL || tensorR) {
    if ((tensorL && !tensorR && !rhs.isNumber()) ||
        (tensorR && !tensorL && !lhs.isNumber()))
      return mismatch();
    const TensorType &tl = tensorL ? lhs.tensor : rhs.tensor;
    const TensorType &tr = tensorR ? rhs.tensor : lhs.tensor;
    if (tensorL && tensorR && tl.dtype != tr.dtype)
      return error(opLoc, "operator '" + spelling(op) +
                              "' needs operands of one dtype, got " + tl.str() +
                              " and " + tr.str() + "; convert one with cast()",
                   {range});
    if (tl.dtype == DType::Bool)
      return mismatch();
    const Value &scalar = tensorL ? rhs : lhs;
    if (!(tensorL && tensorR) && isIntegerDType(tl.dtype) &&
        scalar.kind == Value::Kind::Float)
      return error(opLoc, "operator '" + spelling(op) + "' mixes the integer "
                              "tensor " + tl.str() + " with the number " +
                              scalar.str() + "; cast the tensor first",
                   {range});
    auto shape = broadcastShapes(tl.shape, tr.shape);
    if (!shape)
      return error(opLoc, "cannot broadcast " + tl.str() + " and " + tr.str() +
                              " for operator '" + spelling(op) + "'",
                   {range});
    TensorType out;
    out.dtype = tl.dtype;
    out.shape = std::move(*shape);
    Value result = Value::ofTensor(out);
    if (hooks) {
      const char *name = op == BinaryOp::Add   ? "add"
                         : op == BinaryOp::Sub ? "sub"
                         : op == BinaryOp::Mul ? "mul"
                                               : "div";
      std::vector<std::pair<StringRef, const Value *>> args = {{"lhs", &lhs},
                                                               {"rhs", &rhs}};
      auto h = hooks->op(name, args, {}, {out}, opLoc);
      if (h.size() != 1 || !h[0])
        return Value::error();
      result.ir = h[0];
    }
    return result;
  }
  return mismatch();
}

Value Sema::Impl::evalMember(const MemberExpr *e, Env &env) {
  Value base = eval(e->base, env);
  if (base.isError())
    return base;
  const std::string &m = e->member;
  switch (base.kind) {
  case Value::Kind::Module: {
    auto it = base.module->members.find(m);
    if (it != base.module->members.end()) {
      Value v = it->second;
      attachParam(v, e->memberLoc);
      return v;
    }
    std::vector<std::string> names;
    for (auto &kv : base.module->members)
      names.push_back(kv.first().str());
    return error(e->memberLoc, "model " + base.module->decl->name +
                                   " has no member '" + m + "'" +
                                   suggest(m, names));
  }
  case Value::Kind::Namespace: {
    for (const Decl *d : base.file->decls) {
      if (d->name != m)
        continue;
      if (auto *c = dyn_cast<ConstDecl>(d))
        return constValue(c);
      Value v;
      v.kind = Value::Kind::Decl;
      v.decl = d;
      v.file = base.file;
      return v;
    }
    return error(e->memberLoc,
                 "module '" + base.s + "' has no declaration '" + m + "'");
  }
  case Value::Kind::Tensor: {
    if (m == "shape") {
      Value t;
      t.kind = Value::Kind::Tuple;
      for (const DimExpr &d : base.tensor.shape)
        t.elems.push_back(Value::ofInt(d));
      return t;
    }
    if (m == "dtype")
      return Value::ofDType(base.tensor.dtype);
    if (m == "rank")
      return Value::ofInt(int64_t(base.tensor.rank()));
    if (isBuiltin(m)) {
      Value v;
      v.kind = Value::Kind::Builtin;
      v.s = m;
      v.self = std::make_shared<Value>(base);
      return v;
    }
    return error(e->memberLoc,
                 "tensors have no member '" + m +
                     "' (members: shape, dtype, rank and tensor functions "
                     "such as reshape, transpose, sum)");
  }
  case Value::Kind::Decl:
    if (isa<DataDecl>(base.decl) && (m == "train" || m == "val" || m == "test")) {
      if (m == "test") {
        // Only idx() sources have a held-out test set.
        const auto *dd = cast<DataDecl>(base.decl);
        const CheckedData *cd = dataByDecl.lookup(dd);
        bool hasTest = false;
        if (cd)
          for (const auto &kv : cd->source.named)
            hasTest |= kv.first == "test_images";
        if (cd && !hasTest)
          return error(e->memberLoc,
                       "data '" + dd->name + "' has no test split (only "
                       "idx(test_images=..., test_labels=...) provides one); "
                       "use '" + dd->name + ".val'");
      }
      Value v = base;
      v.s = m; // split selector
      return v;
    }
    break;
  default:
    break;
  }
  return error(e->memberLoc,
               base.describe() + " has no member '" + m + "'");
}

Value Sema::Impl::evalIndex(const IndexExpr *e, Env &env) {
  Value base = eval(e->base, env);
  if (base.isError())
    return base;
  auto constIndex = [&](const Subscript &s, int64_t size,
                        int64_t &out) -> bool {
    if (s.isSlice) {
      error(s.loc, "slices are only allowed on tensors");
      return false;
    }
    auto idx = evalConstInt(s.index, env, "index");
    if (!idx)
      return false;
    int64_t i = *idx < 0 ? *idx + size : *idx;
    if (i < 0 || i >= size) {
      error(s.loc, formatv("index {0} is out of range for {1} elements", *idx,
                           size));
      return false;
    }
    out = i;
    return true;
  };
  if (base.kind == Value::Kind::ModuleList || base.kind == Value::Kind::Tuple ||
      base.kind == Value::Kind::List) {
    if (e->subscripts.size() != 1)
      return error(e->loc(), "expected one index");
    int64_t size = base.kind == Value::Kind::ModuleList
                       ? int64_t(base.modules.size())
                       : int64_t(base.elems.size());
    int64_t i;
    if (!constIndex(e->subscripts[0], size, i))
      return Value::error();
    if (base.kind != Value::Kind::ModuleList)
      return base.elems[i];
    Value v;
    v.kind = Value::Kind::Module;
    v.module = base.modules[i];
    return v;
  }
  if (base.kind != Value::Kind::Tensor)
    return error(e->loc(), "cannot index " + base.describe());
  if (hooks)
    return error(e->loc(), "indexing and slicing tensors is checked but not "
                           "yet supported by code generation");

  const TensorType &t = base.tensor;
  if (e->subscripts.size() > t.rank())
    return error(e->loc(), formatv("too many indices ({0}) for {1}",
                                   e->subscripts.size(), t.str()));
  TensorType out;
  out.dtype = t.dtype;
  for (size_t i = 0; i < t.rank(); ++i) {
    const DimExpr &d = t.shape[i];
    if (i >= e->subscripts.size()) {
      out.shape.push_back(d);
      continue;
    }
    const Subscript &s = e->subscripts[i];
    if (!s.isSlice) {
      auto idx = evalDim(s.index, env, "index");
      if (!idx)
        return Value::error();
      auto c = idx->getConstant();
      auto size = d.getConstant();
      if (c && size && (*c < -*size || *c >= *size))
        return error(s.loc, formatv("index {0} is out of range for dimension "
                                    "{1} of size {2}",
                                    *c, i, *size));
      continue; // an index drops the dimension
    }
    // Slice: resolve negative constant bounds against the dimension.
    auto bound = [&](const Expr *x, DimExpr dflt) -> std::optional<DimExpr> {
      if (!x)
        return dflt;
      auto v = evalDim(x, env, "slice bound");
      if (!v)
        return std::nullopt;
      if (auto c = v->getConstant(); c && *c < 0)
        return d + *v;
      return v;
    };
    auto lo = bound(s.lo, DimExpr::constant(0));
    auto hi = bound(s.hi, d);
    if (!lo || !hi)
      return Value::error();
    int64_t step = 1;
    if (s.step) {
      auto st = evalConstInt(s.step, env, "slice step");
      if (!st)
        return Value::error();
      if (*st <= 0)
        return error(s.loc, "slice step must be positive");
      step = *st;
    }
    auto size = d.getConstant();
    auto loC = lo->getConstant(), hiC = hi->getConstant();
    if ((loC && (*loC < 0 || (size && *loC > *size))) ||
        (hiC && (*hiC < 0 || (size && *hiC > *size))))
      return error(s.loc, "slice bounds are out of range for dimension " +
                              std::to_string(i) + " of " + t.str());
    DimExpr len = *hi - *lo;
    if (auto c = len.getConstant()) {
      int64_t n = *c <= 0 ? 0 : (*c + step - 1) / step;
      if (auto size = d.getConstant(); size && n > *size)
        return error(s.loc, "slice is larger than dimension " +
                                std::to_string(i) + " of " + t.str());
      out.shape.push_back(DimExpr::constant(n));
    } else if (step == 1) {
      out.shape.push_back(len);
    } else if (auto q = len.divExact(DimExpr::constant(step))) {
      out.shape.push_back(*q);
    } else {
      return error(s.loc, "cannot compute the length of slice " + len.str() +
                              " with step " + std::to_string(step));
    }
  }
  return Value::ofTensor(std::move(out));
}

Value Sema::Impl::evalCall(const CallExpr *e, Env &env) {
  Value callee = eval(e->callee, env);
  if (callee.isError())
    return callee;
  CallArgs args;
  args.callLoc = e->loc();
  args.callRange = e->range;
  bool sawNamed = false;
  for (const Arg &a : e->args) {
    Value v = eval(a.value, env);
    if (v.isError())
      return v;
    if (a.name.empty()) {
      if (sawNamed)
        return error(a.value->loc(),
                     "positional argument after a named argument");
      args.positional.push_back(std::move(v));
    } else {
      for (const auto &kv : args.named)
        if (kv.first == a.name)
          return error(a.nameLoc, "argument '" + a.name + "' given twice");
      sawNamed = true;
      args.named.push_back({a.name, std::move(v)});
      args.namedLocs.push_back(a.nameLoc);
    }
  }
  // Inside settings, unknown callees are schema calls (`AdamW(...)`).
  if (callee.kind == Value::Kind::Symbol ||
      (env.allowSymbols && (callee.kind == Value::Kind::DType ||
                            callee.kind == Value::Kind::Builtin) &&
       !callee.self)) {
    Value v;
    v.kind = Value::Kind::Call;
    v.s = callee.kind == Value::Kind::DType ? dtypeName(callee.dtype).str()
                                            : callee.s;
    v.elems = std::move(args.positional);
    v.named = std::move(args.named);
    return v;
  }
  return call(callee, args, env);
}

Value Sema::Impl::call(const Value &callee, CallArgs &args, Env &env) {
  switch (callee.kind) {
  case Value::Kind::Builtin:
    if (callee.self)
      args.positional.insert(args.positional.begin(), *callee.self);
    return callBuiltin(callee.s, args);
  case Value::Kind::Module:
  case Value::Kind::ModuleList:
    return callModule(callee, args);
  case Value::Kind::Fn:
    return callFn(callee.module, callee.fn, args);
  case Value::Kind::Decl:
    if (auto *model = dyn_cast<ModelDecl>(callee.decl)) {
      // Instantiating a model inside a function body would create
      // parameters that no path names: only model bodies may do that.
      return error(args.callLoc,
                   "model '" + model->name +
                       "' can only be instantiated as a submodule "
                       "(`name = " + model->name + "(...)` in a model body) "
                       "or in a train block's `model` setting");
    }
    break;
  default:
    break;
  }
  return error(args.callLoc, callee.describe() + " is not callable",
               {args.callRange});
}

std::optional<DimExpr> Sema::Impl::evalDim(const Expr *e, Env &env,
                                           StringRef what) {
  Value v = eval(e, env);
  if (v.isError())
    return std::nullopt;
  if (v.kind != Value::Kind::Int) {
    error(e->loc(), what + " must be an integer, got " + v.describe(),
          {e->range});
    return std::nullopt;
  }
  return v.dim;
}

std::optional<int64_t> Sema::Impl::evalConstInt(const Expr *e, Env &env,
                                                StringRef what) {
  auto d = evalDim(e, env, what);
  if (!d)
    return std::nullopt;
  if (auto c = d->getConstant())
    return c;
  error(e->loc(), what + " must be known at compile time, got " + d->str(),
        {e->range});
  return std::nullopt;
}

std::optional<TensorType>
Sema::Impl::evalTensorType(const TypeExpr &type, Env &env,
                           StringMap<DimExpr> *bindings,
                           bool requireConcrete) {
  auto dt = parseDType(type.name);
  if (!dt) {
    error(type.range.Start,
          "unknown element type '" + type.name +
              "'; expected one of f64, f32, f16, bf16, f8e4m3, f8e5m2, i64, "
              "i32, i16, i8, i4, u8, u16, u32, bool",
          {type.range});
    return std::nullopt;
  }
  TensorType t;
  t.dtype = *dt;
  unsigned ellipses = 0;
  for (const Expr *d : type.dims) {
    if (!d) {
      if (++ellipses > 1 || requireConcrete) {
        error(type.range.Start, requireConcrete
                                    ? "parameter shapes must be concrete; "
                                      "'...' is not allowed here"
                                    : "at most one '...' per type");
        return std::nullopt;
      }
      t.shape.push_back(DimExpr::symbol("..."));
      continue;
    }
    // A bare unknown name in a signature introduces a symbol.
    if (auto *n = dyn_cast<NameExpr>(d); n && bindings) {
      if (!isDimName(n->name, env)) {
        auto it = bindings->find(n->name);
        t.shape.push_back(it != bindings->end() ? it->second
                                                : DimExpr::symbol(n->name));
        continue;
      }
    }
    // Symbols bound so far are visible as integers (`f32[2 * N]`).
    Env inner;
    inner.parent = &env;
    inner.file = env.file;
    inner.self = env.self;
    if (bindings)
      for (auto &kv : *bindings)
        if (!env.lookupLocal(kv.first()))
          inner.vars[kv.first()] = Value::ofInt(kv.second);
    auto dim = evalDim(d, inner, "a dimension");
    if (!dim)
      return std::nullopt;
    if (bindings)
      *dim = dim->substitute(*bindings);
    if (requireConcrete) {
      auto c = dim->getConstant();
      if (!c) {
        error(d->loc(), "parameter shapes must be known when the model is "
                        "instantiated, but this dimension is " +
                            dim->str(),
              {d->range});
        return std::nullopt;
      }
      if (*c <= 0) {
        error(d->loc(), formatv("parameter dimensions must be positive, got "
                                "{0}",
                                *c),
              {d->range});
        return std::nullopt;
      }
    }
    t.shape.push_back(*dim);
  }
  if (requireConcrete) {
    // Guard against parameters too large to ever materialize.
    DimExpr n = t.numElements();
    if (!n.isValid() || *n.getConstant() > (int64_t(1) << 40)) {
      error(type.range.Start, "parameter " + t.str() +
                                  " has more than 2^40 elements");
      return std::nullopt;
    }
  }
  return t;
}

//===----------------------------------------------------------------------===//
// Model instantiation
//===----------------------------------------------------------------------===//

bool Sema::Impl::isDimName(StringRef name, Env &env) {
  // Only integers name dimensions; anything else (a model called `B`, a
  // submodule `T`) leaves the name free to be a signature symbol.
  if (const Value *v = env.lookupLocal(name))
    return v->kind == Value::Kind::Int;
  if (env.self) {
    auto it = env.self->members.find(name);
    if (it != env.self->members.end())
      return it->second.kind == Value::Kind::Int;
  }
  if (!env.file)
    return false;
  for (const Decl *d : env.file->decls)
    if (d->name == name)
      return isa<ConstDecl>(d) &&
             constValue(cast<ConstDecl>(d)).kind == Value::Kind::Int;
  auto it = program.importsOf.find(env.file);
  if (it != program.importsOf.end())
    for (const File *f : it->second)
      if (f)
        for (const Decl *d : f->decls)
          if (d->name == name && isa<ConstDecl>(d))
            return constValue(cast<ConstDecl>(d)).kind == Value::Kind::Int;
  return false;
}

/// Whether `v` is a value of the scalar type named `tn` (ints are floats).
static bool scalarTypeMatches(StringRef tn, const Value &v) {
  return (tn == "int" && v.kind == Value::Kind::Int) ||
         (tn == "float" && v.isNumber()) ||
         (tn == "bool" && v.kind == Value::Kind::Bool) ||
         (tn == "str" && v.kind == Value::Kind::Str) ||
         (tn == "dtype" && v.kind == Value::Kind::DType);
}

static bool isScalarTypeName(StringRef n) {
  return n == "int" || n == "float" || n == "bool" || n == "str" ||
         n == "dtype";
}

ModuleInstance *Sema::Impl::instantiate(const ModelDecl *decl,
                                        const File *file, CallArgs &args,
                                        const std::string &path) {
  unsigned depth = 0;
  for (const Frame &f : frames)
    depth += StringRef(f.what).starts_with("in instantiation");
  if (runawayDecls.contains(decl))
    return nullptr;
  if (depth >= kMaxInstanceDepth) {
    error(args.callLoc, formatv("model instantiation nested more than {0} "
                                "levels deep; is '{1}' recursive?",
                                kMaxInstanceDepth, decl->name));
    runawayDecls.insert(decl);
    return nullptr;
  }
  if (++instanceCount > kMaxInstances) {
    if (instanceCount == kMaxInstances + 1)
      error(args.callLoc, formatv("more than {0} model instances; is a "
                                  "repeat count too large?",
                                  kMaxInstances));
    return nullptr;
  }
  instantiatedDecls.insert(decl);
  instances.emplace_back();
  ModuleInstance *inst = &instances.back();
  inst->decl = decl;
  inst->file = file;
  inst->path = path;
  inst->instantiatedAt = args.callLoc;

  // Bind arguments to parameters: positional first, then by name.
  std::vector<std::optional<Value>> bound(decl->params.size());
  bool ok = true;
  if (args.positional.size() > decl->params.size()) {
    error(args.positional[decl->params.size()].range.Start,
          formatv("model '{0}' takes {1} argument{2}, but {3} were given",
                  decl->name, decl->params.size(),
                  decl->params.size() == 1 ? "" : "s",
                  args.positional.size()));
    note(decl->nameLoc, "'" + decl->name + "' declared here");
    return nullptr;
  }
  for (size_t i = 0; i < args.positional.size(); ++i)
    bound[i] = args.positional[i];
  for (size_t k = 0; k < args.named.size(); ++k) {
    const std::string &name = args.named[k].first;
    const Value &value = args.named[k].second;
    auto it = llvm::find_if(decl->params, [&](const ModelParamDecl &p) {
      return p.name == name;
    });
    if (it == decl->params.end()) {
      std::vector<std::string> names;
      for (const ModelParamDecl &p : decl->params)
        names.push_back(p.name);
      error(args.namedLocs[k], "model '" + decl->name +
                                   "' has no parameter '" + name + "'" +
                                   suggest(name, names));
      note(decl->nameLoc, "'" + decl->name + "' declared here");
      ok = false;
      continue;
    }
    size_t idx = it - decl->params.begin();
    if (bound[idx]) {
      error(args.namedLocs[k],
            "argument '" + name + "' of model '" + decl->name +
                (idx < args.positional.size() ? "' is already given by position"
                                              : "' is given twice"));
      ok = false;
      continue;
    }
    bound[idx] = value;
  }
  if (!ok)
    return nullptr;

  Env env;
  env.file = file;
  env.self = inst;
  std::vector<std::string> sigParts;
  for (size_t i = 0; i < decl->params.size(); ++i) {
    const ModelParamDecl &p = decl->params[i];
    Value v;
    if (bound[i]) {
      v = *bound[i];
    } else if (p.defaultValue) {
      v = eval(p.defaultValue, env);
    } else {
      error(args.callLoc, "missing argument '" + p.name + "' for model '" +
                              decl->name + "'",
            {args.callRange});
      note(p.nameLoc, "parameter '" + p.name + "' declared here");
      return nullptr;
    }
    if (v.isError())
      return nullptr;
    // Check the value against the declared scalar type.
    const std::string &tn = p.type.name;
    SMLoc where = v.range.Start.isValid() ? v.range.Start : args.callLoc;
    if (!isScalarTypeName(tn) || p.type.isTensor) {
      error(p.type.range.Start,
            "model parameters must have type int, float, bool, str or "
            "dtype; tensors are declared with 'param' in the body");
      return nullptr;
    }
    bool typeOk = scalarTypeMatches(tn, v);
    if (!typeOk) {
      error(where, "argument '" + p.name + "' of model '" + decl->name +
                       "' must be " + (tn == "int" ? "an int" : "a " + tn) +
                       ", got " + v.describe());
      note(p.nameLoc, "parameter '" + p.name + "' declared here");
      return nullptr;
    }
    if (tn == "int" && !v.getInt()) {
      error(where, "argument '" + p.name + "' of model '" + decl->name +
                       "' must be known at compile time, got " + v.str());
      return nullptr;
    }
    if (tn == "float" && v.kind == Value::Kind::Int)
      v = Value::ofFloat(v.asDouble());
    v.range = SMRange();
    sigParts.push_back(p.name + "=" + v.str());
    inst->members[p.name] = v;
    inst->memberLocs[p.name] = p.nameLoc;
  }
  inst->signature = decl->name + "(" + join(sigParts, ", ") + ")";

  std::string shownPath =
      path.size() > 60 ? "..." + path.substr(path.size() - 57) : path;
  frames.push_back({args.callLoc, "in instantiation of " + inst->signature +
                                      (path.empty() ? "" : " as '" + shownPath + "'")});
  bool itemsOk = instantiateItems(inst, decl->items, env);
  frames.pop_back();
  return itemsOk ? inst : nullptr;
}

std::string Sema::Impl::initSpec(const Expr *init, Env &env,
                                 const TensorType &t, SMLoc loc) {
  if (!init)
    return "";
  // Initializers: normal(std) / normal(mean, std), uniform(lo, hi),
  // zeros, ones, constant(v), kaiming(), xavier().
  std::string name;
  std::vector<const Expr *> pos;
  std::vector<const Arg *> named;
  if (auto *n = dyn_cast<NameExpr>(init)) {
    name = n->name;
  } else if (auto *c = dyn_cast<CallExpr>(init)) {
    if (auto *n = dyn_cast<NameExpr>(c->callee))
      name = n->name;
    for (const Arg &a : c->args) {
      if (a.name.empty() && !named.empty()) {
        error(a.value->loc(), "positional argument after a named argument");
        return "";
      }
      if (a.name.empty())
        pos.push_back(a.value);
      else
        named.push_back(&a);
    }
  }
  struct Spec {
    const char *name;
    std::vector<const char *> params;
    unsigned required;
  };
  static const Spec specs[] = {
      {"normal", {"std", "mean"}, 0},   {"uniform", {"low", "high"}, 2},
      {"zeros", {}, 0},                 {"ones", {}, 0},
      {"constant", {"value"}, 1},       {"kaiming", {"gain"}, 0},
      {"xavier", {"gain"}, 0},          {"trunc_normal", {"std"}, 0},
  };
  const Spec *spec = nullptr;
  for (const Spec &s : specs)
    if (name == s.name)
      spec = &s;
  if (!spec) {
    error(init->loc(), "unknown initializer; expected one of normal(std), "
                       "trunc_normal(std), uniform(low, high), zeros, ones, "
                       "constant(value), kaiming(), xavier()",
          {init->range});
    return "";
  }
  std::vector<std::pair<std::string, double>> values;
  if (pos.size() > spec->params.size()) {
    error(init->loc(), formatv("{0} takes at most {1} argument(s)", name,
                               spec->params.size()));
    return "";
  }
  for (size_t i = 0; i < pos.size(); ++i) {
    Value v = eval(pos[i], env);
    if (v.isError())
      return "";
    if (!v.isNumber()) {
      error(pos[i]->loc(), "initializer arguments must be numbers");
      return "";
    }
    values.push_back({spec->params[i], v.asDouble()});
  }
  for (const Arg *a : named) {
    if (llvm::none_of(spec->params, [&](const char *p) { return a->name == p; })) {
      error(a->nameLoc, "'" + name + "' has no argument '" + a->name + "'");
      return "";
    }
    if (llvm::any_of(values, [&](auto &kv) { return kv.first == a->name; })) {
      error(a->nameLoc, "argument '" + a->name + "' of " + name +
                            " is given twice");
      return "";
    }
    Value v = eval(a->value, env);
    if (v.isError())
      return "";
    if (!v.isNumber()) {
      error(a->value->loc(), "initializer arguments must be numbers");
      return "";
    }
    values.push_back({a->name, v.asDouble()});
  }
  if (values.size() < spec->required) {
    error(init->loc(), formatv("{0} needs {1} argument(s)", name,
                               spec->required));
    return "";
  }
  for (auto &[k, v] : values) {
    if ((k == "std" || k == "gain") && !(v > 0)) {
      error(init->loc(), "'" + k + "' of " + name + " must be positive");
      return "";
    }
  }
  if (name == "uniform" && !(values[0].second < values[1].second)) {
    error(init->loc(), "uniform(low, high) needs low < high");
    return "";
  }
  if ((name == "kaiming" || name == "xavier") && t.rank() < 2) {
    error(loc, name + " initialization needs a tensor of rank >= 2 (it uses "
                      "fan-in), got " + t.str());
    return "";
  }
  std::vector<std::string> parts;
  for (auto &[k, v] : values)
    parts.push_back(k + "=" + formatFloat(v));
  return name + "(" + join(parts, ", ") + ")";
}

bool Sema::Impl::instantiateItems(ModuleInstance *inst,
                                  ArrayRef<ModelItem *> items, Env &env) {
  auto define = [&](const ModelItem *item, Value v) {
    auto prev = inst->memberLocs.find(item->name);
    if (prev != inst->memberLocs.end()) {
      error(item->nameLoc, "'" + item->name + "' is already defined in model '" +
                               inst->decl->name + "'");
      note(prev->second, "previous definition is here");
      return false;
    }
    inst->members[item->name] = std::move(v);
    inst->memberLocs[item->name] = item->nameLoc;
    return true;
  };
  auto childPath = [&](StringRef name) {
    return inst->path.empty() ? name.str() : inst->path + "." + name.str();
  };
  bool ok = true;
  for (const ModelItem *item : items) {
    if (diags.shouldStop())
      return false;
    if (auto *let = dyn_cast<ModelLet>(item)) {
      Value v = eval(let->value, env);
      ok &= !v.isError() && define(item, v);
    } else if (auto *p = dyn_cast<ModelParamItem>(item)) {
      auto t = evalTensorType(p->type, env, nullptr, /*requireConcrete=*/true);
      if (!t) {
        ok = false;
        continue;
      }
      ParamInfo info;
      info.path = childPath(p->name);
      info.type = *t;
      info.loc = p->nameLoc;
      info.init = p->init ? initSpec(p->init, env, *t, p->nameLoc) : "";
      if (p->init && info.init.empty()) {
        ok = false;
        continue;
      }
      if (info.init.empty())
        info.init = t->rank() >= 2 ? "kaiming()" : "zeros()";
      inst->params.push_back(info);
      Value pv = Value::ofTensor(*t);
      pv.module = inst;
      pv.paramIndex = int(inst->params.size()) - 1;
      ok &= define(item, pv);
    } else if (auto *s = dyn_cast<SubmoduleItem>(item)) {
      int64_t count = 1;
      if (s->repeatCount) {
        auto n = evalConstInt(s->repeatCount, env, "repeat count");
        if (!n) {
          ok = false;
          continue;
        }
        if (*n < 0 || *n > kMaxRepeat) {
          error(s->repeatLoc, formatv("repeat count must be between 0 and "
                                      "{0}, got {1}",
                                      kMaxRepeat, *n));
          ok = false;
          continue;
        }
        count = *n;
      }
      // The constructor: `Model(args)` or a bare `Model` with defaults.
      const Expr *calleeExpr = s->ctor;
      const CallExpr *ctorCall = dyn_cast<CallExpr>(s->ctor);
      if (ctorCall)
        calleeExpr = ctorCall->callee;
      Value callee = eval(calleeExpr, env);
      if (callee.isError()) {
        ok = false;
        continue;
      }
      const ModelDecl *model = callee.kind == Value::Kind::Decl
                                   ? dyn_cast<ModelDecl>(callee.decl)
                                   : nullptr;
      if (!model) {
        error(s->ctor->loc(),
              "'" + s->name + " = ...' declares a submodule and needs a "
              "model such as Linear(...), but this is " + callee.describe() +
                  "; use 'let " + s->name + " = ...' for values",
              {s->ctor->range});
        ok = false;
        continue;
      }
      CallArgs args;
      args.callLoc = s->ctor->loc();
      args.callRange = s->ctor->range;
      bool argsOk = true;
      if (ctorCall) {
        for (const Arg &a : ctorCall->args) {
          Value v = eval(a.value, env);
          if (v.isError()) {
            argsOk = false;
            break;
          }
          if (a.name.empty() && !args.named.empty()) {
            error(a.value->loc(), "positional argument after a named argument");
            argsOk = false;
            break;
          }
          if (a.name.empty()) {
            args.positional.push_back(v);
          } else {
            args.named.push_back({a.name, v});
            args.namedLocs.push_back(a.nameLoc);
          }
        }
      }
      if (!argsOk) {
        ok = false;
        continue;
      }
      const File *modelFile = callee.file ? callee.file : env.file;
      if (!s->repeatCount) {
        ModuleInstance *child =
            instantiate(model, modelFile, args, childPath(s->name));
        if (!child) {
          ok = false;
          continue;
        }
        inst->children.push_back(child);
        Value v;
        v.kind = Value::Kind::Module;
        v.module = child;
        ok &= define(item, v);
        continue;
      }
      Value list;
      list.kind = Value::Kind::ModuleList;
      for (int64_t i = 0; i < count && ok; ++i) {
        ModuleInstance *child = instantiate(
            model, modelFile, args, childPath(s->name) + "." + std::to_string(i));
        if (!child) {
          ok = false;
          break;
        }
        inst->children.push_back(child);
        list.modules.push_back(child);
      }
      if (ok)
        ok &= define(item, list);
    } else if (auto *mi = dyn_cast<ModelIf>(item)) {
      Value c = eval(mi->cond, env);
      if (c.isError()) {
        ok = false;
        continue;
      }
      if (c.kind != Value::Kind::Bool) {
        error(mi->cond->loc(), "'if' in a model body needs a compile-time "
                               "boolean, got " + c.describe());
        ok = false;
        continue;
      }
      ok &= instantiateItems(inst, c.b ? mi->thenItems : mi->elseItems, env);
    } else if (auto *f = dyn_cast<ModelFn>(item)) {
      Value v;
      v.kind = Value::Kind::Fn;
      v.module = inst;
      v.fn = f->fn;
      ok &= define(item, v);
    }
  }
  return ok;
}

//===----------------------------------------------------------------------===//
// Function calls
//===----------------------------------------------------------------------===//

namespace {
/// Matches actual dimensions against a declared type, binding symbols.
struct Unifier {
  Sema::Impl &sema;
  Env &env;
  StringMap<DimExpr> &bindings;
  std::map<std::string, std::vector<DimExpr>> &groups; // `...` groups

  /// Returns an empty string on success, else why it failed.
  std::string unify(const TypeExpr &type, const TensorType &actual,
                    TensorType &expected) {
    auto dt = parseDType(type.name);
    expected = TensorType();
    expected.dtype = dt ? *dt : actual.dtype;
    if (!dt)
      return "unknown element type '" + type.name + "'";
    const auto &dims = type.dims;
    size_t ell = dims.size();
    for (size_t i = 0; i < dims.size(); ++i)
      if (!dims[i])
        ell = i;
    size_t fixed = dims.size() - (ell < dims.size() ? 1 : 0);
    bool rankOk = ell < dims.size() ? actual.rank() >= fixed
                                    : actual.rank() == fixed;
    std::string problem;
    if (dt && *dt != actual.dtype)
      problem = "element type " + dtypeName(actual.dtype).str() +
                " instead of " + dtypeName(*dt).str();
    size_t a = 0;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (!dims[i]) {
        size_t n = rankOk ? actual.rank() - fixed : 0;
        std::vector<DimExpr> group(actual.shape.begin() + a,
                                   actual.shape.begin() + a + n);
        auto it = groups.find("...");
        if (it == groups.end()) {
          groups["..."] = group;
        } else if (rankOk && it->second != group && problem.empty()) {
          problem = "the '...' dimensions differ from an earlier argument";
        }
        for (const DimExpr &d : groups["..."])
          expected.shape.push_back(d);
        a += n;
        continue;
      }
      const DimExpr *act = rankOk && a < actual.rank() ? &actual.shape[a] : nullptr;
      ++a;
      const Expr *d = dims[i];
      if (auto *n = dyn_cast<NameExpr>(d)) {
        if (!sema.isDimName(n->name, env)) {
          auto it = bindings.find(n->name);
          if (it == bindings.end()) {
            DimExpr bound = act ? *act : DimExpr::symbol(n->name);
            bindings[n->name] = bound;
            expected.shape.push_back(bound);
          } else {
            expected.shape.push_back(it->second);
            if (act && *act != it->second && problem.empty())
              problem = formatv("dimension {0} is {1}, but {2} = {3}", a - 1,
                                act->str(), n->name, it->second.str());
          }
          continue;
        }
      }
      // Symbols bound so far are visible as integers.
      Env inner;
      inner.parent = &env;
      inner.file = env.file;
      inner.self = env.self;
      for (auto &kv : bindings)
        inner.vars[kv.first()] = Value::ofInt(kv.second);
      auto v = sema.evalDim(d, inner, "a dimension");
      if (!v)
        return "invalid dimension";
      expected.shape.push_back(*v);
      if (act && *act != *v && problem.empty())
        problem = formatv("dimension {0} is {1}, expected {2}", a - 1, act->str(),
                          v->str());
    }
    if (!rankOk)
      return formatv("rank {0} instead of {1}{2}", actual.rank(), fixed,
                     ell < dims.size() ? " or more" : "");
    return problem;
  }
};
} // namespace

Value Sema::Impl::callModule(const Value &module, CallArgs &args) {
  if (module.kind == Value::Kind::ModuleList) {
    if (args.positional.size() != 1 || !args.named.empty())
      return error(args.callLoc,
                   "calling a repeated model applies each instance in turn "
                   "and takes exactly one argument");
    Value x = args.positional[0];
    for (ModuleInstance *m : module.modules) {
      Value mv;
      mv.kind = Value::Kind::Module;
      mv.module = m;
      CallArgs next;
      next.callLoc = args.callLoc;
      next.callRange = args.callRange;
      next.positional = {x};
      x = callModule(mv, next);
      if (x.isError())
        return x;
    }
    return x;
  }
  auto it = module.module->members.find("forward");
  if (it == module.module->members.end() ||
      it->second.kind != Value::Kind::Fn)
    return error(args.callLoc, "model " + module.module->decl->name +
                                   " has no 'forward' function, so it cannot "
                                   "be called",
                 {args.callRange});
  return callFn(module.module, it->second.fn, args);
}

Value Sema::Impl::callFn(ModuleInstance *inst, const FnDecl *fn,
                         CallArgs &args) {
  std::string qualified = inst->decl->name + "." + fn->name;
  if (callDepth >= kMaxCallDepth)
    return error(args.callLoc, "calls nested more than " +
                                   std::to_string(kMaxCallDepth) +
                                   " deep; is '" + qualified + "' recursive?");
  // Bind arguments by position, then name.
  std::vector<std::optional<Value>> bound(fn->params.size());
  if (args.positional.size() > fn->params.size()) {
    error(args.callLoc, formatv("'{0}' takes {1} argument{2}, but {3} were "
                                "given",
                                qualified, fn->params.size(),
                                fn->params.size() == 1 ? "" : "s",
                                args.positional.size()),
          {args.callRange});
    note(fn->nameLoc, "'" + qualified + "' declared here");
    return Value::error();
  }
  for (size_t i = 0; i < args.positional.size(); ++i)
    bound[i] = args.positional[i];
  for (size_t k = 0; k < args.named.size(); ++k) {
    auto it = llvm::find_if(fn->params, [&](const FnParam &p) {
      return p.name == args.named[k].first;
    });
    if (it == fn->params.end()) {
      error(args.namedLocs[k], "'" + qualified + "' has no parameter '" +
                                   args.named[k].first + "'");
      return Value::error();
    }
    size_t idx = it - fn->params.begin();
    if (bound[idx]) {
      error(args.namedLocs[k], "argument '" + args.named[k].first + "' of '" +
                                   qualified + "' is already given by position");
      return Value::error();
    }
    bound[idx] = args.named[k].second;
  }

  Env env;
  env.file = inst->file;
  env.self = inst;
  StringMap<DimExpr> bindings;
  std::map<std::string, std::vector<DimExpr>> groups;
  Unifier unifier{*this, env, bindings, groups};
  std::string cacheKey = inst->signature + "." + fn->name + "(";
  for (size_t i = 0; i < fn->params.size(); ++i) {
    const FnParam &p = fn->params[i];
    if (!bound[i]) {
      error(args.callLoc, "missing argument '" + p.name + "' for '" +
                              qualified + "'",
            {args.callRange});
      note(p.nameLoc, "parameter '" + p.name + "' declared here");
      return Value::error();
    }
    Value v = *bound[i];
    SMLoc where = v.range.Start.isValid() ? v.range.Start : args.callLoc;
    cacheKey += v.str() + ";";
    if (isScalarTypeName(p.type.name) && !p.type.isTensor) {
      const std::string &tn = p.type.name;
      bool typeOk = scalarTypeMatches(tn, v);
      if (!typeOk) {
        error(where, "argument '" + p.name + "' of '" + qualified +
                         "' must be a " + tn + ", got " + v.describe());
        note(p.nameLoc, "parameter '" + p.name + "' declared here");
        return Value::error();
      }
      env.vars[p.name] = v;
      continue;
    }
    if (v.kind != Value::Kind::Tensor) {
      error(where, "argument '" + p.name + "' of '" + qualified +
                       "' must be a tensor, got " + v.describe());
      note(p.nameLoc, "parameter '" + p.name + "' declared here");
      return Value::error();
    }
    TensorType expected;
    std::string problem = unifier.unify(p.type, v.tensor, expected);
    if (!problem.empty()) {
      error(where, "argument '" + p.name + "' of '" + qualified + "' has type " +
                       v.tensor.str() + ", but the function expects " +
                       expected.str() + " (" + problem + ")",
            {v.range});
      note(p.type.range.Start, "parameter type declared here");
      return Value::error();
    }
    Value bv = v;
    bv.range = SMRange();
    env.vars[p.name] = bv;
  }
  cacheKey += ")";
  auto cached = fnResultCache.find(cacheKey);
  if (!hooks && cached != fnResultCache.end())
    return cached->second;

  // Symbols bound by the signature (B, T, ...) are usable as integers.
  for (auto &kv : bindings)
    if (!env.vars.count(kv.first()))
      env.vars[kv.first()] = Value::ofInt(kv.second);

  unsigned errorsBefore = diags.getNumErrors();
  ++callDepth;
  frames.push_back({args.callLoc, "in call to '" + qualified + "' of " +
                                      inst->signature});
  // Execute the body; `if` picks its branch at compile time.
  std::function<std::optional<Value>(ArrayRef<Stmt *>, Env &)> exec =
      [&](ArrayRef<Stmt *> body, Env &scope) -> std::optional<Value> {
    for (size_t i = 0; i < body.size(); ++i) {
      const Stmt *s = body[i];
      if (auto *let = dyn_cast<LetStmt>(s)) {
        Value v = eval(let->value, scope);
        if (v.isError())
          return v;
        if (let->isTuple) {
          if (v.kind != Value::Kind::Tuple ||
              v.elems.size() != let->names.size())
            return error(let->loc(), formatv("cannot unpack {0} into {1} "
                                             "names",
                                             v.describe(), let->names.size()));
          for (size_t k = 0; k < let->names.size(); ++k)
            scope.vars[let->names[k]] = v.elems[k];
        } else {
          scope.vars[let->names[0]] = v;
        }
      } else if (auto *ret = dyn_cast<ReturnStmt>(s)) {
        if (i + 1 < body.size())
          diags.warning(body[i + 1]->loc(), "code after 'return' is never run");
        return eval(ret->value, scope);
      } else if (auto *ifs = dyn_cast<IfStmt>(s)) {
        Value c = eval(ifs->cond, scope);
        if (c.isError())
          return c;
        if (c.kind != Value::Kind::Bool)
          return error(ifs->cond->loc(),
                       "'if' conditions are evaluated at compile time and "
                       "must be booleans, got " + c.describe());
        Env inner;
        inner.parent = &scope;
        inner.file = scope.file;
        inner.self = scope.self;
        if (auto r = exec(c.b ? ifs->thenBody : ifs->elseBody, inner))
          return r;
      }
    }
    return std::nullopt;
  };
  std::optional<Value> result = exec(fn->body, env);
  Value out;
  if (!result) {
    out = error(fn->nameLoc, "'" + qualified + "' does not return a value");
  } else if (result->isError()) {
    out = *result;
  } else {
    out = *result;
    // Compare with the declared return type.
    if (fn->hasReturnType) {
      std::vector<Value> actual =
          fn->returnsTuple && out.kind == Value::Kind::Tuple
              ? out.elems
              : std::vector<Value>{out};
      if (actual.size() != fn->returnTypes.size()) {
        out = error(result->range.Start,
                    formatv("'{0}' returns {1} but is declared to return {2} "
                            "value(s)",
                            qualified, result->describe(),
                            fn->returnTypes.size()));
      } else {
        for (size_t i = 0; i < actual.size(); ++i) {
          const TypeExpr &rt = fn->returnTypes[i];
          if (isScalarTypeName(rt.name) && !rt.isTensor) {
            const std::string &tn = rt.name;
            const Value &v = actual[i];
            bool ok = scalarTypeMatches(tn, v);
            if (!ok) {
              out = error(result->range.Start,
                          "'" + qualified + "' returns " + v.describe() +
                              " but is declared to return " + tn);
              note(rt.range.Start, "return type declared here");
              break;
            }
            continue;
          }
          if (!parseDType(rt.name)) {
            out = error(rt.range.Start,
                        "unknown element type '" + rt.name +
                            "' in the return type of '" + qualified +
                            "'; expected int, float, bool, str, dtype or a "
                            "tensor type such as f32[B, T]");
            break;
          }
          if (actual[i].kind != Value::Kind::Tensor) {
            out = error(result->range.Start,
                        "'" + qualified + "' returns " + actual[i].describe() +
                            " where a tensor is declared");
            break;
          }
          TensorType expected;
          std::string problem =
              unifier.unify(rt, actual[i].tensor, expected);
          if (!problem.empty()) {
            out = error(result->range.Start,
                        "'" + qualified + "' returns " +
                            actual[i].tensor.str() +
                            " but is declared to return " + expected.str() +
                            " (" + problem + ")",
                        {result->range});
            note(rt.range.Start, "return type declared here");
            break;
          }
        }
      }
    }
  }
  frames.pop_back();
  --callDepth;
  out.range = SMRange();
  if (!hooks && diags.getNumErrors() == errorsBefore)
    fnResultCache[cacheKey] = out;
  return out;
}

void Sema::Impl::checkInstanceFns(ModuleInstance *root) {
  std::vector<ModuleInstance *> work{root};
  while (!work.empty() && !diags.shouldStop()) {
    ModuleInstance *inst = work.back();
    work.pop_back();
    for (auto it = inst->children.rbegin(); it != inst->children.rend(); ++it)
      work.push_back(*it);
    if (!checkedSignatures.insert(inst->signature).second)
      continue;
    for (const ModelItem *item : inst->decl->items) {
      // Fns inside model-level `if`s are checked when they are selected.
      auto *f = dyn_cast<ModelFn>(item);
      if (!f)
        continue;
      CallArgs args;
      args.callLoc = f->fn->nameLoc;
      Env env;
      env.file = inst->file;
      env.self = inst;
      StringMap<DimExpr> bindings;
      bool ok = true;
      for (const FnParam &p : f->fn->params) {
        Value v;
        if (isScalarTypeName(p.type.name) && !p.type.isTensor) {
          if (p.type.name == "int")
            v = Value::ofInt(DimExpr::symbol(p.name));
          else if (p.type.name == "float")
            v = Value::ofFloat(1.0);
          else if (p.type.name == "bool")
            v = Value::ofBool(false);
          else if (p.type.name == "str")
            v = Value::ofStr("");
          else
            v = Value::ofDType(DType::F32);
        } else {
          auto t = evalTensorType(p.type, env, &bindings, false);
          if (!t) {
            ok = false;
            break;
          }
          // Symbols introduced here stay themselves for later params.
          for (const Expr *d : p.type.dims)
            if (auto *n = dyn_cast_or_null<NameExpr>(d))
              if (!bindings.count(n->name) && !isDimName(n->name, env))
                bindings[n->name] = DimExpr::symbol(n->name);
          v = Value::ofTensor(*t);
        }
        args.positional.push_back(v);
      }
      if (ok)
        callFn(inst, f->fn, args);
    }
  }
}

//===----------------------------------------------------------------------===//
// Name checks for models that are never instantiated
//===----------------------------------------------------------------------===//

void Sema::Impl::checkNamesInExpr(const Expr *e, const StringSet<> &known,
                                  const File *file) {
  std::vector<const Expr *> work{e};
  while (!work.empty()) {
    const Expr *x = work.back();
    work.pop_back();
    if (!x)
      continue;
    switch (x->getKind()) {
    case Expr::Kind::Name: {
      StringRef n = cast<NameExpr>(x)->name;
      bool ambiguous = false;
      if (known.count(n) || parseDType(n) || isBuiltin(n) || n == "none" ||
          n == "self" || lookupImport(file, n) ||
          lookupDecl(file, n, x->loc(), ambiguous) || ambiguous)
        break;
      std::vector<std::string> cands;
      for (auto &k : known)
        cands.push_back(k.first().str());
      error(x->loc(), "unknown name '" + n + "'" + suggest(n, cands),
            {x->range});
      break;
    }
    case Expr::Kind::Tuple:
      for (const Expr *c : cast<TupleExpr>(x)->elements)
        work.push_back(c);
      break;
    case Expr::Kind::List:
      for (const Expr *c : cast<ListExpr>(x)->elements)
        work.push_back(c);
      break;
    case Expr::Kind::Unary:
      work.push_back(cast<UnaryExpr>(x)->operand);
      break;
    case Expr::Kind::Binary:
      work.push_back(cast<BinaryExpr>(x)->lhs);
      work.push_back(cast<BinaryExpr>(x)->rhs);
      break;
    case Expr::Kind::Call:
      work.push_back(cast<CallExpr>(x)->callee);
      for (const Arg &a : cast<CallExpr>(x)->args)
        work.push_back(a.value);
      break;
    case Expr::Kind::Member:
      work.push_back(cast<MemberExpr>(x)->base);
      break;
    case Expr::Kind::Index:
      work.push_back(cast<IndexExpr>(x)->base);
      for (const Subscript &s : cast<IndexExpr>(x)->subscripts)
        for (const Expr *c : {s.index, s.lo, s.hi, s.step})
          work.push_back(c);
      break;
    default:
      break;
    }
  }
}

void Sema::Impl::checkNamesInModel(const ModelDecl *decl, const File *file) {
  StringSet<> known;
  for (const ModelParamDecl &p : decl->params)
    known.insert(p.name);
  // Members are visible everywhere in function bodies; collect them first.
  std::vector<const ModelItem *> all;
  std::vector<const ModelItem *> work(decl->items.begin(), decl->items.end());
  while (!work.empty()) {
    const ModelItem *i = work.back();
    work.pop_back();
    all.push_back(i);
    if (auto *mi = dyn_cast<ModelIf>(i)) {
      work.insert(work.end(), mi->thenItems.begin(), mi->thenItems.end());
      work.insert(work.end(), mi->elseItems.begin(), mi->elseItems.end());
    } else {
      known.insert(i->name);
    }
  }
  for (const ModelParamDecl &p : decl->params)
    if (p.defaultValue)
      checkNamesInExpr(p.defaultValue, known, file);
  for (const ModelItem *i : all) {
    if (auto *l = dyn_cast<ModelLet>(i))
      checkNamesInExpr(l->value, known, file);
    else if (auto *s = dyn_cast<SubmoduleItem>(i)) {
      checkNamesInExpr(s->ctor, known, file);
      checkNamesInExpr(s->repeatCount, known, file);
    } else if (auto *mi = dyn_cast<ModelIf>(i))
      checkNamesInExpr(mi->cond, known, file);
    else if (auto *p = dyn_cast<ModelParamItem>(i)) {
      for (const Expr *d : p->type.dims)
        checkNamesInExpr(d, known, file);
    } else if (auto *f = dyn_cast<ModelFn>(i)) {
      StringSet<> local = known;
      for (const FnParam &p : f->fn->params) {
        local.insert(p.name);
        for (const Expr *d : p.type.dims)
          if (auto *n = dyn_cast_or_null<NameExpr>(d))
            local.insert(n->name); // signature symbols
      }
      std::function<void(ArrayRef<Stmt *>, StringSet<>)> walk =
          [&](ArrayRef<Stmt *> body, StringSet<> scope) {
            for (const Stmt *s : body) {
              if (auto *let = dyn_cast<LetStmt>(s)) {
                checkNamesInExpr(let->value, scope, file);
                for (const std::string &n : let->names)
                  scope.insert(n);
              } else if (auto *r = dyn_cast<ReturnStmt>(s)) {
                checkNamesInExpr(r->value, scope, file);
              } else if (auto *ifs = dyn_cast<IfStmt>(s)) {
                checkNamesInExpr(ifs->cond, scope, file);
                walk(ifs->thenBody, scope);
                walk(ifs->elseBody, scope);
              }
            }
          };
      walk(f->fn->body, local);
    }
  }
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

bool Sema::Impl::run() {
  // Index declarations and report duplicates per file.
  for (const auto &file : program.files) {
    StringMap<const Decl *> seen;
    for (const Decl *d : file->decls) {
      fileOfDecl[d] = file.get();
      auto [it, inserted] = seen.insert({d->name, d});
      if (!inserted) {
        error(d->nameLoc, "redefinition of '" + d->name + "'");
        note(it->second->nameLoc, "previous definition is here");
      }
    }
  }
  // Blocks of the root file run in order; data first so trains can use it.
  for (const auto &file : program.files)
    for (const Decl *d : file->decls)
      if (auto *c = dyn_cast<ConstDecl>(d))
        constValue(c);
  for (const Decl *d : program.root->decls)
    if (auto *dd = dyn_cast<DataDecl>(d))
      checkData(dd, program.root);
  for (const Decl *d : program.root->decls) {
    if (diags.shouldStop())
      break;
    if (auto *t = dyn_cast<TrainDecl>(d))
      checkTrain(t, program.root);
  }
  for (const Decl *d : program.root->decls) {
    if (diags.shouldStop())
      break;
    if (auto *c = dyn_cast<CompressDecl>(d))
      checkCompress(c, program.root);
  }
  // Models with defaults for every parameter can be checked on their own.
  for (const auto &file : program.files) {
    for (const Decl *d : file->decls) {
      if (diags.shouldStop())
        break;
      auto *m = dyn_cast<ModelDecl>(d);
      if (!m)
        continue;
      bool allDefaults = llvm::all_of(m->params, [](const ModelParamDecl &p) {
        return p.defaultValue != nullptr;
      });
      if (allDefaults && !instantiatedDecls.count(m)) {
        CallArgs args;
        args.callLoc = m->nameLoc;
        if (ModuleInstance *inst = instantiate(m, file.get(), args, ""))
          checkInstanceFns(inst);
      }
    }
  }
  // Names are checked in every model, including branches of compile-time
  // `if`s that no instantiation took.
  for (const auto &file : program.files)
    for (const Decl *d : file->decls)
      if (auto *m = dyn_cast<ModelDecl>(d))
        checkNamesInModel(m, file.get());
  return !diags.hasErrors();
}

void Sema::Impl::attachParam(Value &v, SMLoc loc) {
  if (!hooks || v.kind != Value::Kind::Tensor || v.paramIndex < 0 || !v.module)
    return;
  v.ir = hooks->param(v.module->params[v.paramIndex], loc);
}

EmitHooks::~EmitHooks() = default;

Value Sema::emit(ModuleInstance *model, std::vector<Value> args,
                 EmitHooks &hooks) {
  impl->hooks = &hooks;
  CallArgs call;
  call.callLoc = model->instantiatedAt;
  call.positional = std::move(args);
  Value m;
  m.kind = Value::Kind::Module;
  m.module = model;
  Value result = impl->callModule(m, call);
  impl->hooks = nullptr;
  return result;
}

Value Sema::emitLoss(const CheckedTrain &train, Value x, Value y,
                     EmitHooks &hooks) {
  const ast::Setting *loss = nullptr;
  for (const ast::Setting &s : train.decl->settings)
    if (s.key == "loss")
      loss = &s;
  if (!loss || !train.model)
    return Value();
  Env env;
  env.file = train.file;
  Value m;
  m.kind = Value::Kind::Module;
  m.module = train.model;
  env.vars["model"] = m;
  env.vars["x"] = std::move(x);
  env.vars["y"] = std::move(y);
  impl->hooks = &hooks;
  Value result = impl->eval(loss->value, env);
  impl->hooks = nullptr;
  return result;
}

Sema::Sema(Program &program, DiagnosticEngine &diags)
    : impl(std::make_unique<Impl>(program, diags)) {}
Sema::~Sema() = default;
bool Sema::run() { return impl->run(); }
const std::vector<std::unique_ptr<CheckedData>> &Sema::getData() const {
  return impl->data;
}
const std::vector<std::unique_ptr<CheckedTrain>> &Sema::getTrains() const {
  return impl->trains;
}
const std::vector<std::unique_ptr<CheckedCompress>> &
Sema::getCompresses() const {
  return impl->compresses;
}

} // namespace tessera
