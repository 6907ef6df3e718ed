// Tessera.g4 - the grammar of the Tessera pipeline language (.tsr files).
//
// The grammar is deliberately free of left recursion: every binary-operator
// level is a flat loop and unary/postfix operators are repetitions. Parse-tree
// depth therefore grows only with bracket nesting, which the front end bounds
// before parsing, so no input can overflow the stack. docs/language.md is the
// user-facing reference for every construct below.
grammar Tessera;

// ---------------------------------------------------------------- file -----

file        : importDecl* topDecl* EOF ;

importDecl  : 'import' dottedName ';'? ;
dottedName  : ident ('.' ident)* ;

topDecl     : modelDecl
            | dataDecl
            | trainDecl
            | compressDecl
            | constDecl
            ;

constDecl   : 'let' ident '=' expr ';'? ;

// ---------------------------------------------------------------- models ---

modelDecl   : 'model' ident '(' (modelParam (',' modelParam)* ','?)? ')'
              '{' modelItem* '}' ;
modelParam  : ident ':' typeExpr ('=' expr)? ;

modelItem   : 'let' ident '=' expr ';'?                          # modelLet
            | 'param' ident ':' typeExpr ('=' expr)? ';'?         # modelParamDecl
            | ident '=' ('repeat' '(' expr ')')? expr ';'?       # modelSubmodule
            | 'if' expr '{' thenItems=modelItems '}'
              ('else' ('{' elseItems=modelItems '}' | elseIf=modelItem))? # modelIf
            | fnDecl                                             # modelFn
            ;
modelItems  : modelItem* ;

fnDecl      : 'fn' ident '(' (fnParam (',' fnParam)* ','?)? ')'
              ('->' returnType)? block ;
fnParam     : ident ':' typeExpr ;
returnType  : typeExpr
            | '(' typeExpr (',' typeExpr)* ','? ')'
            ;

// A scalar type (int, float, bool, str) or a tensor type: dtype[dims].
typeExpr    : ident ('[' (typeDim (',' typeDim)* ','?)? ']')? ;
// `...` stands for any number of leading/trailing dimensions (at most one).
typeDim     : '...' | expr ;

block       : '{' stmt* '}' ;
stmt        : 'let' letTarget '=' expr ';'?                      # letStmt
            | 'return' expr ';'?                                 # returnStmt
            | ifStmt                                             # ifStmtAlt
            ;
letTarget   : ident
            | '(' ident (',' ident)* ','? ')'
            ;
ifStmt      : 'if' expr block ('else' (block | ifStmt))? ;

// ---------------------------------------------------------------- data -----

dataDecl    : 'data' ident '=' expr ';'? ;

// ---------------------------------------------------------------- train ----

trainDecl   : 'train' ident '{' setting* '}' ;
setting     : ident '=' value ';'? ;
value       : ratio | expr ;
ratio       : INT ':' INT ;

// ---------------------------------------------------------------- compress -

compressDecl : 'compress' ident '{' compressItem* '}' ;
// Methods are postfix expressions (calls such as `int8(per_channel)`), never
// bare operators, so two of them can stand side by side unambiguously.
compressItem : 'prune' glob postfixExpr ';'?                     # pruneRule
             | 'quantize' glob postfixExpr calibration? ';'?     # quantizeRule
             | 'distill' callArgs ';'?                           # distillRule
             | 'report' expr (',' expr)* ';'?                    # reportRule
             | setting                                           # compressSetting
             ;
calibration : 'calibrate' callArgs ;

// A parameter-path pattern: `*` matches one path segment, `**` any number.
glob        : globPart ('.' globPart)* ;
globPart    : ident | '*' | '**' | INT ;

// ---------------------------------------------------------------- exprs ----

expr        : andExpr ('or' andExpr)* ;
andExpr     : notExpr ('and' notExpr)* ;
notExpr     : 'not'* cmpExpr ;
cmpExpr     : addExpr (cmpOp addExpr)? ;
cmpOp       : '==' | '!=' | '<' | '<=' | '>' | '>=' ;
addExpr     : mulExpr (addOp mulExpr)* ;
addOp       : '+' | '-' ;
mulExpr     : unaryExpr (mulOp unaryExpr)* ;
mulOp       : '*' | '/' | '@' ;
unaryExpr   : unaryOp* postfixExpr ;
unaryOp     : '-' | '+' ;
postfixExpr : primary postfixOp* ;
postfixOp   : '.' ident                                          # memberOp
            | callArgs                                           # callOp
            | '[' subscript (',' subscript)* ','? ']'            # indexOp
            ;
callArgs    : '(' (arg (',' arg)* ','?)? ')' ;
arg         : (ident '=')? value ;
subscript   : lo=expr? ':' hi=expr? (':' step=expr?)?             # sliceSub
            | expr                                               # indexSub
            ;

primary     : INT                                                # intLit
            | FLOAT                                              # floatLit
            | PERCENT                                            # percentLit
            | STRING                                             # stringLit
            | ('true' | 'false')                                 # boolLit
            | ident                                              # nameRef
            | '(' expr ')'                                       # parenExpr
            | '(' (expr ',' (expr (',' expr)* ','?)?)? ')'       # tupleExpr
            | '[' (expr (',' expr)* ','?)? ']'                   # listExpr
            ;

// Declaration keywords that may also be used as names (`model = GPT(...)`
// inside a train block, `model(x)` in a loss).
ident       : ID | 'model' | 'data' | 'train' | 'compress' | 'param'
            | 'repeat' | 'prune' | 'quantize' | 'distill' | 'report'
            | 'calibrate' ;

// ---------------------------------------------------------------- lexer ----

INT         : DIGITS ;
FLOAT       : DIGITS '.' DIGITS EXPONENT? | DIGITS EXPONENT ;
PERCENT     : DIGITS ('.' DIGITS)? '%' ;
STRING      : '"' (~["\\\r\n] | '\\' ~[\r\n])* '"' ;
ID          : [a-zA-Z_] [a-zA-Z_0-9]* ;

fragment DIGITS   : [0-9] ('_'? [0-9])* ;
fragment EXPONENT : [eE] [+-]? [0-9]+ ;

LINE_COMMENT  : '//' ~[\r\n]* -> skip ;
BLOCK_COMMENT : '/*' .*? '*/' -> skip ;
WS            : [ \t\r\n\f]+ -> skip ;

// Error tokens: the front end reports these with a precise message instead
// of ANTLR's generic "token recognition error".
// Only matches a comment with no `*/` at all, so it never out-lengths a
// terminated BLOCK_COMMENT.
UNTERMINATED_COMMENT : '/*' (~'*' | '*'+ ~[*/])* '*'* EOF ;
UNTERMINATED_STRING  : '"' (~["\\\r\n] | '\\' ~[\r\n])* ;
UNKNOWN_CHAR         : . ;
