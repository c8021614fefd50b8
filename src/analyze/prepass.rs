//! PostgreSQL syntax sqlparser does not read, turned into equivalent syntax it does, on tokens
//! (never on text) and only after a plain parse failed: `TABLE t`, `FROM t*`, `FOR NO KEY
//! UPDATE` / `FOR KEY SHARE`, and `BETWEEN SYMMETRIC`.
//!
//! Each rewrite follows what PostgreSQL's own grammar does with the construct (gram.y):
//! `TABLE relation_expr` is `SELECT * FROM relation_expr`; `t*` is the pre-8.1 spelling of
//! "t and its inheritance children", which is what `t` means now; `a BETWEEN SYMMETRIC b AND c`
//! is transformed (parse_expr.c, transformAExprBetween) into `(a >= b AND a <= c) OR (a >= c
//! AND a <= b)`, which is `a BETWEEN b AND c OR a BETWEEN c AND b`. The lock strengths `NO KEY
//! UPDATE` and `KEY SHARE` have no AST form: they are read as `UPDATE` and `SHARE`, the
//! stronger locks, which a statement routed to one node never sees (its text is forwarded) and
//! a merged one takes instead (same rows, stronger lock).

use sqlparser::ast::{BinaryOperator, Expr, Statement, UnaryOperator};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

/// The function name that marks the lower bound of a `BETWEEN SYMMETRIC` until the parsed
/// tree is rewritten.
const SYMMETRIC: &str = "__sg_between_symmetric";

fn kw(t: &Token) -> Option<Keyword> {
    match t {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

fn plain(t: Token) -> TokenWithSpan {
    TokenWithSpan::wrap(t)
}

fn space() -> TokenWithSpan {
    plain(Token::Whitespace(Whitespace::Space))
}

/// Index of the previous token that is not whitespace.
fn prev(tokens: &[TokenWithSpan], i: usize) -> Option<usize> {
    (0..i)
        .rev()
        .find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)))
}

fn next(tokens: &[TokenWithSpan], i: usize) -> Option<usize> {
    (i + 1..tokens.len()).find(|&j| !matches!(tokens[j].token, Token::Whitespace(_)))
}

