//===- AST.cpp - AST helpers and the `dump-ast` printer -------------------===//

#include "lang/AST.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdlib>

using namespace llvm;

namespace tessera::ast {

StringRef spelling(UnaryOp op) {
  switch (op) {
  case UnaryOp::Neg: return "-";
  case UnaryOp::Plus: return "+";
  case UnaryOp::Not: return "not";
  }
  return "?";
}

StringRef spelling(BinaryOp op) {
  switch (op) {
  case BinaryOp::Add: return "+";
  case BinaryOp::Sub: return "-";
  case BinaryOp::Mul: return "*";
  case BinaryOp::Div: return "/";
  case BinaryOp::MatMul: return "@";
  case BinaryOp::Eq: return "==";
  case BinaryOp::Ne: return "!=";
  case BinaryOp::Lt: return "<";
  case BinaryOp::Le: return "<=";
  case BinaryOp::Gt: return ">";
  case BinaryOp::Ge: return ">=";
  case BinaryOp::And: return "and";
  case BinaryOp::Or: return "or";
  }
  return "?";
}

StringRef Decl::kindName() const {
  switch (kind) {
  case Kind::Model: return "model";
  case Kind::Data: return "data";
  case Kind::Train: return "train";
  case Kind::Compress: return "compress";
  case Kind::Const: return "constant";
  }
  return "?";
}

std::string formatNumber(double value) {
  // The shortest %g form that reads back as the same double.
  char buf[40];
  for (int precision = 6; precision <= 17; ++precision) {
    snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value)
      break;
  }
  return buf;
}

namespace {

/// Expressions print on one line in source-like form with explicit
/// parentheses, so the tree structure (precedence) is visible.
void printExpr(const Expr *e, raw_ostream &os) {
  switch (e->getKind()) {
  case Expr::Kind::Int: os << cast<IntLit>(e)->value; break;
  case Expr::Kind::Float: {
    std::string s = formatNumber(cast<FloatLit>(e)->value);
    // Keep floats visibly floats: 2.0, not 2.
    if (s.find_first_of(".eEn") == std::string::npos)
      s += ".0";
    os << s;
    break;
  }
  case Expr::Kind::Percent:
    os << formatNumber(cast<PercentLit>(e)->value * 100) << "%";
    break;
  case Expr::Kind::Ratio:
    os << cast<RatioLit>(e)->n << ":" << cast<RatioLit>(e)->m;
    break;
  case Expr::Kind::String: {
    os << '"';
    printEscapedString(cast<StringLit>(e)->value, os);
    os << '"';
    break;
  }
  case Expr::Kind::Bool: os << (cast<BoolLit>(e)->value ? "true" : "false"); break;
  case Expr::Kind::Name: os << cast<NameExpr>(e)->name; break;
  case Expr::Kind::Tuple:
  case Expr::Kind::List: {
    bool tuple = isa<TupleExpr>(e);
    const auto &els = tuple ? cast<TupleExpr>(e)->elements
                            : cast<ListExpr>(e)->elements;
    os << (tuple ? "(" : "[");
    interleave(els, os, [&](const Expr *x) { printExpr(x, os); }, ", ");
    if (tuple && els.size() == 1)
      os << ",";
    os << (tuple ? ")" : "]");
    break;
  }
  case Expr::Kind::Unary: {
    auto *u = cast<UnaryExpr>(e);
    os << "(" << spelling(u->op) << (u->op == UnaryOp::Not ? " " : "");
    printExpr(u->operand, os);
    os << ")";
    break;
  }
  case Expr::Kind::Binary: {
    auto *b = cast<BinaryExpr>(e);
    os << "(";
    printExpr(b->lhs, os);
    os << " " << spelling(b->op) << " ";
    printExpr(b->rhs, os);
    os << ")";
    break;
  }
  case Expr::Kind::Call: {
    auto *c = cast<CallExpr>(e);
    printExpr(c->callee, os);
    os << "(";
    interleave(
        c->args, os,
        [&](const Arg &a) {
          if (!a.name.empty())
            os << a.name << "=";
          printExpr(a.value, os);
        },
        ", ");
    os << ")";
    break;
  }
  case Expr::Kind::Member: {
    auto *m = cast<MemberExpr>(e);
    printExpr(m->base, os);
    os << "." << m->member;
    break;
  }
  case Expr::Kind::Index: {
    auto *ix = cast<IndexExpr>(e);
    printExpr(ix->base, os);
    os << "[";
    interleave(
        ix->subscripts, os,
        [&](const Subscript &s) {
          if (!s.isSlice) {
            printExpr(s.index, os);
            return;
          }
          if (s.lo)
            printExpr(s.lo, os);
          os << ":";
          if (s.hi)
            printExpr(s.hi, os);
          if (s.step) {
            os << ":";
            printExpr(s.step, os);
          }
        },
        ", ");
    os << "]";
    break;
  }
  }
}

class Dumper {
public:
  Dumper(const SourceMgr &sm, raw_ostream &os) : sm(sm), os(os) {}

