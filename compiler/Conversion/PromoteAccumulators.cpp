//===- PromoteAccumulators.cpp - Reduction accumulators in registers ------===//
//
// `convert-linalg-to-parallel-loops` lowers a reduction to a loop that
// loads its output element, adds one term and stores it back on every
// iteration, after a separate loop nest that fills the output with the
// reduction's identity:
//
//   scf.parallel (i) { memref.store %zero, %acc[i] }
//   scf.parallel (i) {
//     scf.for k { %a = memref.load %acc[i]  ...  memref.store %s, %acc[i] }
//   }
//
// On a GPU that is a kernel launch for the fill and a global load and store
// per term. This pass fuses loop nests with the same iteration space
// (scf::naivelyFuseParallelOps; allocations move up and frees down past
// loop nests first, since either keeps two nests apart), then
//
//   * carries an element that a loop loads and stores at loop-invariant
//     indices in an iter_arg instead: loaded once before the loop, stored
//     once after it;
//   * forwards a stored value to a later load of the same element in the
//     same block;
//   * erases a store that a later store to the same element overwrites
//     before anything may read it;
//
// which leaves `scf.for k iter_args(%a = %zero) { ... }` and one store, and
// erases buffers that are then only written (a reduction whose rounding
// joined its loop nest reads the sum from the register).
//
// Any other access in between that may alias the element (by
// LocalAliasAnalysis: views are followed to their allocation; distinct
// function arguments may alias) blocks the rewrite, as does an op with
// unknown memory effects.
//
//===----------------------------------------------------------------------===//

#include "compiler/Conversion/Passes.h"

#include "mlir/Analysis/AliasAnalysis.h"
#include "mlir/Analysis/AliasAnalysis/LocalAliasAnalysis.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;

namespace tessera {
#define GEN_PASS_DEF_PROMOTEACCUMULATORS
#include "compiler/Conversion/Passes.h.inc"

namespace {

/// Whether two index lists name the same element: the same values, or
/// equal constants.
bool sameIndices(ValueRange a, ValueRange b) {
  if (a.size() != b.size())
    return false;
  for (auto [x, y] : llvm::zip(a, b)) {
    if (x == y)
      continue;
    APInt cx, cy;
    if (!matchPattern(x, m_ConstantInt(&cx)) ||
        !matchPattern(y, m_ConstantInt(&cy)) || cx != cy)
      return false;
  }
  return true;
}

/// One element of a buffer.
struct Element {
  Value memref;
  ValueRange indices;
  bool is(memref::LoadOp load) const {
    return load.getMemRef() == memref && sameIndices(load.getIndices(), indices);
  }
  bool is(memref::StoreOp store) const {
    return store.getMemRef() == memref &&
           sameIndices(store.getIndices(), indices);
  }
};

/// Whether an op (or an op nested in it) may read or write a buffer.
struct Touch {
  bool reads = false, writes = false;
};

class Promoter {
public:
  /// What `op` may read and write of the buffer of `e`, other than `skip`.
  Touch touches(Operation *op, const Element &e,
                ArrayRef<Operation *> skip = {}) {
    Touch t;
    op->walk([&](Operation *inner) {
      if (llvm::is_contained(skip, inner))
        return;
      if (auto load = dyn_cast<memref::LoadOp>(inner)) {
        t.reads |= mayAlias(load.getMemRef(), e.memref);
        return;
      }
      if (auto store = dyn_cast<memref::StoreOp>(inner)) {
        t.writes |= mayAlias(store.getMemRef(), e.memref);
        return;
      }
      if (inner->hasTrait<OpTrait::HasRecursiveMemoryEffects>())
        return; // its nested ops are walked
      auto effects = dyn_cast<MemoryEffectOpInterface>(inner);
      if (!effects) {
        t.reads = t.writes = true;
        return;
      }
      SmallVector<MemoryEffects::EffectInstance> list;
      effects.getEffects(list);
      for (const MemoryEffects::EffectInstance &fx : list) {
        bool related = !fx.getValue() || mayAlias(fx.getValue(), e.memref);
        if (!related)
          continue;
        if (isa<MemoryEffects::Read>(fx.getEffect()))
          t.reads = true;
        if (isa<MemoryEffects::Write>(fx.getEffect()) ||
            isa<MemoryEffects::Free>(fx.getEffect()))
          t.writes = true;
      }
    });
    return t;
  }

