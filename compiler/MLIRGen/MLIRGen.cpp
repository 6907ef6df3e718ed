//===- MLIRGen.cpp - Checked Tessera programs to the nn dialect -----------===//

#include "compiler/MLIRGen/MLIRGen.h"

#include "dialects/nn/IR/NNDialect.h"
#include "dialects/optim/IR/OptimDialect.h"
#include "dialects/precision/IR/PrecisionDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Verifier.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"

#include <deque>

using namespace mlir;

namespace tessera {
namespace {

class Generator : public EmitHooks {
public:
  Generator(MLIRContext &ctx, DiagnosticEngine &diags)
      : ctx(ctx), builder(&ctx), diags(diags) {}

  OwningOpRef<ModuleOp> run(Sema &sema, const CheckedTrain &train,
                            bool withLoss);
  /// `func.func @name(inputs..., params...)` whose body `body` emits (given
  /// the inputs as values); null after reporting errors.
  func::FuncOp genFunction(
      llvm::StringRef name, Location l,
      llvm::ArrayRef<std::pair<std::string, TensorType>> inputs,
      llvm::ArrayRef<const ParamInfo *> params,
      llvm::function_ref<tessera::Value(llvm::ArrayRef<tessera::Value>)> body,
      llvm::SMLoc errorLoc, const std::string &what);

  void *param(const ParamInfo &p, llvm::SMLoc) override {
    auto it = paramArgs.find(&p);
    return it == paramArgs.end() ? nullptr : wrap(it->second);
  }

  std::vector<void *> op(llvm::StringRef name,
                         llvm::ArrayRef<std::pair<llvm::StringRef, const tessera::Value *>> args,
                         llvm::ArrayRef<tessera::Value> rest,
                         llvm::ArrayRef<TensorType> results,
                         llvm::SMLoc smloc) override;

  /// True while the loss (the training graph) is emitted.
  bool emittingLoss = false;

private:
  Location loc(llvm::SMLoc l) {
    llvm::SourceMgr &sm = diags.getSourceMgr();
    if (!l.isValid())
      return UnknownLoc::get(&ctx);
    unsigned id = sm.FindBufferContainingLoc(l);
    auto [line, col] = sm.getLineAndColumn(l, id);
    return FileLineColLoc::get(
        &ctx, sm.getMemoryBuffer(id)->getBufferIdentifier(), line, col);
  }
  Type elementType(DType t) {
    switch (t) {
    case DType::F64: return builder.getF64Type();
    case DType::F32: return builder.getF32Type();
    case DType::F16: return builder.getF16Type();
    case DType::BF16: return builder.getBF16Type();
    case DType::F8E4M3: return Float8E4M3FNType::get(&ctx);
    case DType::F8E5M2: return Float8E5M2Type::get(&ctx);
    case DType::I64: return builder.getI64Type();
    case DType::I32: case DType::U32: return builder.getI32Type();
    case DType::I16: case DType::U16: return builder.getI16Type();
    case DType::I8: case DType::U8: return builder.getI8Type();
    case DType::I4: return builder.getIntegerType(4);
    case DType::Bool: return builder.getI1Type();
    }
    return builder.getF32Type();
  }
  RankedTensorType tensorType(const TensorType &t) {
    SmallVector<int64_t> shape;
    for (const DimExpr &d : t.shape)
      shape.push_back(d.getConstant().value_or(ShapedType::kDynamic));
    return RankedTensorType::get(shape, elementType(t.dtype));
  }
  void *wrap(mlir::Value v) {
    handles.push_back(v);
    return &handles.back();
  }
  /// A tensor operand: an emitted value, or a scalar as a rank-0 constant
  /// of the element type `like`.
  mlir::Value operand(const tessera::Value *v, Type like, Location l) {
    if (v->ir)
      return *static_cast<mlir::Value *>(v->ir);
    auto type = RankedTensorType::get({}, like);
    Attribute attr;
    if (isa<FloatType>(like))
      attr = DenseElementsAttr::get(type, builder.getFloatAttr(like, v->asDouble()));
    else
      attr = DenseElementsAttr::get(
          type, builder.getIntegerAttr(like, int64_t(v->asDouble())));
    return arith::ConstantOp::create(builder, l, cast<TypedAttr>(attr));
  }

