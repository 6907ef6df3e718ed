//===- AST.h - Tessera abstract syntax tree ---------------------*- C++ -*-===//
//
// The AST is Tessera's own (not ANTLR's parse tree): small node classes with
// LLVM-style RTTI, each carrying the source range it came from. All nodes of
// one file are owned by its ASTContext in a flat list, so destroying even a
// very deep tree never recurses.
//
//===----------------------------------------------------------------------===//

#ifndef TESSERA_LANG_AST_H
#define TESSERA_LANG_AST_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/raw_ostream.h"

#include <memory>
#include <string>
#include <vector>

namespace llvm {
class SourceMgr;
} // namespace llvm

namespace tessera::ast {

using llvm::SMLoc;
using llvm::SMRange;

/// Base of every AST node.
class Node {
public:
  virtual ~Node() = default;
  SMRange range;
  SMLoc loc() const { return range.Start; }
};

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

class Expr : public Node {
public:
  enum class Kind { Int, Float, Percent, Ratio, String, Bool, Name, Tuple, List,
                    Unary, Binary, Call, Member, Index };
  explicit Expr(Kind kind) : kind(kind) {}
  Kind getKind() const { return kind; }
  /// Nesting depth of this expression tree (leaves are 1).
  unsigned depth = 1;

private:
  Kind kind;
};

template <Expr::Kind K> class ExprBase : public Expr {
public:
  ExprBase() : Expr(K) {}
  static bool classof(const Expr *e) { return e->getKind() == K; }
};

class IntLit : public ExprBase<Expr::Kind::Int> {
public:
  int64_t value = 0;
};
class FloatLit : public ExprBase<Expr::Kind::Float> {
public:
  double value = 0;
};
/// `50%`: value holds the fraction (0.5).
class PercentLit : public ExprBase<Expr::Kind::Percent> {
public:
  double value = 0;
};
/// `2:4` (N:M sparsity patterns).
class RatioLit : public ExprBase<Expr::Kind::Ratio> {
public:
  int64_t n = 0, m = 0;
};
class StringLit : public ExprBase<Expr::Kind::String> {
public:
  std::string value;
};
class BoolLit : public ExprBase<Expr::Kind::Bool> {
public:
  bool value = false;
};
class NameExpr : public ExprBase<Expr::Kind::Name> {
public:
  std::string name;
};
class TupleExpr : public ExprBase<Expr::Kind::Tuple> {
public:
  std::vector<Expr *> elements;
};
class ListExpr : public ExprBase<Expr::Kind::List> {
public:
  std::vector<Expr *> elements;
};

enum class UnaryOp { Neg, Plus, Not };
enum class BinaryOp { Add, Sub, Mul, Div, MatMul, Eq, Ne, Lt, Le, Gt, Ge,
                      And, Or };
llvm::StringRef spelling(UnaryOp op);
llvm::StringRef spelling(BinaryOp op);

class UnaryExpr : public ExprBase<Expr::Kind::Unary> {
public:
  UnaryOp op = UnaryOp::Neg;
  Expr *operand = nullptr;
};
class BinaryExpr : public ExprBase<Expr::Kind::Binary> {
public:
  BinaryOp op = BinaryOp::Add;
  SMLoc opLoc;
  Expr *lhs = nullptr, *rhs = nullptr;
};

/// One call argument: positional when `name` is empty.
struct Arg {
  std::string name;
  SMLoc nameLoc;
  Expr *value = nullptr;
};
class CallExpr : public ExprBase<Expr::Kind::Call> {
public:
  Expr *callee = nullptr;
  std::vector<Arg> args;
};
class MemberExpr : public ExprBase<Expr::Kind::Member> {
public:
  Expr *base = nullptr;
  std::string member;
  SMLoc memberLoc;
};
/// `x[i]` or `x[lo:hi:step]`, one per dimension.
struct Subscript {
  bool isSlice = false;
  Expr *index = nullptr;                          // when !isSlice
  Expr *lo = nullptr, *hi = nullptr, *step = nullptr; // when isSlice
  SMLoc loc;
};
class IndexExpr : public ExprBase<Expr::Kind::Index> {
public:
  Expr *base = nullptr;
  std::vector<Subscript> subscripts;
};

//===----------------------------------------------------------------------===//
// Types
//===----------------------------------------------------------------------===//

/// `int`, `float`, `bool`, `str`, or a tensor type `f32[B, T, D]`.
struct TypeExpr {
  std::string name;
  SMRange range;
  bool isTensor = false; // written with brackets
  std::vector<Expr *> dims; // nullptr stands for `...`
};

//===----------------------------------------------------------------------===//
// Statements (function bodies)
//===----------------------------------------------------------------------===//

class Stmt : public Node {
public:
  enum class Kind { Let, Return, If };
  explicit Stmt(Kind kind) : kind(kind) {}
  Kind getKind() const { return kind; }

private:
  Kind kind;
};

class LetStmt : public Stmt {
public:
  LetStmt() : Stmt(Kind::Let) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Let; }
  std::vector<std::string> names; // more than one: tuple destructuring
  std::vector<SMLoc> nameLocs;
  bool isTuple = false;
  Expr *value = nullptr;
};
class ReturnStmt : public Stmt {
public:
  ReturnStmt() : Stmt(Kind::Return) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::Return; }
  Expr *value = nullptr;
};
class IfStmt : public Stmt {
public:
  IfStmt() : Stmt(Kind::If) {}
  static bool classof(const Stmt *s) { return s->getKind() == Kind::If; }
  Expr *cond = nullptr;
  std::vector<Stmt *> thenBody, elseBody;
};

