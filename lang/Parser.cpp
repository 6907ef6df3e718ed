//===- Parser.cpp - .tsr text to AST through ANTLR4 -----------------------===//
//
// Pipeline: validate UTF-8 -> lex everything -> report error tokens and
// over-deep bracket nesting -> parse (fast SLL first, full LL on failure) ->
// build the AST. This file is compiled with exceptions enabled because the
// ANTLR runtime uses them; no exception escapes it.
//
//===----------------------------------------------------------------------===//

#include "lang/Parser.h"

#include "TesseraLexer.h"
#include "TesseraParser.h"
#include "antlr4-runtime.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ConvertUTF.h"
#include "llvm/Support/FormatVariadic.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

using namespace llvm;
using namespace tessera::ast;
using TP = tessera_antlr::TesseraParser;
using tessera_antlr::TesseraLexer;

namespace tessera {
namespace {

/// Maps ANTLR code-point indices back to byte pointers in the buffer.
class SourceMap {
public:
  SourceMap(StringRef text) : text(text) {
    offsets.reserve(text.size() + 1);
    for (size_t i = 0; i < text.size(); ++i)
      if ((uint8_t(text[i]) & 0xC0) != 0x80)
        offsets.push_back(uint32_t(i));
    offsets.push_back(uint32_t(text.size()));
  }
  SMLoc at(size_t codePoint) const {
    if (codePoint >= offsets.size())
      codePoint = offsets.size() - 1;
    return SMLoc::getFromPointer(text.data() + offsets[codePoint]);
  }
  SMLoc start(antlr4::Token *tok) const {
    // EOF tokens have start > stop; point at the end of the buffer.
    if (tok->getType() == antlr4::Token::EOF)
      return SMLoc::getFromPointer(text.data() + text.size());
    return at(tok->getStartIndex());
  }
  SMLoc end(antlr4::Token *tok) const {
    if (tok->getType() == antlr4::Token::EOF)
      return SMLoc::getFromPointer(text.data() + text.size());
    return at(tok->getStopIndex() + 1);
  }
  SMRange range(antlr4::ParserRuleContext *ctx) const {
    antlr4::Token *stop = ctx->getStop() ? ctx->getStop() : ctx->getStart();
    return SMRange(start(ctx->getStart()), end(stop));
  }

private:
  StringRef text;
  std::vector<uint32_t> offsets;
};

std::string describeToken(antlr4::Token *tok) {
  if (!tok || tok->getType() == antlr4::Token::EOF)
    return "end of file";
  std::string text = tok->getText();
  if (text.size() > 40)
    text = text.substr(0, 37) + "...";
  return "'" + text + "'";
}

/// Turns ANTLR syntax errors into located diagnostics and stops the parse
/// after too many.
class ErrorListener : public antlr4::BaseErrorListener {
public:
  ErrorListener(DiagnosticEngine &diags, const SourceMap &map, unsigned limit)
      : diags(diags), map(map), limit(limit) {}

  void syntaxError(antlr4::Recognizer *recognizer,
                   antlr4::Token *offendingSymbol, size_t, size_t,
                   const std::string &msg, std::exception_ptr) override {
    ++count;
    SMLoc loc = offendingSymbol ? map.start(offendingSymbol) : SMLoc();
    std::string text = "unexpected " + describeToken(offendingSymbol);
    // Name what was expected when the set is small enough to be useful.
    if (auto *parser = dynamic_cast<antlr4::Parser *>(recognizer)) {
      antlr4::misc::IntervalSet expected;
      try {
        expected = parser->getExpectedTokens();
      } catch (...) {
      }
      std::vector<std::string> names;
      for (ssize_t t : expected.toList()) {
        std::string name = parser->getVocabulary().getDisplayName(t);
        if (t == ssize_t(antlr4::Token::EOF))
          name = "end of file";
        else if (name == "ID")
          name = "identifier";
        else if (name == "INT" || name == "FLOAT" || name == "PERCENT" ||
                 name == "STRING")
          name = StringRef(name).lower() == "int" ? "integer" : StringRef(name).lower();
        names.push_back(name);
      }
      if (!names.empty() && names.size() <= 6)
        text += "; expected " + join(names, ", ");
    }
    diags.error(loc, text);
    if (count >= limit)
      throw antlr4::ParseCancellationException("too many syntax errors");
  }

