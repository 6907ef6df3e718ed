//===- GPUHost.cpp - Host code that never touches device memory -----------===//
//
// After `convert-parallel-loops-to-gpu`, a GPU function is host code
// around gpu.launch ops. Its buffers live in device memory, so the host
// part may allocate them, free them, compute their descriptors and launch
// kernels, but never load or store their contents. Two passes get it there:
// `tessera-gpu-copies-to-linalg` turns copies into structured ops before the
// parallel-loop mapping (so they become kernels), and
// `tessera-gpu-legalize-host` moves what remains into kernels and
// allocates on the device.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/ConsumerEpilogue.h"
#include "compiler/Conversion/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Iterators.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Interfaces/ViewLikeInterface.h"
#include "mlir/Transforms/RegionUtils.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_GPUCOPIESTOLINALG
#define GEN_PASS_DEF_GPULEGALIZEHOST
#define GEN_PASS_DEF_GPUASYNCTENSORMAPS
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// Marks the one-thread kernels that hold host code (for tests and
/// diagnostics).
constexpr llvm::StringLiteral kSerialAttr = "tessera.serial";

bool insideKernel(Operation *op) {
  return op->getParentOfType<gpu::LaunchOp>() != nullptr;
}

//===----------------------------------------------------------------------===//
// memref.copy -> linalg.copy
//===----------------------------------------------------------------------===//

/// Whether `copy` copies memory onto itself: the same value, or two
/// identical subviews (bufferization leaves these after in-place updates of
/// a slice).
bool isSelfCopy(memref::CopyOp copy) {
  Value from = copy.getSource(), to = copy.getTarget();
  if (from == to)
    return true;
  auto x = from.getDefiningOp<memref::SubViewOp>();
  auto y = to.getDefiningOp<memref::SubViewOp>();
  return x && y &&
         OperationEquivalence::isEquivalentTo(
             x, y, OperationEquivalence::exactValueMatch,
             OperationEquivalence::ignoreValueEquivalence,
             OperationEquivalence::IgnoreLocations);
}

/// A result that buffer-results-to-out-params copies into its
/// out-parameter from a reshaped temporary (a bias gradient's [1, N] sum
/// collapsed to [N]): the temporary becomes the matching view of the
/// out-parameter, so its producer writes the result in place, and the copy
/// and its kernel go. (`hoist-static-allocs` does this for results that
/// are allocations themselves.) The temporary must have no user after the
/// copy but its frees, and the out-parameter no user but the copy.
bool writeInPlace(memref::CopyOp copy) {
  auto target = dyn_cast<BlockArgument>(copy.getTarget());
  if (!target || !target.hasOneUse() ||
      !isa<FunctionOpInterface>(target.getOwner()->getParentOp()) ||
      !cast<MemRefType>(target.getType()).getLayout().isIdentity())
    return false;
  Operation *reshape = copy.getSource().getDefiningOp();
  if (!reshape || !reshape->hasOneUse() ||
      !isa<memref::CollapseShapeOp, memref::ExpandShapeOp>(reshape))
    return false;
  auto alloc = reshape->getOperand(0).getDefiningOp<memref::AllocOp>();
  if (!alloc || alloc->getBlock() != copy->getBlock())
    return false;
  SmallVector<Operation *> frees;
  for (Operation *user : alloc->getUsers()) {
    if (isa<memref::DeallocOp>(user)) {
      frees.push_back(user);
      continue;
    }
    Operation *at = copy->getBlock()->findAncestorOpInBlock(*user);
    if (!at || !at->isBeforeInBlock(copy))
      return false;
  }
  OpBuilder b(alloc);
  Value view;
  if (auto collapse = dyn_cast<memref::CollapseShapeOp>(reshape))
    view = memref::ExpandShapeOp::create(b, alloc.getLoc(), alloc.getType(),
                                         target,
                                         collapse.getReassociationIndices());
  else
    view = memref::CollapseShapeOp::create(
        b, alloc.getLoc(), target,
        cast<memref::ExpandShapeOp>(reshape).getReassociationIndices());
  if (view.getType() != alloc.getType()) {
    view.getDefiningOp()->erase();
    return false;
  }
  for (Operation *free : frees)
    free->erase();
  copy.erase();
  reshape->erase();
  alloc.replaceAllUsesWith(view);
  alloc.erase();
  return true;
}