//===----------------------------------------------------------------------===//
// Models
//===----------------------------------------------------------------------===//

struct FnParam {
  std::string name;
  SMLoc nameLoc;
  TypeExpr type;
};

class FnDecl : public Node {
public:
  std::string name;
  SMLoc nameLoc;
  std::vector<FnParam> params;
  bool hasReturnType = false;
  bool returnsTuple = false;
  std::vector<TypeExpr> returnTypes;
  std::vector<Stmt *> body;
};

class ModelItem : public Node {
public:
  enum class Kind { Let, Param, Submodule, If, Fn };
  explicit ModelItem(Kind kind) : kind(kind) {}
  Kind getKind() const { return kind; }
  std::string name; // empty for If
  SMLoc nameLoc;

private:
  Kind kind;
};

template <ModelItem::Kind K> class ModelItemBase : public ModelItem {
public:
  ModelItemBase() : ModelItem(K) {}
  static bool classof(const ModelItem *i) { return i->getKind() == K; }
};

/// `let name = expr` at model level: a named value (a constant, or a tensor
/// expression over the model's parameters).
class ModelLet : public ModelItemBase<ModelItem::Kind::Let> {
public:
  Expr *value = nullptr;
};
/// `param name: f32[out, in] = normal(0.02)`: a trainable tensor.
class ModelParamItem : public ModelItemBase<ModelItem::Kind::Param> {
public:
  TypeExpr type;
  Expr *init = nullptr; // may be null: defaults per shape
};
/// `name = Linear(a, b)` or `name = repeat(n) Block(...)`.
class SubmoduleItem : public ModelItemBase<ModelItem::Kind::Submodule> {
public:
  Expr *repeatCount = nullptr; // null unless `repeat(n)`
  SMLoc repeatLoc;
  Expr *ctor = nullptr;
};
class ModelIf : public ModelItemBase<ModelItem::Kind::If> {
public:
  Expr *cond = nullptr;
  std::vector<ModelItem *> thenItems, elseItems;
};
class ModelFn : public ModelItemBase<ModelItem::Kind::Fn> {
public:
  FnDecl *fn = nullptr;
};

struct ModelParamDecl {
  std::string name;
  SMLoc nameLoc;
  TypeExpr type;
  Expr *defaultValue = nullptr;
};

//===----------------------------------------------------------------------===//
// Top-level declarations
//===----------------------------------------------------------------------===//