  unsigned count = 0;

private:
  DiagnosticEngine &diags;
  const SourceMap &map;
  unsigned limit;
};

/// Walks ANTLR's parse tree and builds the AST.
class Builder {
public:
  Builder(File &file, DiagnosticEngine &diags, const SourceMap &map,
          const ParserLimits &limits)
      : file(file), ctx(file.context), diags(diags), map(map),
        limits(limits) {}

  bool build(TP::FileContext *root);

private:
  template <typename T> T *make(antlr4::ParserRuleContext *c) {
    return ctx.create<T>(map.range(c));
  }
  std::string name(TP::IdentContext *id) { return id->getText(); }
  SMLoc loc(antlr4::ParserRuleContext *c) { return map.start(c->getStart()); }
  SMLoc loc(antlr4::tree::TerminalNode *t) { return map.start(t->getSymbol()); }
  Expr *fail(SMLoc where, const Twine &msg) {
    diags.error(where, msg);
    failed = true;
    return nullptr;
  }
  /// Sets the depth of a freshly built node from its children and rejects
  /// trees that downstream recursive passes could not walk safely.
  Expr *finish(Expr *e, std::initializer_list<Expr *> children) {
    unsigned d = 0;
    for (Expr *c : children)
      if (c)
        d = std::max(d, c->depth);
    return finishDepth(e, d);
  }
  Expr *finishDepth(Expr *e, unsigned childDepth) {
    e->depth = childDepth + 1;
    if (e->depth > limits.maxExprDepth) {
      if (!depthReported)
        fail(e->loc(), formatv("expression is nested too deeply (more than {0} "
                               "levels); split it with 'let'",
                               limits.maxExprDepth));
      depthReported = true;
      failed = true;
      return nullptr;
    }
    return e;
  }

  Decl *buildTopDecl(TP::TopDeclContext *c);
  ModelDecl *buildModel(TP::ModelDeclContext *c);
  ModelItem *buildModelItem(TP::ModelItemContext *c);
  FnDecl *buildFn(TP::FnDeclContext *c);
  bool buildType(TP::TypeExprContext *c, TypeExpr &out);
  Stmt *buildStmt(TP::StmtContext *c);
  IfStmt *buildIf(TP::IfStmtContext *c);
  bool buildSetting(TP::SettingContext *c, Setting &out);
  CompressRule *buildCompressItem(TP::CompressItemContext *c);
  bool buildGlob(TP::GlobContext *c, Glob &out);

  Expr *buildValue(TP::ValueContext *c);
  Expr *buildExpr(TP::ExprContext *c);
  Expr *buildAnd(TP::AndExprContext *c);
  Expr *buildNot(TP::NotExprContext *c);
  Expr *buildCmp(TP::CmpExprContext *c);
  Expr *buildAdd(TP::AddExprContext *c);
  Expr *buildMul(TP::MulExprContext *c);
  Expr *buildUnary(TP::UnaryExprContext *c);
  Expr *buildPostfix(TP::PostfixExprContext *c);
  Expr *buildPrimary(TP::PrimaryContext *c);
  Expr *makeBinary(BinaryOp op, SMLoc opLoc, Expr *lhs, Expr *rhs);
  CallExpr *buildArgs(TP::CallArgsContext *c, CallExpr *e);
  bool parseInt(antlr4::tree::TerminalNode *t, int64_t &out);

