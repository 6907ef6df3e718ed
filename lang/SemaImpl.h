//===- SemaImpl.h - Sema internals shared by its source files ---*- C++ -*-===//
//
// Sema.cpp: names, values, model instantiation, expression evaluation.
// SemaBuiltins.cpp: the tensor builtins and their shape rules.
// SemaBlocks.cpp: data/train/compress schemas and glob resolution.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_SEMAIMPL_H
#define TESSERA_LANG_SEMAIMPL_H

#include "lang/Sema.h"

#include "llvm/ADT/StringSet.h"

namespace tessera {

/// Lexical environment of an evaluation.
struct Env {
  const ast::File *file = nullptr;       // for top-level name lookup
  ModuleInstance *self = nullptr;        // the model being evaluated, if any
  Env *parent = nullptr;
  llvm::StringMap<Value> vars;           // fn params, lets
  /// Settings context: unknown bare names are symbols (`per_channel`).
  bool allowSymbols = false;
  /// Model-body context without tensors (defaults, lets, shapes).
  const Value *lookupLocal(llvm::StringRef name) const {
    for (const Env *e = this; e; e = e->parent) {
      auto it = e->vars.find(name);
      if (it != e->vars.end())
        return &it->second;
    }
    return nullptr;
  }
};

/// Positional and named arguments of a call, evaluated.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> named;
  std::vector<llvm::SMLoc> namedLocs;
  llvm::SMLoc callLoc;
  llvm::SMRange callRange;
};

class Sema::Impl {
public:
  Impl(Program &program, DiagnosticEngine &diags)
      : program(program), diags(diags) {}

  bool run();

  // --- diagnostics -------------------------------------------------------
  /// Reports an error, followed by notes naming the model instantiations
  /// and calls that led here. Always returns an Error value.
  Value error(llvm::SMLoc loc, const llvm::Twine &msg,
              llvm::ArrayRef<llvm::SMRange> ranges = {});
  void note(llvm::SMLoc loc, const llvm::Twine &msg) { diags.note(loc, msg); }

  // --- names ---------------------------------------------------------------
  /// Looks up a top-level name visible from `file` (its own decls, then its
  /// imports). Reports ambiguity; returns nullptr if not found.
  const ast::Decl *lookupDecl(const ast::File *file, llvm::StringRef name,
                              llvm::SMLoc useLoc, bool &ambiguous);
  const ast::File *lookupImport(const ast::File *file, llvm::StringRef name);
  Value lookupName(llvm::StringRef name, llvm::SMRange range, Env &env);
  Value constValue(const ast::ConstDecl *decl);
  /// True if `name` is an integer visible in `env`; other names written in a
  /// signature's dimensions are symbols.
  bool isDimName(llvm::StringRef name, Env &env);

  // --- evaluation ------------------------------------------------------------
  Value eval(const ast::Expr *expr, Env &env);
  Value evalBinary(const ast::BinaryExpr *e, Env &env);
  Value evalUnary(const ast::UnaryExpr *e, Env &env);
  Value evalCall(const ast::CallExpr *e, Env &env);
  Value evalMember(const ast::MemberExpr *e, Env &env);
  Value evalIndex(const ast::IndexExpr *e, Env &env);
  Value call(const Value &callee, CallArgs &args, Env &env);
  Value binaryOnValues(ast::BinaryOp op, Value lhs, Value rhs,
                       llvm::SMLoc opLoc, llvm::SMRange range);
  /// Evaluates an expression that must be a (possibly symbolic) integer.
  std::optional<DimExpr> evalDim(const ast::Expr *e, Env &env,
                                 llvm::StringRef what);
  std::optional<int64_t> evalConstInt(const ast::Expr *e, Env &env,
                                      llvm::StringRef what);
  /// Converts a written type to a tensor type. `bindings` holds symbols
  /// already bound; when `bindNew` is set, bare unknown names become
  /// symbols and are bound to themselves.
  std::optional<TensorType> evalTensorType(const ast::TypeExpr &type, Env &env,
                                           llvm::StringMap<DimExpr> *bindings,
                                           bool requireConcrete);

