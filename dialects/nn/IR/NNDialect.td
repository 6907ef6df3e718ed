//===- NNDialect.td - The nn dialect ------------------------*- tablegen -*-===//
//
// `nn` holds the model graph at the level users think in: linear layers,
// normalizations, attention, losses. Ops work on ranked tensors and follow
// PyTorch's semantics (weight layouts, broadcasting, reductions).
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_NN_DIALECT
#define TESSERA_NN_DIALECT

include "mlir/IR/OpBase.td"

def NN_Dialect : Dialect {
  let name = "nn";
  let cppNamespace = "::tessera::nn";
  let summary = "Tessera's model-graph dialect";
  let description = [{
    Tensor operations at the level of neural-network layers. MLIRGen emits
    them from .tsr models; later passes differentiate them (autodiff), change
    their precision and lower them to linalg/tensor/arith/math.
  }];
}

class NN_Op<string mnemonic, list<Trait> traits = []>
    : Op<NN_Dialect, mnemonic, traits>;

#endif // TESSERA_NN_DIALECT