  File &file;
  ASTContext &ctx;
  DiagnosticEngine &diags;
  const SourceMap &map;
  const ParserLimits &limits;
  bool failed = false;
  bool depthReported = false;
};

bool Builder::build(TP::FileContext *root) {
  for (TP::ImportDeclContext *imp : root->importDecl()) {
    Import import;
    import.name = imp->dottedName()->getText();
    import.range = map.range(imp->dottedName());
    file.imports.push_back(std::move(import));
  }
  for (TP::TopDeclContext *td : root->topDecl()) {
    if (Decl *d = buildTopDecl(td))
      file.decls.push_back(d);
    if (diags.shouldStop())
      return false;
  }
  return !failed;
}

Decl *Builder::buildTopDecl(TP::TopDeclContext *c) {
  if (auto *m = c->modelDecl())
    return buildModel(m);
  if (auto *d = c->dataDecl()) {
    auto *decl = make<DataDecl>(d);
    decl->name = name(d->ident());
    decl->nameLoc = loc(d->ident());
    decl->source = buildExpr(d->expr());
    return decl->source ? decl : nullptr;
  }
  if (auto *k = c->constDecl()) {
    auto *decl = make<ConstDecl>(k);
    decl->name = name(k->ident());
    decl->nameLoc = loc(k->ident());
    decl->value = buildExpr(k->expr());
    return decl->value ? decl : nullptr;
  }
  if (auto *t = c->trainDecl()) {
    auto *decl = make<TrainDecl>(t);
    decl->name = name(t->ident());
    decl->nameLoc = loc(t->ident());
    for (auto *s : t->setting()) {
      Setting setting;
      if (buildSetting(s, setting))
        decl->settings.push_back(setting);
    }
    return decl;
  }
  if (auto *k = c->compressDecl()) {
    auto *decl = make<CompressDecl>(k);
    decl->name = name(k->ident());
    decl->nameLoc = loc(k->ident());
    for (auto *item : k->compressItem())
      if (CompressRule *r = buildCompressItem(item))
        decl->rules.push_back(r);
    return decl;
  }
  return nullptr;
}

ModelDecl *Builder::buildModel(TP::ModelDeclContext *c) {
  auto *m = make<ModelDecl>(c);
  m->name = name(c->ident());
  m->nameLoc = loc(c->ident());
  for (auto *p : c->modelParam()) {
    ModelParamDecl param;
    param.name = name(p->ident());
    param.nameLoc = loc(p->ident());
    buildType(p->typeExpr(), param.type);
    if (p->expr())
      param.defaultValue = buildExpr(p->expr());
    m->params.push_back(std::move(param));
  }
  for (auto *item : c->modelItem())
    if (ModelItem *i = buildModelItem(item))
      m->items.push_back(i);
  return m;
}

ModelItem *Builder::buildModelItem(TP::ModelItemContext *c) {
  if (auto *l = dynamic_cast<TP::ModelLetContext *>(c)) {
    auto *item = make<ModelLet>(c);
    item->name = name(l->ident());
    item->nameLoc = loc(l->ident());
    item->value = buildExpr(l->expr());
    return item->value ? item : nullptr;
  }
  if (auto *p = dynamic_cast<TP::ModelParamDeclContext *>(c)) {
    auto *item = make<ModelParamItem>(c);
    item->name = name(p->ident());
    item->nameLoc = loc(p->ident());
    buildType(p->typeExpr(), item->type);
    if (p->expr())
      item->init = buildExpr(p->expr());
    return item;
  }
  if (auto *s = dynamic_cast<TP::ModelSubmoduleContext *>(c)) {
    auto *item = make<SubmoduleItem>(c);
    item->name = name(s->ident());
    item->nameLoc = loc(s->ident());
    auto exprs = s->expr();
    if (exprs.size() == 2) {
      item->repeatCount = buildExpr(exprs[0]);
      item->repeatLoc = loc(exprs[0]);
      item->ctor = buildExpr(exprs[1]);
    } else {
      item->ctor = buildExpr(exprs[0]);
    }
    return item->ctor ? item : nullptr;
  }
  if (auto *i = dynamic_cast<TP::ModelIfContext *>(c)) {
    auto *item = make<ModelIf>(c);
    item->cond = buildExpr(i->expr());
    for (auto *sub : i->thenItems->modelItem())
      if (ModelItem *x = buildModelItem(sub))
        item->thenItems.push_back(x);
    if (i->elseItems)
      for (auto *sub : i->elseItems->modelItem())
        if (ModelItem *x = buildModelItem(sub))
          item->elseItems.push_back(x);
    if (i->elseIf) {
      if (!dynamic_cast<TP::ModelIfContext *>(i->elseIf)) {
        fail(loc(i->elseIf), "expected '{' or 'if' after 'else'");
        return nullptr;
      }
      if (ModelItem *x = buildModelItem(i->elseIf))
        item->elseItems.push_back(x);
    }
    return item->cond ? item : nullptr;
  }
  if (auto *f = dynamic_cast<TP::ModelFnContext *>(c)) {
    auto *item = make<ModelFn>(c);
    item->fn = buildFn(f->fnDecl());
    item->name = item->fn->name;
    item->nameLoc = item->fn->nameLoc;
    return item;
  }
  return nullptr;
}

FnDecl *Builder::buildFn(TP::FnDeclContext *c) {
  auto *fn = ctx.create<FnDecl>(map.range(c));
  fn->name = name(c->ident());
  fn->nameLoc = loc(c->ident());
  for (auto *p : c->fnParam()) {
    FnParam param;
    param.name = name(p->ident());
    param.nameLoc = loc(p->ident());
    buildType(p->typeExpr(), param.type);
    fn->params.push_back(std::move(param));
  }
  if (auto *rt = c->returnType()) {
    fn->hasReturnType = true;
    fn->returnsTuple = rt->typeExpr().size() > 1 || rt->getStart()->getText() == "(";
    for (auto *t : rt->typeExpr()) {
      TypeExpr type;
      buildType(t, type);
      fn->returnTypes.push_back(std::move(type));
    }
  }
  for (auto *s : c->block()->stmt())
    if (Stmt *st = buildStmt(s))
      fn->body.push_back(st);
  return fn;
}

bool Builder::buildType(TP::TypeExprContext *c, TypeExpr &out) {
  out.name = name(c->ident());
  out.range = map.range(c);
  out.isTensor = c->children.size() > 1;
  for (auto *d : c->typeDim()) {
    if (!d->expr()) {
      out.dims.push_back(nullptr); // `...`
      continue;
    }
    Expr *e = buildExpr(d->expr());
    if (!e)
      return false;
    out.dims.push_back(e);
  }
  return true;
}

Stmt *Builder::buildStmt(TP::StmtContext *c) {
  if (auto *l = dynamic_cast<TP::LetStmtContext *>(c)) {
    auto *s = ctx.create<LetStmt>(map.range(c));
    auto *target = l->letTarget();
    s->isTuple = target->getStart()->getText() == "(";
    for (auto *id : target->ident()) {
      s->names.push_back(name(id));
      s->nameLocs.push_back(loc(id));
    }
    s->value = buildExpr(l->expr());
    return s->value ? s : nullptr;
  }
  if (auto *r = dynamic_cast<TP::ReturnStmtContext *>(c)) {
    auto *s = ctx.create<ReturnStmt>(map.range(c));
    s->value = buildExpr(r->expr());
    return s->value ? s : nullptr;
  }
  if (auto *i = dynamic_cast<TP::IfStmtAltContext *>(c))
    return buildIf(i->ifStmt());
  return nullptr;
}

IfStmt *Builder::buildIf(TP::IfStmtContext *c) {
  auto *s = ctx.create<IfStmt>(map.range(c));
  s->cond = buildExpr(c->expr());
  auto blocks = c->block();
  for (auto *st : blocks[0]->stmt())
    if (Stmt *x = buildStmt(st))
      s->thenBody.push_back(x);
  if (blocks.size() > 1) {
    for (auto *st : blocks[1]->stmt())
      if (Stmt *x = buildStmt(st))
        s->elseBody.push_back(x);
  } else if (c->ifStmt()) {
    if (IfStmt *nested = buildIf(c->ifStmt()))
      s->elseBody.push_back(nested);
  }
  return s->cond ? s : nullptr;
}

bool Builder::buildSetting(TP::SettingContext *c, Setting &out) {
  out.key = name(c->ident());
  out.keyLoc = loc(c->ident());
  out.value = buildValue(c->value());
  return out.value != nullptr;
}

bool Builder::buildGlob(TP::GlobContext *c, Glob &out) {
  out.range = map.range(c);
  for (auto *part : c->globPart()) {
    std::string text = part->getText();
    if (text == "*")
      out.segments.push_back({Glob::SegKind::Star, text});
    else if (text == "**")
      out.segments.push_back({Glob::SegKind::DoubleStar, text});
    else
      out.segments.push_back({Glob::SegKind::Name, text});
  }
  return true;
}

CompressRule *Builder::buildCompressItem(TP::CompressItemContext *c) {
  if (auto *s = dynamic_cast<TP::CompressSettingContext *>(c)) {
    auto *r = ctx.create<CompressSetting>(map.range(c));
    return buildSetting(s->setting(), r->setting) ? r : nullptr;
  }
  if (auto *p = dynamic_cast<TP::PruneRuleContext *>(c)) {
    auto *r = ctx.create<PruneRule>(map.range(c));
    buildGlob(p->glob(), r->glob);
    r->method = buildPostfix(p->postfixExpr());
    return r->method ? r : nullptr;
  }
  if (auto *q = dynamic_cast<TP::QuantizeRuleContext *>(c)) {
    auto *r = ctx.create<QuantizeRule>(map.range(c));
    buildGlob(q->glob(), r->glob);
    r->scheme = buildPostfix(q->postfixExpr());
    if (auto *cal = q->calibration()) {
      auto *callee = make<NameExpr>(cal);
      callee->name = "calibrate";
      auto *call = make<CallExpr>(cal);
      call->callee = callee;
      if (!buildArgs(cal->callArgs(), call))
        return nullptr;
      r->calibration = call;
    }
    return r->scheme ? r : nullptr;
  }
  if (auto *d = dynamic_cast<TP::DistillRuleContext *>(c)) {
    auto *r = ctx.create<DistillRule>(map.range(c));
    for (auto *a : d->callArgs()->arg()) {
      if (!a->ident()) {
        fail(loc(a), "distill() takes named arguments such as "
                     "teacher=pretrain");
        return nullptr;
      }
      Setting s;
      s.key = name(a->ident());
      s.keyLoc = loc(a->ident());
      s.value = buildValue(a->value());
      if (s.value)
        r->args.push_back(s);
    }
    return r;
  }
  if (auto *rep = dynamic_cast<TP::ReportRuleContext *>(c)) {
    auto *r = ctx.create<ReportRule>(map.range(c));
    for (auto *e : rep->expr())
      if (Expr *x = buildExpr(e))
        r->metrics.push_back(x);
    return r;
  }
  return nullptr;
}

bool Builder::parseInt(antlr4::tree::TerminalNode *t, int64_t &out) {
  std::string digits;
  for (char ch : t->getText())
    if (ch != '_')
      digits += ch;
  if (StringRef(digits).getAsInteger(10, out)) {
    fail(loc(t), "integer literal '" + t->getText() +
                     "' does not fit in 64 bits");
    return false;
  }
  return true;
}

Expr *Builder::buildValue(TP::ValueContext *c) {
  if (auto *r = c->ratio()) {
    auto *e = make<RatioLit>(r);
    if (!parseInt(r->INT(0), e->n) || !parseInt(r->INT(1), e->m))
      return nullptr;
    return e;
  }
  return buildExpr(c->expr());
}

CallExpr *Builder::buildArgs(TP::CallArgsContext *c, CallExpr *e) {
  unsigned depth = e->callee->depth;
  for (auto *a : c->arg()) {
    Arg arg;
    if (a->ident()) {
      arg.name = name(a->ident());
      arg.nameLoc = loc(a->ident());
    }
    arg.value = buildValue(a->value());
    if (!arg.value)
      return nullptr;
    depth = std::max(depth, arg.value->depth);
    e->args.push_back(std::move(arg));
  }
  return finishDepth(e, depth) ? e : nullptr;
}

Expr *Builder::makeBinary(BinaryOp op, SMLoc opLoc, Expr *lhs, Expr *rhs) {
  if (!lhs || !rhs)
    return nullptr;
  auto *e = ctx.create<BinaryExpr>(SMRange(lhs->range.Start, rhs->range.End));
  e->op = op;
  e->opLoc = opLoc;
  e->lhs = lhs;
  e->rhs = rhs;
  return finish(e, {lhs, rhs});
}

Expr *Builder::buildExpr(TP::ExprContext *c) {
  auto parts = c->andExpr();
  Expr *result = buildAnd(parts[0]);
  for (size_t i = 1; i < parts.size() && result; ++i)
    result = makeBinary(BinaryOp::Or, loc(parts[i]), result,
                        buildAnd(parts[i]));
  return result;
}

Expr *Builder::buildAnd(TP::AndExprContext *c) {
  auto parts = c->notExpr();
  Expr *result = buildNot(parts[0]);
  for (size_t i = 1; i < parts.size() && result; ++i)
    result = makeBinary(BinaryOp::And, loc(parts[i]), result,
                        buildNot(parts[i]));
  return result;
}

Expr *Builder::buildNot(TP::NotExprContext *c) {
  Expr *operand = buildCmp(c->cmpExpr());
  // Each `not` wraps once, innermost last.
  size_t nots = c->children.size() - 1;
  for (size_t i = nots; i-- > 0 && operand;) {
    auto *tok = static_cast<antlr4::tree::TerminalNode *>(c->children[i]);
    auto *e = ctx.create<UnaryExpr>(SMRange(loc(tok), operand->range.End));
    e->op = UnaryOp::Not;
    e->operand = operand;
    operand = finish(e, {operand});
  }
  return operand;
}

Expr *Builder::buildCmp(TP::CmpExprContext *c) {
  auto parts = c->addExpr();
  Expr *lhs = buildAdd(parts[0]);
  if (parts.size() == 1 || !lhs)
    return lhs;
  std::string op = c->cmpOp()->getText();
  BinaryOp bop = op == "==" ? BinaryOp::Eq
                 : op == "!=" ? BinaryOp::Ne
                 : op == "<"  ? BinaryOp::Lt
                 : op == "<=" ? BinaryOp::Le
                 : op == ">"  ? BinaryOp::Gt
                              : BinaryOp::Ge;
  return makeBinary(bop, loc(c->cmpOp()), lhs, buildAdd(parts[1]));
}

Expr *Builder::buildAdd(TP::AddExprContext *c) {
  auto parts = c->mulExpr();
  auto ops = c->addOp();
  Expr *result = buildMul(parts[0]);
  for (size_t i = 1; i < parts.size() && result; ++i)
    result = makeBinary(ops[i - 1]->getText() == "+" ? BinaryOp::Add
                                                     : BinaryOp::Sub,
                        loc(ops[i - 1]), result, buildMul(parts[i]));
  return result;
}

Expr *Builder::buildMul(TP::MulExprContext *c) {
  auto parts = c->unaryExpr();
  auto ops = c->mulOp();
  Expr *result = buildUnary(parts[0]);
  for (size_t i = 1; i < parts.size() && result; ++i) {
    std::string op = ops[i - 1]->getText();
    BinaryOp bop = op == "*"   ? BinaryOp::Mul
                   : op == "/" ? BinaryOp::Div
                               : BinaryOp::MatMul;
    result = makeBinary(bop, loc(ops[i - 1]), result, buildUnary(parts[i]));
  }
  return result;
}

Expr *Builder::buildUnary(TP::UnaryExprContext *c) {
  Expr *operand = buildPostfix(c->postfixExpr());
  auto ops = c->unaryOp();
  for (size_t i = ops.size(); i-- > 0 && operand;) {
    auto *e = ctx.create<UnaryExpr>(SMRange(loc(ops[i]), operand->range.End));
    e->op = ops[i]->getText() == "-" ? UnaryOp::Neg : UnaryOp::Plus;
    e->operand = operand;
    operand = finish(e, {operand});
  }
  return operand;
}

Expr *Builder::buildPostfix(TP::PostfixExprContext *c) {
  Expr *result = buildPrimary(c->primary());
  for (auto *op : c->postfixOp()) {
    if (!result)
      return nullptr;
    SMRange range(result->range.Start, map.end(op->getStop()));
    if (auto *m = dynamic_cast<TP::MemberOpContext *>(op)) {
      auto *e = ctx.create<MemberExpr>(range);
      e->base = result;
      e->member = name(m->ident());
      e->memberLoc = loc(m->ident());
      result = finish(e, {result});
    } else if (auto *call = dynamic_cast<TP::CallOpContext *>(op)) {
      auto *e = ctx.create<CallExpr>(range);
      e->callee = result;
      if (!buildArgs(call->callArgs(), e))
        return nullptr;
      result = e;
    } else if (auto *idx = dynamic_cast<TP::IndexOpContext *>(op)) {
      auto *e = ctx.create<IndexExpr>(range);
      e->base = result;
      unsigned depth = result->depth;
      for (auto *s : idx->subscript()) {
        Subscript sub;
        sub.loc = loc(s);
        if (auto *slice = dynamic_cast<TP::SliceSubContext *>(s)) {
          sub.isSlice = true;
          if (slice->lo && !(sub.lo = buildExpr(slice->lo)))
            return nullptr;
          if (slice->hi && !(sub.hi = buildExpr(slice->hi)))
            return nullptr;
          if (slice->step && !(sub.step = buildExpr(slice->step)))
            return nullptr;
          for (Expr *x : {sub.lo, sub.hi, sub.step})
            if (x)
              depth = std::max(depth, x->depth);
        } else {
          auto *is = static_cast<TP::IndexSubContext *>(s);
          if (!(sub.index = buildExpr(is->expr())))
            return nullptr;
          depth = std::max(depth, sub.index->depth);
        }
        e->subscripts.push_back(sub);
      }
      result = finishDepth(e, depth);
    }
  }
  return result;
}

static bool unescape(StringRef quoted, std::string &out, size_t &badOffset) {
  StringRef body = quoted.drop_front().drop_back();
  for (size_t i = 0; i < body.size(); ++i) {
    char ch = body[i];
    if (ch != '\\') {
      out += ch;
      continue;
    }
    char next = body[++i];
    switch (next) {
    case 'n': out += '\n'; break;
    case 't': out += '\t'; break;
    case '\\': out += '\\'; break;
    case '"': out += '"'; break;
    default:
      badOffset = i; // offset of the character after the backslash
      return false;
    }
  }
  return true;
}

Expr *Builder::buildPrimary(TP::PrimaryContext *c) {
  if (auto *i = dynamic_cast<TP::IntLitContext *>(c)) {
    auto *e = make<IntLit>(c);
    return parseInt(i->INT(), e->value) ? e : nullptr;
  }
  if (auto *f = dynamic_cast<TP::FloatLitContext *>(c)) {
    auto *e = make<FloatLit>(c);
    std::string text;
    for (char ch : f->getText())
      if (ch != '_')
        text += ch;
    errno = 0;
    e->value = std::strtod(text.c_str(), nullptr);
    if (errno == ERANGE || !std::isfinite(e->value))
      return fail(loc(c), "floating-point literal '" + f->getText() +
                              "' is out of range");
    return e;
  }
  if (dynamic_cast<TP::PercentLitContext *>(c)) {
    auto *e = make<PercentLit>(c);
    std::string text;
    for (char ch : c->getText())
      if (ch != '_' && ch != '%')
        text += ch;
    e->value = std::strtod(text.c_str(), nullptr) / 100.0;
    if (!std::isfinite(e->value))
      return fail(loc(c), "percentage '" + c->getText() + "' is out of range");
    return e;
  }
  if (auto *s = dynamic_cast<TP::StringLitContext *>(c)) {
    auto *e = make<StringLit>(c);
    size_t bad = 0;
    std::string raw = s->STRING()->getText();
    if (!unescape(raw, e->value, bad)) {
      // +1 for the opening quote.
      SMLoc where = SMLoc::getFromPointer(loc(c).getPointer() + 1 + bad - 1);
      return fail(where, "unknown escape sequence in string literal; use "
                         "\\n, \\t, \\\\ or \\\"");
    }
    return e;
  }
  if (dynamic_cast<TP::BoolLitContext *>(c)) {
    auto *e = make<BoolLit>(c);
    e->value = c->getText() == "true";
    return e;
  }
  if (auto *n = dynamic_cast<TP::NameRefContext *>(c)) {
    auto *e = make<NameExpr>(c);
    e->name = name(n->ident());
    return e;
  }
  if (auto *p = dynamic_cast<TP::ParenExprContext *>(c)) {
    Expr *inner = buildExpr(p->expr());
    return inner;
  }
  if (auto *t = dynamic_cast<TP::TupleExprContext *>(c)) {
    auto *e = make<TupleExpr>(c);
    unsigned depth = 0;
    for (auto *x : t->expr()) {
      Expr *el = buildExpr(x);
      if (!el)
        return nullptr;
      depth = std::max(depth, el->depth);
      e->elements.push_back(el);
    }
    return finishDepth(e, depth);
  }
  if (auto *l = dynamic_cast<TP::ListExprContext *>(c)) {
    auto *e = make<ListExpr>(c);
    unsigned depth = 0;
    for (auto *x : l->expr()) {
      Expr *el = buildExpr(x);
      if (!el)
        return nullptr;
      depth = std::max(depth, el->depth);
      e->elements.push_back(el);
    }
    return finishDepth(e, depth);
  }
  return fail(loc(c), "unsupported expression");
}

/// Reports the first invalid UTF-8 sequence, if any.
bool checkUTF8(StringRef text, DiagnosticEngine &diags) {
  const auto *begin = reinterpret_cast<const UTF8 *>(text.data());
  const auto *end = begin + text.size();
  const UTF8 *p = begin;
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    unsigned len = getNumBytesForUTF8(*p);
    if (p + len > end || !isLegalUTF8Sequence(p, p + len)) {
      diags.error(SMLoc::getFromPointer(text.data() + (p - begin)),
                  formatv("invalid UTF-8 byte 0x{0:x-2} (is this a binary "
                          "file?)",
                          unsigned(*p)));
      return false;
    }
    p += len;
  }
  return true;
}

} // namespace

