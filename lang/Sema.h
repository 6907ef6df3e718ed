//===- Sema.h - Names, module instantiation, shapes, settings ---*- C++ -*-===//
//
// Semantic analysis of a loaded Program:
//   * resolves names and imports,
//   * instantiates models with their arguments (`GPT(dim=384)`), giving every
//     trainable tensor a path such as `blocks.3.mlp.fc.weight`,
//   * evaluates every function body with symbolic shapes (`f32[B, T, 384]`),
//     checking dtypes, broadcasting, matmul and reshape rules,
//   * checks `data`, `train` and `compress` blocks against their schemas and
//     resolves parameter-path globs against the instantiated model.
// The results (instances, parameter tables, resolved rules) are what MLIRGen
// and the runtime consume.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_SEMA_H
#define TESSERA_LANG_SEMA_H

#include "lang/AST.h"
#include "lang/Diagnostics.h"
#include "lang/Program.h"
#include "lang/Shape.h"

#include <deque>
#include <map>
#include <memory>
#include <optional>

namespace tessera {

struct ModuleInstance;

/// A compile-time value: what an expression evaluates to during checking.
struct Value {
  enum class Kind {
    Error,     // an error was already reported; silences follow-on errors
    None,      // `none` setting values / absent optional arguments
    Int,       // integer or dimension (possibly symbolic): `dim`
    Float,
    Bool,
    Str,
    Ratio,     // 2:4
    DType,     // f32, bf16, ...
    Tensor,    // a tensor of known dtype and (symbolic) shape
    Module,    // an instantiated model
    ModuleList,// `repeat(n)`: a sequence of instances
    Fn,        // a function of an instance: `self.forward`
    Tuple,
    List,
    Symbol,    // a bare identifier in a setting: `per_channel`, `dynamic`
    Call,      // a setting call: `AdamW(lr=1e-3)`, `every(100)`
    Decl,      // a reference to a top-level data/train/compress/model decl
    Namespace, // an imported module name: `nn`
    Builtin,   // a builtin function, possibly bound to `self` (x.reshape)
  };
  Kind kind = Kind::Error;
  DimExpr dim;
  double f = 0;
  bool b = false;
  bool isPercent = false; // Float written as `50%`
  std::string s;          // Str, Symbol, Builtin/Call name
  int64_t n = 0, m = 0;   // Ratio
  DType dtype = DType::F32;
  TensorType tensor;
  ModuleInstance *module = nullptr;
  std::vector<ModuleInstance *> modules;
  const ast::FnDecl *fn = nullptr;
  std::vector<Value> elems;            // Tuple, List, Call positional args
  std::vector<std::pair<std::string, Value>> named; // Call named args
  const ast::Decl *decl = nullptr;
  const ast::File *file = nullptr;     // Namespace, Decl
  std::shared_ptr<Value> self;         // Builtin bound as a method
  llvm::SMRange range;                 // where the value was written
  int paramIndex = -1;                 // Tensor: index in module->params
  void *ir = nullptr;                  // Tensor: the emitter's handle

  static Value error() { return Value(); }
  static Value ofInt(DimExpr d);
  static Value ofInt(int64_t v) { return ofInt(DimExpr::constant(v)); }
  static Value ofFloat(double v);
  static Value ofBool(bool v);
  static Value ofStr(std::string v);
  static Value ofTensor(TensorType t);
  static Value ofDType(DType t);

  bool isError() const { return kind == Kind::Error; }
  bool isNumber() const { return kind == Kind::Int || kind == Kind::Float; }
  std::optional<int64_t> getInt() const {
    return kind == Kind::Int ? dim.getConstant() : std::nullopt;
  }
  double asDouble() const;
  /// Short human-readable form, for messages and signatures.
  std::string str() const;
  /// What kind of thing this is, for messages: "a tensor", "an integer".
  std::string describe() const;
};

/// A trainable tensor of an instantiated model.
struct ParamInfo {
  std::string path;       // blocks.3.mlp.fc.weight
  TensorType type;        // concrete shape
  std::string init;       // printed initializer, e.g. normal(std=0.02)
  llvm::SMLoc loc;        // the `param` declaration
};

/// One instantiated model: a ModelDecl bound to argument values.
struct ModuleInstance {
  const ast::ModelDecl *decl = nullptr;
  const ast::File *file = nullptr;
  std::string path;       // "" for the root, "blocks.3" below
  std::string signature;  // GPT(vocab=65, dim=384, ...)
  /// Model parameters, `let`s, submodules, params and fns by name.
  llvm::StringMap<Value> members;
  llvm::StringMap<llvm::SMLoc> memberLocs;
  /// Own trainable tensors, in declaration order.
  std::vector<ParamInfo> params;
  /// Submodule instances, in declaration order (repeat lists expanded).
  std::vector<ModuleInstance *> children;
  llvm::SMLoc instantiatedAt;