  // --- models ----------------------------------------------------------------
  ModuleInstance *instantiate(const ast::ModelDecl *decl,
                              const ast::File *file, CallArgs &args,
                              const std::string &path);
  bool instantiateItems(ModuleInstance *inst,
                        llvm::ArrayRef<ast::ModelItem *> items, Env &env);
  Value callFn(ModuleInstance *inst, const ast::FnDecl *fn, CallArgs &args);
  Value callModule(const Value &module, CallArgs &args);
  /// Checks every fn of every instantiated model once with symbolic inputs.
  void checkInstanceFns(ModuleInstance *inst);
  /// Reports unknown names in models that are never instantiated.
  void checkNamesInModel(const ast::ModelDecl *decl, const ast::File *file);
  void checkNamesInExpr(const ast::Expr *e, const llvm::StringSet<> &known,
                        const ast::File *file);
  std::string initSpec(const ast::Expr *init, Env &env, const TensorType &t,
                       llvm::SMLoc loc);

  // --- builtins (SemaBuiltins.cpp) -------------------------------------------
  static bool isBuiltin(llvm::StringRef name);
  Value callBuiltin(llvm::StringRef name, CallArgs &args);
  Value callBuiltinTyped(llvm::StringRef name, CallArgs &args,
                         std::vector<const Value *> &argv,
                         std::vector<Value> &rest);

  // --- blocks (SemaBlocks.cpp) ----------------------------------------------
  void checkData(const ast::DataDecl *decl, const ast::File *file);
  void checkTrain(const ast::TrainDecl *decl, const ast::File *file);
  void checkCompress(const ast::CompressDecl *decl, const ast::File *file);
  /// Reports that `glob` (written at `range`, described as `what`) matches
  /// none of `params`, the parameters of the model `signature`, with a note
  /// showing what parameter paths look like.
  void reportUnmatchedGlob(const ast::Glob &glob, llvm::SMRange range,
                           const llvm::Twine &what,
                           llvm::ArrayRef<const ParamInfo *> params,
                           llvm::StringRef signature);
  Value evalSetting(const ast::Expr *e, const ast::File *file,
                    Env *extra = nullptr);
  ModuleInstance *modelFromSetting(const ast::Setting &s,
                                   const ast::File *file);

  Program &program;
  DiagnosticEngine &diags;

  std::deque<ModuleInstance> instances;
  std::vector<std::unique_ptr<CheckedData>> data;
  std::vector<std::unique_ptr<CheckedTrain>> trains;
  std::vector<std::unique_ptr<CheckedCompress>> compresses;
  llvm::DenseMap<const ast::Decl *, const CheckedData *> dataByDecl;
  llvm::DenseMap<const ast::Decl *, const CheckedTrain *> trainByDecl;
  llvm::DenseMap<const ast::Decl *, const ast::File *> fileOfDecl;
  llvm::DenseMap<const ast::ConstDecl *, Value> constValues;
  llvm::DenseSet<const ast::ConstDecl *> constsInProgress;
  llvm::StringSet<> checkedSignatures;     // instance fns already checked
  llvm::StringMap<Value> fnResultCache;     // signature+fn+arg types -> result
  llvm::DenseSet<const ast::ModelDecl *> instantiatedDecls;
  /// Models whose instantiation hit kMaxInstanceDepth: every other pending
  /// instantiation of them fails at once (silently), or a model that
  /// instantiates itself twice would fill the whole instance budget.
  llvm::DenseSet<const ast::ModelDecl *> runawayDecls;

  /// What is being instantiated or called, innermost last, for notes.
  struct Frame {
    llvm::SMLoc loc;
    std::string what;
  };
  std::vector<Frame> frames;
  EmitHooks *hooks = nullptr;
  /// Attaches an emitter handle to a parameter value when emitting.
  void attachParam(Value &v, llvm::SMLoc loc);
  unsigned instanceCount = 0;
  unsigned callDepth = 0;

  static constexpr unsigned kMaxInstanceDepth = 64;
  static constexpr unsigned kMaxInstances = 200000;
  static constexpr int64_t kMaxRepeat = 100000;
  static constexpr unsigned kMaxCallDepth = 64;
};

/// Helpers for builtin argument handling.
const Value *findNamed(const CallArgs &args, llvm::StringRef name);

} // namespace tessera

#endif // TESSERA_LANG_SEMAIMPL_H