std::unique_ptr<File> parseBuffer(unsigned bufferID, DiagnosticEngine &diags,
                                  const ParserLimits &limits) {
  SourceMgr &sm = diags.getSourceMgr();
  const MemoryBuffer *buffer = sm.getMemoryBuffer(bufferID);
  StringRef text = buffer->getBuffer();
  if (!checkUTF8(text, diags))
    return nullptr;

  // A UTF-8 byte-order mark is not part of the program; ANTLR would drop it
  // and shift every location on the first line.
  if (text.starts_with("\xEF\xBB\xBF"))
    text = text.drop_front(3);
  SourceMap map(text);
  antlr4::ANTLRInputStream input;
  try {
    input.load(text.str());
  } catch (...) {
    diags.error(SMLoc::getFromPointer(text.data()),
                "cannot decode the file as UTF-8");
    return nullptr;
  }

  TesseraLexer lexer(&input);
  lexer.removeErrorListeners();
  antlr4::CommonTokenStream tokens(&lexer);
  try {
    tokens.fill();
  } catch (...) {
    diags.error(SMLoc::getFromPointer(text.data()), "cannot tokenize the file");
    return nullptr;
  }

  // Report error tokens and over-deep nesting before parsing: the parser is
  // recursive in bracket depth, so this bound is what protects the stack.
  bool lexOk = true;
  unsigned depth = 0;
  for (antlr4::Token *tok : tokens.getTokens()) {
    switch (tok->getType()) {
    case TesseraLexer::UNKNOWN_CHAR: {
      std::string t = tok->getText();
      std::string shown = t.size() == 1 && !isPrint(t[0])
                              ? formatv("\\x{0:x-2}", unsigned(uint8_t(t[0])))
                              : t;
      diags.error(map.start(tok), "unexpected character '" + shown + "'");
      lexOk = false;
      break;
    }
    case TesseraLexer::UNTERMINATED_STRING:
      diags.error(map.start(tok), "unterminated string literal");
      lexOk = false;
      break;
    case TesseraLexer::UNTERMINATED_COMMENT:
      diags.error(map.start(tok), "unterminated block comment");
      lexOk = false;
      break;
    default: {
      std::string t = tok->getText();
      if (t == "(" || t == "[" || t == "{") {
        if (++depth > limits.maxBracketDepth) {
          diags.error(map.start(tok),
                      formatv("brackets nested too deeply (more than {0} "
                              "levels)",
                              limits.maxBracketDepth));
          return nullptr;
        }
      } else if ((t == ")" || t == "]" || t == "}") && depth > 0) {
        --depth;
      }
    }
    }
    if (diags.shouldStop())
      break;
  }
  if (!lexOk)
    return nullptr;

  TP parser(&tokens);
  parser.removeErrorListeners();
  TP::FileContext *tree = nullptr;
  // Fast path: SLL prediction that bails on the first error. Only input that
  // fails there is re-parsed with full LL and error recovery for reporting.
  parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
      antlr4::atn::PredictionMode::SLL);
  parser.setErrorHandler(std::make_shared<antlr4::BailErrorStrategy>());
  try {
    tree = parser.file();
  } catch (antlr4::ParseCancellationException &) {
    tree = nullptr;
  } catch (...) {
    tree = nullptr;
  }
  if (!tree) {
    tokens.seek(0);
    parser.reset();
    parser.setErrorHandler(std::make_shared<antlr4::DefaultErrorStrategy>());
    parser.getInterpreter<antlr4::atn::ParserATNSimulator>()
        ->setPredictionMode(antlr4::atn::PredictionMode::LL);
    ErrorListener listener(diags, map, limits.maxSyntaxErrors);
    parser.addErrorListener(&listener);
    try {
      tree = parser.file();
    } catch (...) {
      tree = nullptr;
    }
    parser.removeErrorListeners();
    if (listener.count == 0 && tree) {
      // SLL failed but LL succeeded: a genuine SLL conflict, not an error.
    } else {
      if (listener.count == 0)
        diags.error(SMLoc::getFromPointer(text.data()), "cannot parse file");
      return nullptr;
    }
  }

  auto file = std::make_unique<File>();
  file->path = buffer->getBufferIdentifier().str();
  file->bufferID = bufferID;
  Builder builder(*file, diags, map, limits);
  if (!builder.build(tree))
    return nullptr;
  return file;
}

} // namespace tessera