  /// Carries elements that `loop` loads and stores at loop-invariant
  /// indices in iter_args. Returns whether it changed `loop`.
  bool promote(scf::ForOp &loop) {
    for (Operation &op : *loop.getBody()) {
      auto load = dyn_cast<memref::LoadOp>(&op);
      if (!load || !loop.isDefinedOutsideOfLoop(load.getMemRef()) ||
          !llvm::all_of(load.getIndices(), [&](Value i) {
            return loop.isDefinedOutsideOfLoop(i);
          }))
        continue;
      Element e{load.getMemRef(), load.getIndices()};
      // The one store of the element, later in the body, at its top level.
      memref::StoreOp store;
      for (Operation *next = load->getNextNode(); next;
           next = next->getNextNode())
        if (auto s = dyn_cast<memref::StoreOp>(next); s && e.is(s)) {
          store = s;
          break;
        }
      if (!store)
        continue;
      // Nothing else in the loop may touch the buffer.
      Touch t = touches(loop, e, {load, store});
      if (t.reads || t.writes)
        continue;
      rewrite(loop, load, store);
      return true;
    }
    return false;
  }

  /// Forwards stored values to later loads of the same element in the
  /// block, and erases stores that a later store overwrites unread.
  bool forwardAndDrop(Block &block) {
    bool changed = false;
    for (Operation *op = block.empty() ? nullptr : &block.front(); op;) {
      auto store = dyn_cast<memref::StoreOp>(op);
      if (!store) {
        op = op->getNextNode();
        continue;
      }
      Element e{store.getMemRef(), store.getIndices()};
      bool read = false, overwritten = false;
      for (Operation *next = store->getNextNode(); next;) {
        Operation *following = next->getNextNode();
        if (auto load = dyn_cast<memref::LoadOp>(next); load && e.is(load)) {
          load.getResult().replaceAllUsesWith(store.getValueToStore());
          load.erase();
          changed = true;
          next = following;
          continue;
        }
        if (auto later = dyn_cast<memref::StoreOp>(next);
            later && e.is(later)) {
          overwritten = !read;
          break;
        }
        Touch t = touches(next, e);
        read |= t.reads;
        if (t.writes)
          break;
        next = following;
      }
      op = store->getNextNode();
      if (overwritten) {
        store.erase();
        changed = true;
      }
    }
    return changed;
  }

private:
  bool mayAlias(Value a, Value b) {
    return !aliases.alias(a, b).isNo();
  }

  void rewrite(scf::ForOp &loop, memref::LoadOp load, memref::StoreOp store) {
    IRRewriter rewriter(loop.getContext());
    rewriter.setInsertionPoint(loop);
    auto init = cast<memref::LoadOp>(rewriter.clone(*load));
    Value stored = store.getValueToStore();
    FailureOr<LoopLikeOpInterface> grown = loop.replaceWithAdditionalYields(
        rewriter, ValueRange{init.getResult()},
        /*replaceInitOperandUsesInLoop=*/false,
        [&](OpBuilder &, Location, ArrayRef<BlockArgument>) {
          return SmallVector<Value>{stored};
        });
    assert(succeeded(grown) && "scf.for takes more iter_args");
    auto newLoop = cast<scf::ForOp>(grown->getOperation());
    load.getResult().replaceAllUsesWith(newLoop.getRegionIterArgs().back());
    rewriter.setInsertionPointAfter(newLoop);
    memref::StoreOp::create(rewriter, store.getLoc(), newLoop.getResults().back(),
                            store.getMemRef(), store.getIndices());
    rewriter.eraseOp(store);
    rewriter.eraseOp(load);
    loop = newLoop;
  }