class Decl : public Node {
public:
  enum class Kind { Model, Data, Train, Compress, Const };
  explicit Decl(Kind kind) : kind(kind) {}
  Kind getKind() const { return kind; }
  std::string name;
  SMLoc nameLoc;
  llvm::StringRef kindName() const;

private:
  Kind kind;
};

template <Decl::Kind K> class DeclBase : public Decl {
public:
  DeclBase() : Decl(K) {}
  static bool classof(const Decl *d) { return d->getKind() == K; }
};

class ModelDecl : public DeclBase<Decl::Kind::Model> {
public:
  std::vector<ModelParamDecl> params;
  std::vector<ModelItem *> items;
};

class DataDecl : public DeclBase<Decl::Kind::Data> {
public:
  Expr *source = nullptr; // tokens(...), idx(...), csv(...)
};

/// `key = value` inside train/compress blocks.
struct Setting {
  std::string key;
  SMLoc keyLoc;
  Expr *value = nullptr;
};

class TrainDecl : public DeclBase<Decl::Kind::Train> {
public:
  std::vector<Setting> settings;
};

/// A parameter-path pattern such as `blocks.*.mlp.**.weight`.
struct Glob {
  enum class SegKind { Name, Star, DoubleStar };
  struct Segment {
    SegKind kind;
    std::string text;
  };
  std::vector<Segment> segments;
  SMRange range;
  std::string str() const;
};

class CompressRule : public Node {
public:
  enum class Kind { Setting, Prune, Quantize, Distill, Report };
  explicit CompressRule(Kind kind) : kind(kind) {}
  Kind getKind() const { return kind; }

private:
  Kind kind;
};

template <CompressRule::Kind K> class CompressRuleBase : public CompressRule {
public:
  CompressRuleBase() : CompressRule(K) {}
  static bool classof(const CompressRule *r) { return r->getKind() == K; }
};

class CompressSetting : public CompressRuleBase<CompressRule::Kind::Setting> {
public:
  Setting setting;
};
class PruneRule : public CompressRuleBase<CompressRule::Kind::Prune> {
public:
  Glob glob;
  Expr *method = nullptr;
};
class QuantizeRule : public CompressRuleBase<CompressRule::Kind::Quantize> {
public:
  Glob glob;
  Expr *scheme = nullptr;
  Expr *calibration = nullptr; // optional
};
class DistillRule : public CompressRuleBase<CompressRule::Kind::Distill> {
public:
  std::vector<Setting> args;
};
class ReportRule : public CompressRuleBase<CompressRule::Kind::Report> {
public:
  std::vector<Expr *> metrics;
};

class CompressDecl : public DeclBase<Decl::Kind::Compress> {
public:
  std::vector<CompressRule *> rules;
};

/// Top-level `let name = expr`.
class ConstDecl : public DeclBase<Decl::Kind::Const> {
public:
  Expr *value = nullptr;
};

struct Import {
  std::string name; // dotted: `nn`, `models.gpt`
  SMRange range;
};

/// Owns every node of one parsed file.
class ASTContext {
public:
  template <typename T> T *create(SMRange range = {}) {
    auto node = std::make_unique<T>();
    node->range = range;
    T *raw = node.get();
    nodes.push_back(std::move(node));
    return raw;
  }

private:
  std::vector<std::unique_ptr<Node>> nodes;
};

/// One parsed .tsr file.
struct File {
  std::string path;
  unsigned bufferID = 0;
  ASTContext context;
  std::vector<Import> imports;
  std::vector<Decl *> decls;
};

/// Shortest readable form of a number: 0.02, 1e-05, 2500.
std::string formatNumber(double value);

/// Prints a readable, indented dump of the AST (`tessera dump-ast`).
void dump(const File &file, const llvm::SourceMgr &sm, llvm::raw_ostream &os);
void dump(const Expr *expr, llvm::raw_ostream &os);

} // namespace tessera::ast

#endif // TESSERA_LANG_AST_H
