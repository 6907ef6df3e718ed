//===- Autodiff.cpp - Reverse-mode differentiation of nn functions --------===//

#include "dialects/nn/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include "llvm/ADT/DenseSet.h"

using namespace mlir;

namespace tessera::nn {
#define GEN_PASS_DEF_AUTODIFF
#include "dialects/nn/Transforms/Passes.h.inc"

namespace {

Value zerosLike(OpBuilder &b, Location l, Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return arith::ConstantOp::create(
      b, l, DenseElementsAttr::get(t, b.getFloatAttr(t.getElementType(), 0.0)));
}

bool isFloatTensor(Type type) {
  auto t = dyn_cast<RankedTensorType>(type);
  return t && isa<FloatType>(t.getElementType());
}
bool isFloatTensor(Value v) { return isFloatTensor(v.getType()); }

struct AutodiffPass : public impl::AutodiffBase<AutodiffPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fn = module.lookupSymbol<func::FuncOp>(function);
    if (!fn) {
      module.emitError("tessera-autodiff: no function '" + function + "'");
      return signalPassFailure();
    }
    if (module.lookupSymbol(output)) {
      fn.emitError("tessera-autodiff: '" + output + "' already exists");
      return signalPassFailure();
    }
    if (!fn.getBody().hasOneBlock() || fn.getNumResults() != 1 ||
        !isFloatTensor(fn.getResultTypes()[0]) ||
        cast<RankedTensorType>(fn.getResultTypes()[0]).getRank() != 0) {
      fn.emitError("tessera-autodiff: '" + function +
                   "' must have one block and return one scalar float tensor");
      return signalPassFailure();
    }
    OpBuilder top(module.getContext());
    top.setInsertionPointAfter(fn);
    auto grad = cast<func::FuncOp>(top.clone(*fn));
    grad.setName(output);
    if (failed(differentiate(grad)))
      return signalPassFailure();
  }

  LogicalResult differentiate(func::FuncOp fn) {
    Block &body = fn.front();
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    Value loss = ret.getOperand(0);

    // Forward: the values that depend on a parameter.
    llvm::DenseSet<Value> active;
    SmallVector<BlockArgument> params;
    for (BlockArgument arg : body.getArguments())
      if (fn.getArgAttr(arg.getArgNumber(), "tessera.param") &&
          isFloatTensor(arg)) {
        params.push_back(arg);
        active.insert(arg);
      }
    SmallVector<Operation *> ops;
    for (Operation &op : body.without_terminator()) {
      ops.push_back(&op);
      if (llvm::any_of(op.getOperands(), [&](Value v) { return active.count(v); }))
        for (Value r : op.getResults())
          if (isFloatTensor(r))
            active.insert(r);
    }

    // Backward, last op first.
    OpBuilder b(ret);
    llvm::DenseMap<Value, Value> grads;
    auto lossType = cast<RankedTensorType>(loss.getType());
    if (scaleLoss) {
      // The seed is the loss scale, a new input after the existing ones.
      unsigned at = 0;
      for (unsigned i = 0; i < fn.getNumArguments(); ++i)
        if (fn.getArgAttr(i, "tessera.input"))
          at = i + 1;
      if (failed(fn.insertArgument(at, lossType,
                                   b.getDictionaryAttr(b.getNamedAttr(
                                       "tessera.input",
                                       b.getStringAttr("loss_scale"))),
                                   ret.getLoc())))
        return failure();
      grads[loss] = body.getArgument(at);
    } else {
      grads[loss] = arith::ConstantOp::create(
          b, ret.getLoc(),
          DenseElementsAttr::get(lossType,
                                 b.getFloatAttr(lossType.getElementType(), 1.0)));
    }
    for (Operation *op : llvm::reverse(ops)) {
      if (llvm::none_of(op->getResults(), [&](Value r) { return grads.count(r); }))
        continue;
      if (llvm::none_of(op->getOperands(), [&](Value v) { return active.count(v); }))
        continue;
      auto diff = dyn_cast<DifferentiableOpInterface>(op);
      if (!diff)
        return op->emitError("cannot differentiate '")
               << op->getName() << "': it has no gradient";
      SmallVector<Value> resultGrads;
      for (Value r : op->getResults())
        resultGrads.push_back(grads.count(r) ? grads[r]
                                             : zerosLike(b, op->getLoc(), r));
      SmallVector<Value> operandGrads;
      if (failed(diff.buildVJP(b, resultGrads, operandGrads)))
        return failure();
      assert(operandGrads.size() == op->getNumOperands() &&
             "buildVJP must produce one gradient per operand");
      for (auto [operand, g] : llvm::zip(op->getOperands(), operandGrads)) {
        if (!g || !active.count(operand))
          continue;
        auto it = grads.find(operand);
        if (it == grads.end())
          grads[operand] = g;
        else
          it->second = AddOp::create(b, op->getLoc(), operand.getType(),
                                     it->second, g);
      }
    }

    SmallVector<Value> results{loss};
    for (BlockArgument p : params)
      results.push_back(grads.count(p) ? grads[p] : zerosLike(b, ret.getLoc(), p));
    Location l = ret.getLoc();
    ret.erase();
    b.setInsertionPointToEnd(&body);
    func::ReturnOp::create(b, l, results);
    SmallVector<Type> types;
    for (Value v : results)
      types.push_back(v.getType());
    fn.setType(FunctionType::get(fn.getContext(), body.getArgumentTypes(), types));
    fn.setResultAttr(0, "tessera.output", b.getStringAttr("loss"));
    for (auto [i, p] : llvm::enumerate(params)) {
      auto path = fn.getArgAttrOfType<StringAttr>(p.getArgNumber(), "tessera.param");
      fn.setResultAttr(i + 1, "tessera.output",
                       b.getStringAttr("grad." + path.str()));
    }
    return success();
  }
};

} // namespace
} // namespace tessera::nn