  void file(const File &f) {
    os << "File " << f.path << "\n";
    for (const Import &i : f.imports)
      line(1, i.range.Start) << "Import " << i.name << "\n";
    for (const Decl *d : f.decls)
      decl(d);
  }

private:
  raw_ostream &line(unsigned depth, SMLoc loc) {
    os.indent(depth * 2);
    auto lc = sm.getLineAndColumn(loc);
    os << "<" << lc.first << ":" << lc.second << "> ";
    return os;
  }
  void type(const TypeExpr &t) {
    os << t.name;
    if (!t.isTensor)
      return;
    os << "[";
    interleave(
        t.dims, os,
        [&](const Expr *d) {
          if (d)
            printExpr(d, os);
          else
            os << "...";
        },
        ", ");
    os << "]";
  }
  void decl(const Decl *d) {
    if (auto *m = dyn_cast<ModelDecl>(d)) {
      line(1, d->loc()) << "Model " << m->name << "(";
      interleave(
          m->params, os,
          [&](const ModelParamDecl &p) {
            os << p.name << ": ";
            type(p.type);
            if (p.defaultValue) {
              os << " = ";
              printExpr(p.defaultValue, os);
            }
          },
          ", ");
      os << ")\n";
      for (const ModelItem *i : m->items)
        item(i, 2);
    } else if (auto *dd = dyn_cast<DataDecl>(d)) {
      line(1, d->loc()) << "Data " << dd->name << " = ";
      printExpr(dd->source, os);
      os << "\n";
    } else if (auto *c = dyn_cast<ConstDecl>(d)) {
      line(1, d->loc()) << "Let " << c->name << " = ";
      printExpr(c->value, os);
      os << "\n";
    } else if (auto *t = dyn_cast<TrainDecl>(d)) {
      line(1, d->loc()) << "Train " << t->name << "\n";
      for (const Setting &s : t->settings)
        setting(s, 2);
    } else if (auto *c = dyn_cast<CompressDecl>(d)) {
      line(1, d->loc()) << "Compress " << c->name << "\n";
      for (const CompressRule *r : c->rules)
        rule(r);
    }
  }
  void setting(const Setting &s, unsigned depth) {
    line(depth, s.keyLoc) << "Setting " << s.key << " = ";
    printExpr(s.value, os);
    os << "\n";
  }
  void rule(const CompressRule *r) {
    if (auto *s = dyn_cast<CompressSetting>(r)) {
      setting(s->setting, 2);
    } else if (auto *p = dyn_cast<PruneRule>(r)) {
      line(2, r->loc()) << "Prune " << p->glob.str() << " ";
      printExpr(p->method, os);
      os << "\n";
    } else if (auto *q = dyn_cast<QuantizeRule>(r)) {
      line(2, r->loc()) << "Quantize " << q->glob.str() << " ";
      printExpr(q->scheme, os);
      if (q->calibration) {
        os << " ";
        printExpr(q->calibration, os);
      }
      os << "\n";
    } else if (auto *d = dyn_cast<DistillRule>(r)) {
      line(2, r->loc()) << "Distill(";
      interleave(
          d->args, os,
          [&](const Setting &s) {
            os << s.key << "=";
            printExpr(s.value, os);
          },
          ", ");
      os << ")\n";
    } else if (auto *rep = dyn_cast<ReportRule>(r)) {
      line(2, r->loc()) << "Report ";
      interleave(rep->metrics, os, [&](const Expr *e) { printExpr(e, os); },
                 ", ");
      os << "\n";
    }
  }
  void item(const ModelItem *i, unsigned depth) {
    if (auto *l = dyn_cast<ModelLet>(i)) {
      line(depth, i->loc()) << "Let " << l->name << " = ";
      printExpr(l->value, os);
      os << "\n";
    } else if (auto *p = dyn_cast<ModelParamItem>(i)) {
      line(depth, i->loc()) << "Param " << p->name << ": ";
      type(p->type);
      if (p->init) {
        os << " = ";
        printExpr(p->init, os);
      }
      os << "\n";
    } else if (auto *s = dyn_cast<SubmoduleItem>(i)) {
      line(depth, i->loc()) << "Submodule " << s->name << " = ";
      if (s->repeatCount) {
        os << "repeat(";
        printExpr(s->repeatCount, os);
        os << ") ";
      }
      printExpr(s->ctor, os);
      os << "\n";
    } else if (auto *mi = dyn_cast<ModelIf>(i)) {
      line(depth, i->loc()) << "If ";
      printExpr(mi->cond, os);
      os << "\n";
      for (const ModelItem *x : mi->thenItems)
        item(x, depth + 1);
      if (!mi->elseItems.empty()) {
        os.indent(depth * 2) << "Else\n";
        for (const ModelItem *x : mi->elseItems)
          item(x, depth + 1);
      }
    } else if (auto *f = dyn_cast<ModelFn>(i)) {
      const FnDecl *fn = f->fn;
      line(depth, fn->loc()) << "Fn " << fn->name << "(";
      interleave(
          fn->params, os,
          [&](const FnParam &p) {
            os << p.name << ": ";
            type(p.type);
          },
          ", ");
      os << ")";
      if (fn->hasReturnType) {
        os << " -> ";
        if (fn->returnsTuple)
          os << "(";
        interleave(fn->returnTypes, os, [&](const TypeExpr &t) { type(t); },
                   ", ");
        if (fn->returnsTuple)
          os << ")";
      }
      os << "\n";
      stmts(fn->body, depth + 1);
    }
  }
  void stmts(ArrayRef<Stmt *> body, unsigned depth) {
    for (const Stmt *s : body) {
      if (auto *l = dyn_cast<LetStmt>(s)) {
        line(depth, s->loc()) << "Let ";
        if (l->isTuple)
          os << "(" << join(l->names, ", ") << ")";
        else
          os << l->names[0];
        os << " = ";
        printExpr(l->value, os);
        os << "\n";
      } else if (auto *r = dyn_cast<ReturnStmt>(s)) {
        line(depth, s->loc()) << "Return ";
        printExpr(r->value, os);
        os << "\n";
      } else if (auto *i = dyn_cast<IfStmt>(s)) {
        line(depth, s->loc()) << "If ";
        printExpr(i->cond, os);
        os << "\n";
        stmts(i->thenBody, depth + 1);
        if (!i->elseBody.empty()) {
          os.indent(depth * 2) << "Else\n";
          stmts(i->elseBody, depth + 1);
        }
      }
    }
  }

  const SourceMgr &sm;
  raw_ostream &os;
};

} // namespace

void dump(const Expr *expr, raw_ostream &os) { printExpr(expr, os); }

void dump(const File &file, const SourceMgr &sm, raw_ostream &os) {
  Dumper(sm, os).file(file);
}

} // namespace tessera::ast