  /// Where a parameter lives in the flat buffers of the optimizer, and
  /// whether it gets weight decay (decayed parameters come first).
  struct Slot {
    int64_t offset = 0;
    bool decay = true;
  };
  void computeLayout(const CheckedTrain &train,
                     llvm::ArrayRef<const ParamInfo *> params);
  func::FuncOp genOptimizerStep(const CheckedTrain &train, Location l);
  /// fp16's dynamic loss scaling: `unscale_grads(grads, loss_scale) ->
  /// (grads, found_inf)` over the flat gradient buffer.
  void genUnscaleGrads(Location l);

  MLIRContext &ctx;
  OpBuilder builder;
  DiagnosticEngine &diags;
  llvm::DenseMap<const ParamInfo *, Slot> layout;
  int64_t flatSize = 0, decayEnd = 0;
  llvm::DenseMap<const ParamInfo *, mlir::Value> paramArgs;
  std::deque<mlir::Value> handles;
};

const tessera::Value *get(llvm::ArrayRef<std::pair<llvm::StringRef, const tessera::Value *>> args,
                          llvm::StringRef name) {
  for (auto &kv : args)
    if (kv.first == name)
      return kv.second && kv.second->kind != tessera::Value::Kind::None
                 ? kv.second
                 : nullptr;
  return nullptr;
}

int64_t intOr(const tessera::Value *v, int64_t dflt) {
  return v && v->getInt() ? *v->getInt() : dflt;
}

std::vector<void *> Generator::op(
    llvm::StringRef name,
    llvm::ArrayRef<std::pair<llvm::StringRef, const tessera::Value *>> args,
    llvm::ArrayRef<tessera::Value> rest, llvm::ArrayRef<TensorType> results,
    llvm::SMLoc smloc) {
  Location l = loc(smloc);
  RankedTensorType rt = tensorType(results[0]);
  Type et = rt.getElementType();
  auto in = [&](llvm::StringRef n) { return operand(get(args, n), et, l); };
  auto one = [&](mlir::Value v) { return std::vector<void *>{wrap(v)}; };
  auto f64 = [&](double d) { return builder.getF64FloatAttr(d); };

  if (name == "add")
    return one(nn::AddOp::create(builder, l, rt, in("lhs"), in("rhs")));
  if (name == "sub")
    return one(nn::SubOp::create(builder, l, rt, in("lhs"), in("rhs")));
  if (name == "mul")
    return one(nn::MulOp::create(builder, l, rt, in("lhs"), in("rhs")));
  if (name == "div")
    return one(nn::DivOp::create(builder, l, rt, in("lhs"), in("rhs")));
  if (name == "neg") {
    tessera::Value minusOne = tessera::Value::ofFloat(-1.0);
    return one(nn::MulOp::create(builder, l, rt, in("x"),
                                         operand(&minusOne, et, l)));
  }
  if (name == "relu")
    return one(nn::ReluOp::create(builder, l, rt, in("x")));
  if (name == "gelu")
    return one(nn::GeluOp::create(builder, l, rt, in("x")));
  if (name == "silu")
    return one(nn::SiluOp::create(builder, l, rt, in("x")));
  if (name == "dropout") {
    // Inference: dropout is the identity. Training would need a random
    // mask per step (and its gradient); until there is one, a loss that
    // drops nothing must not pass for one that does.
    const tessera::Value *p = get(args, "p");
    if (emittingLoss && (!p || p->asDouble() > 0)) {
      diags.error(smloc, "dropout is not applied in training yet (the loss "
                         "would silently keep every unit); remove it, or "
                         "set p=0");
      return {};
    }
    return one(in("x"));
  }
  if (name == "softmax")
    return one(nn::SoftmaxOp::create(builder, 
        l, rt, in("x"), builder.getI64IntegerAttr(intOr(get(args, "dim"), -1))));
  if (name == "matmul")
    return one(nn::MatmulOp::create(builder, l, rt, in("a"), in("b")));
  if (name == "linear") {
    const tessera::Value *bias = get(args, "bias");
    return one(nn::LinearOp::create(builder, 
        l, rt, in("x"), in("weight"),
        bias ? operand(bias, et, l) : mlir::Value()));
  }
  if (name == "transpose")
    return one(nn::TransposeOp::create(builder, 
        l, rt, in("x"), builder.getI64IntegerAttr(intOr(get(args, "dim0"), -2)),
        builder.getI64IntegerAttr(intOr(get(args, "dim1"), -1))));
  if (name == "reshape" || name == "flatten")
    return one(nn::ReshapeOp::create(builder, l, rt, in("x")));
  // A norm without a weight (or bias) scales by ones (shifts by zeros):
  // constants of the normalized dimension's size.
  auto normParam = [&](StringRef arg, double fill) -> mlir::Value {
    if (get(args, arg))
      return in(arg);
    auto x = cast<RankedTensorType>(in("x").getType());
    auto type = RankedTensorType::get({x.getShape().back()},
                                      x.getElementType());
    return arith::ConstantOp::create(
        builder, l,
        DenseElementsAttr::get(type, builder.getFloatAttr(
                                         x.getElementType(), fill)));
  };
  if (name == "layer_norm")
    return one(nn::LayerNormOp::create(builder, 
        l, rt, in("x"), normParam("weight", 1.0), normParam("bias", 0.0),
        f64(get(args, "eps") ? get(args, "eps")->asDouble() : 1e-5)));
  if (name == "rms_norm")
    return one(nn::RMSNormOp::create(builder, 
        l, rt, in("x"), normParam("weight", 1.0),
        f64(get(args, "eps") ? get(args, "eps")->asDouble() : 1e-6)));
  if (name == "embedding") {
    const tessera::Value *idx = get(args, "indices");
    return one(nn::EmbeddingOp::create(builder, 
        l, rt, in("weight"), *static_cast<mlir::Value *>(idx->ir)));
  }
  if (name == "attention") {
    const tessera::Value *causal = get(args, "causal");
    const tessera::Value *scale = get(args, "scale");
    return one(nn::AttentionOp::create(
        builder, l, rt, in("q"), in("k"), in("v"),
        causal && causal->b ? builder.getUnitAttr() : UnitAttr(),
        scale ? f64(scale->asDouble()) : FloatAttr()));
  }
  if (name == "cross_entropy") {
    const tessera::Value *t = get(args, "targets");
    return one(nn::CrossEntropyOp::create(builder, 
        l, rt, in("logits"), *static_cast<mlir::Value *>(t->ir)));
  }
  if (name == "sum" || name == "mean" || name == "max") {
    const tessera::Value *dim = get(args, "dim");
    const tessera::Value *keep = get(args, "keepdim");
    mlir::Value x = in("x");
    IntegerAttr dimAttr =
        dim ? builder.getI64IntegerAttr(*dim->getInt()) : IntegerAttr();
    UnitAttr keepAttr = keep && keep->b ? builder.getUnitAttr() : UnitAttr();
    if (name == "sum")
      return one(nn::ReduceSumOp::create(builder, l, rt, x, dimAttr, keepAttr));
    if (name == "mean")
      return one(nn::ReduceMeanOp::create(builder, l, rt, x, dimAttr, keepAttr));
    return one(nn::ReduceMaxOp::create(builder, l, rt, x, dimAttr, keepAttr));
  }
  if (name == "concat") {
    SmallVector<mlir::Value> inputs;
    for (const tessera::Value &e : get(args, "tensors")->elems)
      inputs.push_back(*static_cast<mlir::Value *>(e.ir));
    return one(nn::ConcatOp::create(builder, 
        l, rt, inputs, builder.getI64IntegerAttr(intOr(get(args, "dim"), 0))));
  }
  if (name == "split") {
    mlir::Value x = in("x");
    auto xt = cast<RankedTensorType>(x.getType());
    int64_t rank = xt.getRank();
    int64_t d = intOr(get(args, "dim"), -1);
    d = d < 0 ? d + rank : d;
    std::vector<void *> out;
    for (size_t i = 0; i < results.size(); ++i) {
      RankedTensorType pt = tensorType(results[i]);
      if (!pt.hasStaticShape()) {
        diags.error(smloc, "split: code generation needs static shapes");
        return {};
      }
      SmallVector<int64_t> start(rank, 0), limit(pt.getShape()), stride(rank, 1);
      start[d] = int64_t(i) * pt.getDimSize(d);
      limit[d] = start[d] + pt.getDimSize(d);
      out.push_back(wrap(nn::SliceOp::create(builder, 
          l, pt, x, builder.getDenseI64ArrayAttr(start),
          builder.getDenseI64ArrayAttr(limit),
          builder.getDenseI64ArrayAttr(stride))));
    }
    return out;
  }
  if (name == "arange") {
    if (!rt.hasStaticShape()) {
      diags.error(smloc, "arange: code generation needs a length known at "
                         "compile time, got " + results[0].str());
      return {};
    }
    return one(nn::ArangeOp::create(builder, l, rt));
  }
  diags.error(smloc, "'" + name + "' is checked but has no nn op yet, so it "
                     "cannot be compiled");
  return {};
}

func::FuncOp Generator::genFunction(
    llvm::StringRef name, Location l,
    llvm::ArrayRef<std::pair<std::string, TensorType>> inputs,
    llvm::ArrayRef<const ParamInfo *> params,
    llvm::function_ref<tessera::Value(llvm::ArrayRef<tessera::Value>)> body,
    llvm::SMLoc errorLoc, const std::string &what) {
  SmallVector<Type> types;
  for (auto &in : inputs)
    types.push_back(tensorType(in.second));
  for (const ParamInfo *p : params)
    types.push_back(tensorType(p->type));
  auto fn = func::FuncOp::create(builder, l, name,
                                 builder.getFunctionType(types, {}));
  for (size_t i = 0; i < inputs.size(); ++i)
    fn.setArgAttr(i, "tessera.input", builder.getStringAttr(inputs[i].first));
  size_t first = inputs.size();
  for (size_t i = 0; i < params.size(); ++i) {
    fn.setArgAttr(first + i, "tessera.param",
                  builder.getStringAttr(params[i]->path));
    fn.setArgAttr(first + i, "tessera.init",
                  builder.getStringAttr(params[i]->init));
    const Slot &slot = layout.at(params[i]);
    fn.setArgAttr(first + i, "tessera.offset",
                  builder.getI64IntegerAttr(slot.offset));
    fn.setArgAttr(first + i, "tessera.decay", builder.getBoolAttr(slot.decay));
  }
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(entry);
  paramArgs.clear();
  for (size_t i = 0; i < params.size(); ++i)
    paramArgs[params[i]] = entry->getArgument(first + i);
  std::vector<tessera::Value> args;
  for (size_t i = 0; i < inputs.size(); ++i) {
    args.push_back(tessera::Value::ofTensor(inputs[i].second));
    args.back().ir = wrap(entry->getArgument(i));
  }
  unsigned errorsBefore = diags.getNumErrors();
  tessera::Value result = body(args);
  if (result.isError() || diags.getNumErrors() != errorsBefore || !result.ir) {
    if (diags.getNumErrors() == errorsBefore)
      diags.error(errorLoc, "cannot compile " + what);
    fn.erase();
    return nullptr;
  }
  mlir::Value out = *static_cast<mlir::Value *>(result.ir);
  func::ReturnOp::create(builder, l, out);
  fn.setType(builder.getFunctionType(types, {out.getType()}));
  return fn;
}

/// The value of argument `name` of a checked setting call, or null.
const tessera::Value *settingArg(const CheckedTrain &train, llvm::StringRef key,
                                 llvm::StringRef name) {
  auto it = train.settings.find(key);
  if (it == train.settings.end())
    return nullptr;
  for (auto &kv : it->second.named)
    if (kv.first == name)
      return &kv.second;
  return nullptr;
}

void Generator::computeLayout(const CheckedTrain &train,
                              llvm::ArrayRef<const ParamInfo *> params) {
  // Weight decay applies to every parameter except those matching a
  // no_decay pattern; without patterns, tensors of rank < 2 (biases, norm
  // weights) are not decayed, as is usual for transformers.
  std::vector<ast::Glob> noDecay;
  bool explicitList = false;
  if (const tessera::Value *nd = settingArg(train, "optimizer", "no_decay")) {
    explicitList = true;
    for (const tessera::Value &g : nd->elems)
      noDecay.push_back(parseGlobString(g.s));
  }
  layout.clear();
  for (const ParamInfo *p : params) {
    bool decay = explicitList
                     ? llvm::none_of(noDecay, [&](const ast::Glob &g) {
                         return globMatches(g, p->path);
                       })
                     : p->type.rank() >= 2;
    layout[p].decay = decay;
  }
  int64_t offset = 0;
  for (bool pass : {true, false})
    for (const ParamInfo *p : params) {
      Slot &slot = layout[p];
      if (slot.decay != pass)
        continue;
      slot.offset = offset;
      int64_t n = 1;
      for (const DimExpr &d : p->type.shape)
        n *= d.getConstant().value_or(0);
      offset += n;
      if (pass)
        decayEnd = offset;
    }
  flatSize = offset;
}

func::FuncOp Generator::genOptimizerStep(const CheckedTrain &train, Location l) {
  auto opt = train.settings.find("optimizer");
  if (opt == train.settings.end())
    return nullptr;
  bool adamw = opt->second.s == "AdamW";
  Type f32 = builder.getF32Type();
  auto flat = RankedTensorType::get({flatSize}, f32);
  auto scalar = RankedTensorType::get({}, f32);
  SmallVector<std::string> names =
      adamw ? SmallVector<std::string>{"params", "grads", "exp_avg", "exp_avg_sq"}
            : SmallVector<std::string>{"params", "grads", "momentum_buffer"};
  SmallVector<Type> types(names.size(), flat);
  types.push_back(RankedTensorType::get({adamw ? 7 : 3}, f32));
  names.push_back("hyper");
  SmallVector<Type> results(names.size() - 2, flat);
  results.push_back(scalar);
  auto fn = func::FuncOp::create(builder, l, "optimizer_step",
                                 builder.getFunctionType(types, results));
  for (size_t i = 0; i < names.size(); ++i)
    fn.setArgAttr(i, "tessera.input", builder.getStringAttr(names[i]));
  for (size_t i = 0; i + 1 < results.size(); ++i)
    fn.setResultAttr(i, "tessera.output",
                     builder.getStringAttr(i == 0 ? "params" : names[i + 1]));
  fn.setResultAttr(results.size() - 1, "tessera.output",
                   builder.getStringAttr("grad_norm"));
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(entry);
  mlir::Value grads = entry->getArgument(1), norm;
  if (const tessera::Value *maxNorm = settingArg(train, "clip", "max_norm")) {
    auto clip = optim::ClipByGlobalNormOp::create(
        builder, l, flat, scalar, grads,
        builder.getF64FloatAttr(maxNorm->asDouble()));
    grads = clip.getClipped();
    norm = clip.getNorm();
  } else {
    norm = optim::GlobalNormOp::create(builder, l, scalar, grads);
  }
  SmallVector<mlir::Value> out;
  auto decayAttr = builder.getI64IntegerAttr(decayEnd);
  if (adamw) {
    auto step = optim::AdamWStepOp::create(
        builder, l, TypeRange{flat, flat, flat}, entry->getArgument(0), grads,
        entry->getArgument(2), entry->getArgument(3), entry->getArgument(4),
        decayAttr);
    out.append(step->result_begin(), step->result_end());
  } else {
    const tessera::Value *nesterov = settingArg(train, "optimizer", "nesterov");
    auto step = optim::SGDStepOp::create(
        builder, l, TypeRange{flat, flat}, entry->getArgument(0), grads,
        entry->getArgument(2), entry->getArgument(3), decayAttr,
        nesterov && nesterov->b ? builder.getUnitAttr() : UnitAttr());
    out.append(step->result_begin(), step->result_end());
  }
  out.push_back(norm);
  func::ReturnOp::create(builder, l, out);
  return fn;
}

void Generator::genUnscaleGrads(Location l) {
  Type f32 = builder.getF32Type();
  auto flat = RankedTensorType::get({flatSize}, f32);
  auto scalar = RankedTensorType::get({}, f32);
  auto fn = func::FuncOp::create(
      builder, l, "unscale_grads",
      builder.getFunctionType({flat, scalar}, {flat, scalar}));
  fn.setArgAttr(0, "tessera.input", builder.getStringAttr("grads"));
  fn.setArgAttr(1, "tessera.input", builder.getStringAttr("loss_scale"));
  fn.setResultAttr(0, "tessera.output", builder.getStringAttr("grads"));
  fn.setResultAttr(1, "tessera.output", builder.getStringAttr("found_inf"));
  Block *entry = fn.addEntryBlock();
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToStart(entry);
  auto op = precision::UnscaleAndCheckOp::create(
      builder, l, flat, scalar, entry->getArgument(0), entry->getArgument(1));
  func::ReturnOp::create(builder, l, op->getResults());
}

OwningOpRef<ModuleOp> Generator::run(Sema &sema, const CheckedTrain &train,
                                     bool withLoss) {
  ctx.loadDialect<nn::NNDialect, optim::OptimDialect,
                  precision::PrecisionDialect, func::FuncDialect,
                  arith::ArithDialect>();
  Location l = loc(train.decl->loc());
  OwningOpRef<ModuleOp> module = ModuleOp::create(l);
  builder.setInsertionPointToEnd(module->getBody());

  std::vector<const ParamInfo *> params;
  train.model->collectParams(params);
  computeLayout(train, params);
  // The input is named as in the model's `forward(name: ...)`.
  std::string inputName = "x";
  auto fwd = train.model->members.find("forward");
  if (fwd != train.model->members.end() &&
      fwd->second.kind == tessera::Value::Kind::Fn && fwd->second.fn &&
      fwd->second.fn->params.size() == 1)
    inputName = fwd->second.fn->params[0].name;

  auto forward = genFunction(
      "forward", l, {{inputName, train.data->x}}, params,
      [&](llvm::ArrayRef<tessera::Value> args) {
        return sema.emit(train.model, {args[0]}, *this);
      },
      train.decl->loc(), "the forward function of " + train.model->signature);
  if (!forward)
    return nullptr;
  if (withLoss) {
    if (auto par = train.settings.find("parallel");
        par != train.settings.end() && par->second.s == "data") {
      diags.error(par->second.range.Start,
                  "parallel = data(...) cannot be compiled yet: data "
                  "parallelism is not implemented; remove the setting (or "
                  "write parallel = none) to train on one device");
      return nullptr;
    }
    emittingLoss = true;
    auto loss = genFunction(
        "loss", l, {{"x", train.data->x}, {"y", train.data->y}}, params,
        [&](llvm::ArrayRef<tessera::Value> args) {
          return sema.emitLoss(train, args[0], args[1], *this);
        },
        train.decl->loc(), "the loss of train block '" + train.decl->name + "'");
    emittingLoss = false;
    if (!loss)
      return nullptr;
    if (!genOptimizerStep(train, l))
      return nullptr;
    if (auto p = train.settings.find("precision");
        p != train.settings.end() && p->second.s == "fp16")
      genUnscaleGrads(l);
  }
  // precision = bf16(...) / fp16(...): the driver applies the policy
  // (tessera-mixed-precision) before differentiating.
  if (auto p = train.settings.find("precision");
      p != train.settings.end() && p->second.s != "f32") {
    if (p->second.s != "bf16" && p->second.s != "fp16") {
      diags.error(p->second.range.isValid() ? p->second.range.Start
                                            : train.decl->loc(),
                  "precision = " + p->second.s +
                      " cannot be compiled yet; bf16 and fp16 can");
      return nullptr;
    }
    (*module)->setAttr("tessera.precision",
                       builder.getStringAttr(p->second.s == "bf16" ? "bf16"
                                                                   : "f16"));
  }
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

} // namespace

OwningOpRef<ModuleOp> genTrainForward(MLIRContext &ctx, Sema &sema,
                                      const CheckedTrain &train,
                                      DiagnosticEngine &diags, bool withLoss) {
  Generator gen(ctx, diags);
  return gen.run(sema, train, withLoss);
}

} // namespace tessera

namespace tessera {
namespace {
llvm::json::Value toJSON(const tessera::Value &v) {
  using Kind = tessera::Value::Kind;
  switch (v.kind) {
  case Kind::Int:
    if (auto i = v.getInt())
      return *i;
    return v.str();
  case Kind::Float:
    return v.f;
  case Kind::Bool:
    return v.b;
  case Kind::Str:
  case Kind::Symbol:
    return v.s;
  case Kind::DType:
    return v.str();
  case Kind::None:
    return nullptr;
  case Kind::Tuple:
  case Kind::List: {
    llvm::json::Array a;
    for (const tessera::Value &e : v.elems)
      a.push_back(toJSON(e));
    return a;
  }
  case Kind::Call: {
    llvm::json::Object o{{"name", v.s}};
    for (auto &kv : v.named)
      o[kv.first] = toJSON(kv.second);
    return o;
  }
  case Kind::Decl:
    return v.decl ? llvm::json::Value(v.str()) : nullptr;
  default:
    return v.str();
  }
}
} // namespace

std::string trainSettingsJSON(const CheckedTrain &train,
                              llvm::SourceMgr &sourceMgr) {
  llvm::json::Object o;
  for (auto &kv : train.settings) {
    llvm::StringRef key = kv.first();
    if (key == "model" || key == "data" || key == "loss")
      continue;
    o[key] = toJSON(kv.second);
  }
  if (const CheckedData *d = train.data) {
    llvm::json::Object data{{"kind", d->kind}, {"name", d->decl->name}};
    // Relative paths are relative to the declaring file.
    unsigned id = sourceMgr.FindBufferContainingLoc(d->decl->loc());
    llvm::SmallString<256> dir(
        id ? sourceMgr.getMemoryBuffer(id)->getBufferIdentifier() : "");
    llvm::sys::path::remove_filename(dir);
    for (auto &kv : d->source.named) {
      llvm::json::Value v = toJSON(kv.second);
      bool isPath = kv.first == "path" || kv.first == "images" ||
                    kv.first == "labels" || kv.first == "test_images" ||
                    kv.first == "test_labels";
      if (isPath && kv.second.kind == tessera::Value::Kind::Str) {
        llvm::SmallString<256> p(kv.second.s);
        if (llvm::sys::path::is_relative(p)) {
          llvm::SmallString<256> full(dir);
          llvm::sys::path::append(full, p);
          p = full;
        }
        llvm::sys::fs::make_absolute(p);
        llvm::sys::path::remove_dots(p, /*remove_dot_dot=*/true);
        v = std::string(p);
      }
      data[kv.first] = std::move(v);
    }
    llvm::json::Array x, y;
    for (const DimExpr &dim : d->x.shape)
      x.push_back(dim.getConstant().value_or(-1));
    for (const DimExpr &dim : d->y.shape)
      y.push_back(dim.getConstant().value_or(-1));
    data["x_shape"] = std::move(x);
    data["y_shape"] = std::move(y);
    o["data"] = std::move(data);
  }
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::json::Value(std::move(o));
  return text;
}

} // namespace tessera