  LocalAliasAnalysis aliases;
};

/// Whether `op` may sit between two parallel loops that
/// scf::naivelyFuseParallelOps fuses.
bool letsLoopsFuse(Operation &op) {
  return isMemoryEffectFree(&op) && op.getNumRegions() == 0;
}

/// Moves buffer allocations up and frees down past the parallel loops (and
/// effect-free ops) next to them, which would otherwise keep those loops
/// apart. A buffer then lives a few loop nests longer, no more.
void clearLoopChains(Block &block) {
  SmallVector<memref::AllocOp> allocs;
  SmallVector<memref::DeallocOp> deallocs;
  for (Operation &op : block) {
    if (auto alloc = dyn_cast<memref::AllocOp>(&op);
        alloc && alloc->getNumOperands() == 0)
      allocs.push_back(alloc);
    if (auto dealloc = dyn_cast<memref::DeallocOp>(&op))
      deallocs.push_back(dealloc);
  }
  for (memref::AllocOp alloc : allocs) {
    Operation *before = alloc->getPrevNode();
    while (before && (isa<scf::ParallelOp>(before) || letsLoopsFuse(*before)))
      before = before->getPrevNode();
    if (before)
      alloc->moveAfter(before);
    else
      alloc->moveBefore(&block.front());
  }
  for (memref::DeallocOp dealloc : llvm::reverse(deallocs)) {
    Value freed = dealloc.getMemref();
    Operation *after = dealloc->getNextNode();
    Operation *last = nullptr;
    while (after && !after->hasTrait<OpTrait::IsTerminator>() &&
           (isa<scf::ParallelOp>(after) || letsLoopsFuse(*after)) &&
           !llvm::is_contained(after->getOperands(), freed)) {
      bool uses = false;
      after->walk([&](Operation *inner) {
        uses |= llvm::is_contained(inner->getOperands(), freed);
      });
      if (uses)
        break;
      last = after;
      after = after->getNextNode();
    }
    if (last)
      dealloc->moveAfter(last);
  }
}

/// Erases buffers that are only stored to (and freed).
void eraseWriteOnlyAllocs(Operation *root) {
  SmallVector<memref::AllocOp> allocs;
  root->walk([&](memref::AllocOp alloc) { allocs.push_back(alloc); });
  for (memref::AllocOp alloc : allocs) {
    bool writeOnly = llvm::all_of(alloc->getUses(), [&](OpOperand &use) {
      if (auto store = dyn_cast<memref::StoreOp>(use.getOwner()))
        return use.get() == store.getMemRef() &&
               store.getValueToStore() != alloc.getResult();
      return isa<memref::DeallocOp>(use.getOwner());
    });
    if (!writeOnly)
      continue;
    for (Operation *user : llvm::make_early_inc_range(alloc->getUsers()))
      user->erase();
    alloc.erase();
  }
}

struct PromoteAccumulatorsPass
    : impl::PromoteAccumulatorsBase<PromoteAccumulatorsPass> {
  void runOnOperation() override {
    Promoter promoter;
    // Loop nests with the same iteration space fuse (a reduction's
    // identity fill into the reduction, an element-wise epilogue into the
    // loop that produces what it reads).
    SmallVector<Block *> hosts;
    getOperation().walk([&](Block *block) {
      if (llvm::any_of(*block, [](Operation &op) {
            return isa<scf::ParallelOp>(op);
          }))
        hosts.push_back(block);
    });
    LocalAliasAnalysis aliases;
    auto mayAlias = [&](Value a, Value b) {
      return !aliases.alias(a, b).isNo();
    };
    for (Block *block : hosts) {
      clearLoopChains(*block);
      scf::naivelyFuseParallelOps(*block->getParent(), mayAlias);
    }
    SmallVector<scf::ForOp> loops;
    getOperation().walk([&](scf::ForOp loop) { loops.push_back(loop); });
    // Innermost loops first (post-order walk), so an element carried out
    // of an inner loop may be carried out of the enclosing one too.
    for (scf::ForOp loop : loops)
      while (promoter.promote(loop)) {
      }
    SmallVector<Block *> blocks;
    getOperation().walk([&](Block *block) { blocks.push_back(block); });
    for (Block *block : blocks)
      (void)promoter.forwardAndDrop(*block);
    eraseWriteOnlyAllocs(getOperation());
  }
};

} // namespace
} // namespace tessera