struct GPUCopiesToLinalgPass
    : impl::GPUCopiesToLinalgBase<GPUCopiesToLinalgPass> {
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) {
      if (!insideKernel(copy))
        copies.push_back(copy);
    });
    for (memref::CopyOp copy : copies) {
      if (isSelfCopy(copy)) {
        copy.erase();
        continue;
      }
      if (writeInPlace(copy))
        continue;
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(),
                             copy.getTarget());
      copy.erase();
    }
  }
};

//===----------------------------------------------------------------------===//
// Host legalization
//===----------------------------------------------------------------------===//

/// Whether `op` (or an op nested in it) may write or free `root`'s memory.
bool mayWriteOrFree(Operation *op, Value root) {
  auto aliases = [&](Value v) {
    return v && isa<BaseMemRefType>(v.getType()) && rootBuffer(v) == root;
  };
  WalkResult result = op->walk([&](Operation *nested) {
    auto effects = dyn_cast<MemoryEffectOpInterface>(nested);
    if (!effects) {
      if (nested->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
        return WalkResult::advance();
      // No declared effects: assume it writes what it is given.
      bool touches = isa<CallOpInterface>(nested) ||
                     llvm::any_of(nested->getOperands(), aliases);
      return touches ? WalkResult::interrupt() : WalkResult::advance();
    }
    SmallVector<MemoryEffects::EffectInstance> instances;
    effects.getEffects(instances);
    for (const MemoryEffects::EffectInstance &e : instances) {
      if (!isa<MemoryEffects::Write, MemoryEffects::Free>(e.getEffect()))
        continue;
      if (!e.getValue() || aliases(e.getValue()))
        return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return result.wasInterrupted();
}

/// Whether a host value must be recomputed inside the kernels that use it
/// rather than passed to them: it is read from a buffer, or it is a host
/// global (whose address means nothing on the device), or it is computed
/// from one of those.
bool mustSink(Value v, DenseMap<Value, bool> &memo) {
  auto it = memo.find(v);
  if (it != memo.end())
    return it->second;
  Operation *def = v.getDefiningOp();
  bool sink = false;
  if (def && !insideKernel(def)) {
    if (isa<memref::LoadOp, memref::GetGlobalOp>(def))
      sink = true;
    else if (def->getNumRegions() == 0 &&
             (isMemoryEffectFree(def) || isa<ViewLikeOpInterface>(def)))
      sink = llvm::any_of(def->getOperands(),
                          [&](Value o) { return mustSink(o, memo); });
  }
  memo[v] = sink;
  return sink;
}

class HostLegalizer {
public:
  explicit HostLegalizer(func::FuncOp fn) : fn(fn) {}

  LogicalResult run() {
    if (failed(sinkIntoKernels()))
      return failure();
    eraseDeadHostOps();
    if (failed(wrapHostMemoryAccesses(fn.getBody())))
      return failure();
    // The new one-thread kernels may use globals too.
    if (failed(sinkIntoKernels()))
      return failure();
    eraseDeadHostOps();
    return allocateOnDevice();
  }

private:
  func::FuncOp fn;

  SmallVector<gpu::LaunchOp> launches() {
    SmallVector<gpu::LaunchOp> result;
    fn.walk([&](gpu::LaunchOp l) { result.push_back(l); });
    return result;
  }

  /// A load moved from the host into `launch` reads the same values only if
  /// nothing between the two (the launch included) writes or frees the
  /// buffer.
  LogicalResult checkLoadCanMove(memref::LoadOp load, gpu::LaunchOp launch) {
    Block *block = load->getBlock();
    Operation *end = block->findAncestorOpInBlock(*launch);
    if (!end || end->isBeforeInBlock(load)) {
      return load.emitError(
          "a kernel uses this value read from device memory, but the read "
          "is not in a block enclosing the kernel; it cannot be moved into "
          "the kernel");
    }
    Value root = rootBuffer(load.getMemRef());
    for (Operation *op = load->getNextNode();; op = op->getNextNode()) {
      if (mayWriteOrFree(op, root)) {
        InFlightDiagnostic diag = load.emitError(
            "a kernel uses this value read from device memory, but the "
            "buffer may change before the kernel runs; it cannot be moved "
            "into the kernel");
        diag.attachNote(op->getLoc()) << "the buffer may change here";
        return diag;
      }
      if (op == end)
        return success();
    }
  }

  /// Clones the computation of `v` into `launch` (at `b`), recursively.
  FailureOr<Value> materialize(Value v, gpu::LaunchOp launch, OpBuilder &b,
                               IRMapping &map, DenseMap<Value, bool> &memo) {
    if (Value mapped = map.lookupOrNull(v))
      return mapped;
    if (!mustSink(v, memo))
      return v;
    Operation *def = v.getDefiningOp();
    if (auto load = dyn_cast<memref::LoadOp>(def))
      if (failed(checkLoadCanMove(load, launch)))
        return failure();
    for (Value operand : def->getOperands())
      if (failed(materialize(operand, launch, b, map, memo)))
        return failure();
    Operation *clone = b.clone(*def, map);
    return clone->getResult(cast<OpResult>(v).getResultNumber());
  }

  LogicalResult sinkIntoKernels() {
    DenseMap<Value, bool> memo;
    for (gpu::LaunchOp launch : launches()) {
      llvm::SetVector<Value> captured;
      getUsedValuesDefinedAbove(launch.getBody(), captured);
      OpBuilder b = OpBuilder::atBlockBegin(&launch.getBody().front());
      IRMapping map;
      for (Value v : captured) {
        if (!mustSink(v, memo))
          continue;
        FailureOr<Value> inside = materialize(v, launch, b, map, memo);
        if (failed(inside))
          return failure();
        v.replaceUsesWithIf(*inside, [&](OpOperand &use) {
          return launch->isProperAncestor(use.getOwner());
        });
      }
    }
    return success();
  }

  void eraseDeadHostOps() {
    bool changed = true;
    while (changed) {
      changed = false;
      fn.walk<WalkOrder::PostOrder, ReverseIterator>([&](Operation *op) {
        if (op != fn && !insideKernel(op) && !isa<gpu::LaunchOp>(op) &&
            isOpTriviallyDead(op)) {
          op->erase();
          changed = true;
        }
      });
    }
  }

  /// Whether `op`, a host op, reads or writes the contents of a buffer.
  static bool accessesMemory(Operation *op) {
    // (gpu.memset runs on the device already: split-K's counters.)
    if (isa<gpu::LaunchOp, gpu::MemsetOp, memref::AllocOp, memref::AllocaOp,
            memref::DeallocOp, memref::GetGlobalOp, ViewLikeOpInterface,
            CallOpInterface, func::ReturnOp>(op))
      return false;
    WalkResult result = op->walk<WalkOrder::PreOrder>([](Operation *nested) {
      if (isa<gpu::LaunchOp>(nested))
        return WalkResult::skip();
      auto effects = dyn_cast<MemoryEffectOpInterface>(nested);
      if (!effects)
        return WalkResult::advance();
      if (effects.hasEffect<MemoryEffects::Read>() ||
          effects.hasEffect<MemoryEffects::Write>())
        return WalkResult::interrupt();
      return WalkResult::advance();
    });
    return result.wasInterrupted();
  }

  /// Whether `op` may join a run of memory accesses (it computes nothing
  /// but its results).
  static bool joinsRun(Operation *op) {
    return op->getNumRegions() == 0 &&
           (isMemoryEffectFree(op) || isa<ViewLikeOpInterface>(op)) &&
           !isa<gpu::LaunchOp>(op);
  }

  /// Whether `use` of a value defined in the run `inRun` (ops of `block`)
  /// lies outside the run.
  static bool usedOutside(OpOperand &use, Block *block,
                          const llvm::SmallPtrSetImpl<Operation *> &inRun) {
    Operation *top = block->findAncestorOpInBlock(*use.getOwner());
    return !top || !inRun.contains(top);
  }

  /// Passes the scalar results of `op` (in a run about to become a kernel)
  /// to their users after the run through device memory: a rank-0 buffer
  /// written in the kernel (the store is appended to `stores`) and read
  /// right before each later user (which then moves into its own kernel).
  LogicalResult spill(Operation *op,
                      const llvm::SmallPtrSetImpl<Operation *> &inRun,
                      SmallVectorImpl<Operation *> &stores) {
    Block *block = op->getBlock();
    for (Value result : op->getResults()) {
      if (!result.getType().isIntOrIndexOrFloat())
        return op->emitError("this host value depends on device memory and "
                             "is used outside the kernels; Tessera cannot "
                             "compile it for the GPU yet");
      SmallVector<OpOperand *> outside;
      for (OpOperand &use : result.getUses())
        if (usedOutside(use, block, inRun))
          outside.push_back(&use);
      if (outside.empty())
        continue;
      OpBuilder b(&block->front());
      auto type = MemRefType::get({}, result.getType());
      Value slot = memref::AllocOp::create(b, op->getLoc(), type);
      b.setInsertionPoint(block->getTerminator());
      memref::DeallocOp::create(b, op->getLoc(), slot);
      b.setInsertionPointAfter(op);
      stores.push_back(memref::StoreOp::create(b, op->getLoc(), result, slot));
      for (OpOperand *use : outside) {
        b.setInsertionPoint(block->findAncestorOpInBlock(*use->getOwner()));
        use->set(memref::LoadOp::create(b, op->getLoc(), slot));
      }
    }
    return success();
  }

  /// Moves `run` (consecutive host ops) into a one-thread kernel.
  LogicalResult wrap(ArrayRef<Operation *> run) {
    llvm::SmallPtrSet<Operation *, 16> inRun(run.begin(), run.end());
    Block *block = run.front()->getBlock();
    // Pure values the rest of the function needs are computed before the
    // kernel when they can be; anything else comes back through device
    // memory.
    SmallVector<Operation *> stores;
    for (Operation *op : run) {
      if (llvm::none_of(op->getUses(), [&](OpOperand &use) {
            return usedOutside(use, block, inRun);
          }))
        continue;
      bool fromOutside = llvm::none_of(op->getOperands(), [&](Value v) {
        Operation *d = v.getDefiningOp();
        return d && inRun.contains(d);
      });
      if (joinsRun(op) && fromOutside) {
        op->moveBefore(run.front());
        inRun.erase(op);
        continue;
      }
      if (failed(spill(op, inRun, stores)))
        return failure();
    }
    // The run is contiguous, and the spill stores sit right after their
    // values, so they are part of it.
    Operation *first = nullptr, *last = nullptr;
    for (Operation *op : llvm::concat<Operation *const>(run, stores))
      if (inRun.contains(op) || llvm::is_contained(stores, op)) {
        if (!first || op->isBeforeInBlock(first))
          first = op;
        if (!last || last->isBeforeInBlock(op))
          last = op;
      }
    if (!first)
      return success();
    OpBuilder b(first);
    Location loc = first->getLoc();
    Value one = arith::ConstantIndexOp::create(b, loc, 1);
    auto launch = gpu::LaunchOp::create(b, loc, one, one, one, one, one, one);
    launch->setAttr(kSerialAttr, b.getUnitAttr());
    Block &body = launch.getBody().front();
    body.getOperations().splice(body.end(), first->getBlock()->getOperations(),
                                first->getIterator(),
                                std::next(last->getIterator()));
    b.setInsertionPointToEnd(&body);
    gpu::TerminatorOp::create(b, loc);
    return success();
  }

  static bool containsKernel(Operation *op) {
    return op
        ->walk([](gpu::LaunchOp) { return WalkResult::interrupt(); })
        .wasInterrupted();
  }

  /// Wraps the host memory accesses of `region`'s blocks; host loops that
  /// launch kernels stay on the host, their bodies are legalized.
  LogicalResult wrapHostMemoryAccesses(Region &region) {
    for (Block &block : region) {
      SmallVector<SmallVector<Operation *>> runs;
      SmallVector<Operation *> current, pending;
      SmallVector<Operation *> hostLoops;
      for (Operation &op : block) {
        if (!isa<gpu::LaunchOp>(op) && op.getNumRegions() &&
            containsKernel(&op)) {
          hostLoops.push_back(&op);
          if (!current.empty())
            runs.push_back(std::move(current));
          current.clear();
          pending.clear();
        } else if (accessesMemory(&op)) {
          current.append(pending.begin(), pending.end());
          pending.clear();
          current.push_back(&op);
        } else if (!current.empty() && joinsRun(&op)) {
          pending.push_back(&op);
        } else {
          if (!current.empty())
            runs.push_back(std::move(current));
          current.clear();
          pending.clear();
        }
      }
      if (!current.empty())
        runs.push_back(std::move(current));
      for (ArrayRef<Operation *> run : runs)
        if (failed(wrap(run)))
          return failure();
      for (Operation *loop : hostLoops)
        for (Region &nested : loop->getRegions())
          if (failed(wrapHostMemoryAccesses(nested)))
            return failure();
    }
    return success();
  }

  LogicalResult allocateOnDevice() {
    SmallVector<Operation *> toReplace;
    WalkResult result = fn.walk<WalkOrder::PreOrder>([&](Operation *op) {
      if (isa<gpu::LaunchOp>(op))
        return WalkResult::skip();
      if (isa<memref::AllocaOp>(op)) {
        op->emitError("a stack buffer in host code cannot hold device data");
        return WalkResult::interrupt();
      }
      if (isa<memref::AllocOp, memref::DeallocOp>(op))
        toReplace.push_back(op);
      return WalkResult::advance();
    });
    if (result.wasInterrupted())
      return failure();
    for (Operation *op : toReplace) {
      OpBuilder b(op);
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        auto device = gpu::AllocOp::create(
            b, alloc.getLoc(), alloc.getType(), /*asyncToken=*/Type(),
            /*asyncDependencies=*/ValueRange(), alloc.getDynamicSizes(),
            alloc.getSymbolOperands(), /*hostShared=*/false);
        alloc.replaceAllUsesWith(device.getMemref());
      } else {
        auto dealloc = cast<memref::DeallocOp>(op);
        gpu::DeallocOp::create(b, dealloc.getLoc(), /*asyncToken=*/Type(),
                               ValueRange(), dealloc.getMemref());
      }
      op->erase();
    }
    return success();
  }
};

struct GPULegalizeHostPass : impl::GPULegalizeHostBase<GPULegalizeHostPass> {
  void runOnOperation() override {
    for (auto fn : getOperation().getOps<func::FuncOp>())
      if (!fn.isExternal() && failed(HostLegalizer(fn).run()))
        return signalPassFailure();
  }
};

//===----------------------------------------------------------------------===//
// Descriptor calls between asynchronous work
//===----------------------------------------------------------------------===//

/// A call of the runtime functions the TMA kernels' host code makes, which
/// read no device memory.
bool isTensorMapCall(Operation *op) {
  auto call = dyn_cast<func::CallOp>(op);
  return call && (call.getCallee() == "tesseraTensorMap2D" ||
                  call.getCallee() == "tesseraMultiprocessorCount");
}

struct GPUAsyncTensorMapsPass
    : impl::GPUAsyncTensorMapsBase<GPUAsyncTensorMapsPass> {
  void runOnOperation() override {
    SmallVector<gpu::WaitOp> waits;
    getOperation().walk([&](gpu::WaitOp w) {
      if (!w.getAsyncToken() && w.getAsyncDependencies().size() == 1)
        waits.push_back(w);
    });
    for (gpu::WaitOp wait : waits) {
      bool calls = false;
      Operation *op = wait->getNextNode();
      for (; op; op = op->getNextNode()) {
        if (isTensorMapCall(op))
          calls = true;
        else if (op->getNumRegions() || !isMemoryEffectFree(op))
          break;
      }
      auto restart = dyn_cast_or_null<gpu::WaitOp>(op);
      if (!calls || !restart || !restart.getAsyncToken() ||
          !restart.getAsyncDependencies().empty())
        continue;
      restart.getAsyncToken().replaceAllUsesWith(
          wait.getAsyncDependencies()[0]);
      restart.erase();
      wait.erase();
    }
  }
};

} // namespace
} // namespace tessera