  /// Every parameter of this instance and its descendants, in order.
  void collectParams(std::vector<const ParamInfo *> &out) const;
};

/// A resolved `quantize`/`prune` rule: which parameters it selects.
struct ResolvedRule {
  const ast::CompressRule *rule = nullptr;
  std::string action;                 // "prune" or "quantize"
  Value method;                       // magnitude(...), int8(...), ...
  std::vector<const ParamInfo *> params;
};

struct CheckedData {
  const ast::DataDecl *decl = nullptr;
  std::string kind;                   // tokens, idx, csv
  Value source;                       // the evaluated call
  TensorType x, y;                    // one batch
};

struct CheckedTrain {
  const ast::TrainDecl *decl = nullptr;
  const ast::File *file = nullptr;
  ModuleInstance *model = nullptr;
  const CheckedData *data = nullptr;
  llvm::StringMap<Value> settings;    // evaluated settings by key
};

struct CheckedCompress {
  const ast::CompressDecl *decl = nullptr;
  ModuleInstance *model = nullptr;
  const CheckedTrain *from = nullptr;
  std::vector<ResolvedRule> rules;
};

/// Receives the tensor operations Sema evaluates while `Sema::emit` runs, so
/// a code generator builds IR with Sema doing all typing and name
/// resolution. Handles are opaque to Sema; a null handle means the emitter
/// has reported an error.
class EmitHooks {
public:
  virtual ~EmitHooks();
  /// A reference to a trainable parameter.
  virtual void *param(const ParamInfo &param, llvm::SMLoc loc) = 0;
  /// One operation: a builtin (`linear`, `softmax`, ...) or an operator
  /// (`add`, `sub`, `mul`, `div`, `neg`). `args` pairs parameter names with
  /// values (tensors carry handles; scalars are attributes); `rest` holds
  /// variadic arguments. Returns one handle per entry of `results`.
  virtual std::vector<void *>
  op(llvm::StringRef name,
     llvm::ArrayRef<std::pair<llvm::StringRef, const Value *>> args,
     llvm::ArrayRef<Value> rest, llvm::ArrayRef<TensorType> results,
     llvm::SMLoc loc) = 0;
};

/// Runs semantic analysis over a loaded program.
class Sema {
public:
  Sema(Program &program, DiagnosticEngine &diags);
  ~Sema();

  /// Checks everything; returns false after reporting errors.
  bool run();

  const std::vector<std::unique_ptr<CheckedData>> &getData() const;
  const std::vector<std::unique_ptr<CheckedTrain>> &getTrains() const;
  const std::vector<std::unique_ptr<CheckedCompress>> &getCompresses() const;

  /// Evaluates `model(args...)` once more with `hooks` receiving every
  /// operation (after a successful run()). Returns the result value.
  Value emit(ModuleInstance *model, std::vector<Value> args,
             EmitHooks &hooks);
  /// Evaluates the loss of `train` once more, with `model` bound to its model
  /// and `x`, `y` to the given (emitted) batch values.
  Value emitLoss(const CheckedTrain &train, Value x, Value y, EmitHooks &hooks);

  class Impl;

private:
  std::unique_ptr<Impl> impl;
};

/// Matches a dotted parameter path against a glob (`*` one segment, `**`
/// zero or more).
bool globMatches(const ast::Glob &glob, llvm::StringRef path);

/// Splits "blocks.*.weight" into a Glob (for no_decay lists given as strings).
ast::Glob parseGlobString(llvm::StringRef text, llvm::SMRange range = {});

/// Total element count of a parameter list (saturates at INT64_MAX).
int64_t countElements(llvm::ArrayRef<const ParamInfo *> params);

} // namespace tessera

#endif // TESSERA_LANG_SEMA_H