/// The tokens rewritten, or None when nothing applied.
pub fn rewrite(tokens: &[TokenWithSpan]) -> Option<Vec<TokenWithSpan>> {
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len() + 8);
    let mut changed = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i].token;
        // TABLE name, where a SELECT could start.
        if kw(t) == Some(Keyword::TABLE) {
            let before = prev(&out, out.len()).map(|j| &out[j].token);
            let starts = match before {
                None | Some(Token::SemiColon) | Some(Token::LParen) => true,
                Some(b) => matches!(
                    kw(b),
                    Some(
                        Keyword::UNION
                            | Keyword::INTERSECT
                            | Keyword::EXCEPT
                            | Keyword::ALL
                            | Keyword::DISTINCT
                    )
                ),
            };
            if starts {
                out.extend([
                    plain(Token::make_keyword("SELECT")),
                    space(),
                    plain(Token::Mul),
                    space(),
                    plain(Token::make_keyword("FROM")),
                ]);
                changed = true;
                i += 1;
                continue;
            }
        }
        // name* right after FROM, JOIN or ONLY (qualified names too).
        if *t == Token::Mul {
            if let Some(name_end) = prev(&out, out.len()) {
                if matches!(out[name_end].token, Token::Word(_)) {
                    let mut start = name_end;
                    while let Some(p) = prev(&out, start) {
                        if out[p].token != Token::Period {
                            break;
                        }
                        match prev(&out, p) {
                            Some(q) if matches!(out[q].token, Token::Word(_)) => start = q,
                            _ => break,
                        }
                    }
                    let lead = prev(&out, start).and_then(|p| kw(&out[p].token));
                    if matches!(
                        lead,
                        Some(Keyword::FROM | Keyword::JOIN | Keyword::ONLY | Keyword::TABLE)
                    ) {
                        changed = true;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        // FOR NO KEY UPDATE, FOR KEY SHARE.
        if kw(t) == Some(Keyword::FOR) {
            let a = next(tokens, i);
            let b = a.and_then(|a| next(tokens, a));
            let c = b.and_then(|b| next(tokens, b));
            let ka = a.and_then(|a| kw(&tokens[a].token));
            let kb = b.and_then(|b| kw(&tokens[b].token));
            let kc = c.and_then(|c| kw(&tokens[c].token));
            let skip_to = match (ka, kb, kc) {
                (Some(Keyword::NO), Some(Keyword::KEY), Some(Keyword::UPDATE)) => c,
                (Some(Keyword::KEY), Some(Keyword::SHARE), _) => b,
                _ => None,
            };
            if let Some(to) = skip_to {
                out.push(tokens[i].clone());
                out.push(space());
                out.push(tokens[to].clone());
                changed = true;
                i = to + 1;
                continue;
            }
        }
        // COPY's boolean options written ON/OFF (PostgreSQL's defGetBoolean takes them;
        // sqlparser reads TRUE/FALSE): FREEZE ON, HEADER OFF.
        if matches!(kw(t), Some(Keyword::ON | Keyword::OFF)) {
            let before = prev(&out, out.len()).and_then(|j| kw(&out[j].token));
            if matches!(before, Some(Keyword::FREEZE | Keyword::HEADER)) {
                let value = if kw(t) == Some(Keyword::ON) {
                    "TRUE"
                } else {
                    "FALSE"
                };
                out.push(plain(Token::make_keyword(value)));
                changed = true;
                i += 1;
                continue;
            }
        }
        // BETWEEN SYMMETRIC low AND high: low becomes __sg_between_symmetric(low).
        if kw(t) == Some(Keyword::BETWEEN) {
            if let Some(s) = next(tokens, i) {
                if kw(&tokens[s].token) == Some(Keyword::SYMMETRIC) {
                    if let Some(and) = bound_end(tokens, s + 1) {
                        out.push(tokens[i].clone());
                        out.push(space());
                        out.push(plain(Token::make_word(SYMMETRIC, None)));
                        out.push(plain(Token::LParen));
                        out.extend(tokens[s + 1..and].iter().cloned());
                        out.push(plain(Token::RParen));
                        out.push(space());
                        changed = true;
                        i = and;
                        continue;
                    }
                }
            }
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    changed.then_some(out)
}

/// The `AND` that ends a BETWEEN's lower bound starting at `from`: the first one outside
/// parentheses, brackets and CASE ... END.
fn bound_end(tokens: &[TokenWithSpan], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (j, t) in tokens.iter().enumerate().skip(from) {
        match &t.token {
            Token::LParen | Token::LBracket => depth += 1,
            Token::RParen | Token::RBracket => depth -= 1,
            Token::SemiColon => return None,
            w => match kw(w) {
                Some(Keyword::CASE) => depth += 1,
                Some(Keyword::END) => depth -= 1,
                Some(Keyword::AND) if depth == 0 => return Some(j),
                _ => {}
            },
        }
        if depth < 0 {
            return None;
        }
    }
    None
}

/// Replaces each marked `BETWEEN` by PostgreSQL's expansion of `BETWEEN SYMMETRIC`.
pub fn expand(stmts: &mut [Statement]) {
    for s in stmts.iter_mut() {
        let _ = sqlparser::ast::visit_expressions_mut(s, |e: &mut Expr| {
            if let Expr::Between {
                expr,
                negated,
                low,
                high,
            } = e
            {
                if let Some(inner) = marked(low) {
                    let between = |lo: Expr, hi: Expr| Expr::Between {
                        expr: expr.clone(),
                        negated: false,
                        low: Box::new(lo),
                        high: Box::new(hi),
                    };
                    let either = Expr::Nested(Box::new(Expr::BinaryOp {
                        left: Box::new(between(inner.clone(), (**high).clone())),
                        op: BinaryOperator::Or,
                        right: Box::new(between((**high).clone(), inner)),
                    }));
                    *e = if *negated {
                        Expr::Nested(Box::new(Expr::UnaryOp {
                            op: UnaryOperator::Not,
                            expr: Box::new(either),
                        }))
                    } else {
                        either
                    };
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
}

fn marked(low: &Expr) -> Option<Expr> {
    let Expr::Function(f) = low else { return None };
    if f.name.to_string() != SYMMETRIC {
        return None;
    }
    let sqlparser::ast::FunctionArguments::List(l) = &f.args else {
        return None;
    };
    match l.args.as_slice() {
        [sqlparser::ast::FunctionArg::Unnamed(sqlparser::ast::FunctionArgExpr::Expr(x))] => {
            Some(Expr::Nested(Box::new(x.clone())))
        }
        _ => None,
    }
}
